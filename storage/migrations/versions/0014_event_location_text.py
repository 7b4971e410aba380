"""An event's location in words: a feed's LOCATION that names no known place.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): the events table keeps its triggers (0009).
    op.add_column("events", sa.Column("location_text", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("events", "location_text")
