"""Processed updates: webhook replicas skip an update Telegram posts a second time.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 15:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "processed_updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_processed_updates")),
    )
    op.create_index(op.f("ix_processed_updates_received_at"), "processed_updates", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_processed_updates_received_at"), table_name="processed_updates")
    op.drop_table("processed_updates")
