"""Performance: indexes for the search index's check and for lists of events.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every search asks for max(events.updated_at) to notice changed data.
    op.create_index("ix_events_updated_at", "events", ["updated_at"])
    # /upcoming and its pages: counted and ordered from the index, without the rows.
    op.create_index(
        "ix_events_listing",
        "events",
        ["ends_at", "starts_at", "key", "kind", "status", "recurrence"],
    )


def downgrade() -> None:
    op.drop_index("ix_events_listing", table_name="events")
    op.drop_index("ix_events_updated_at", table_name="events")
