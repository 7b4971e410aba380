"""A partial index of the recurring events, which every planning pass reads.

The planner looks for the events with a reminder due in its window: a range of start
times, or any recurring event. With this index both sides of that OR are index ranges
and the events table is not scanned on every sweep, follow and change of lead times.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECURRING = sa.text("recurrence IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_events_recurring",
        "events",
        ["id"],
        sqlite_where=RECURRING,
        postgresql_where=RECURRING,
    )


def downgrade() -> None:
    op.drop_index("ix_events_recurring", table_name="events")
