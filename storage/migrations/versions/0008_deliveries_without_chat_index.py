"""Performance: drop the deliveries index on chat_id alone.

The ledger's unique key begins with chat_id, so it serves every lookup by chat (and
the cascade when a chat is deleted); the second index only cost time on every write,
about a fifth of what inserting or moving 100,000 reminders takes.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_deliveries_chat_id", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_chat_id", "deliveries", ["chat_id"])
