"""Dialogue state in the database (questions awaiting an answer, operators' pending changes),
so that several bot processes on one database can continue each other's dialogues.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 13:59:51.417979
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dialogues",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "chat_id", name=op.f("pk_dialogues")),
    )
    op.create_index(op.f("ix_dialogues_expires_at"), "dialogues", ["expires_at"])
    op.create_table(
        "pending_operations",
        sa.Column("token", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_pending_operations")),
    )
    op.create_index(op.f("ix_pending_operations_expires_at"), "pending_operations", ["expires_at"])
    op.create_index(op.f("ix_pending_operations_user_id"), "pending_operations", ["user_id"])


def downgrade() -> None:
    op.drop_table("pending_operations")
    op.drop_table("dialogues")
