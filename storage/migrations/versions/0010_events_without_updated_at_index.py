"""Performance: drop the events index on updated_at.

Searches once read max(updated_at) to notice a changed catalogue; since 0009 they read
the change counter its triggers keep, and nothing orders or filters events by
updated_at. The index only cost time on every event written.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_events_updated_at", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_updated_at", "events", ["updated_at"])
