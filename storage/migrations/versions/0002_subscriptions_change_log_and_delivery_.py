"""Subscriptions with default lead times, the event change log and the delivery ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:49:32.320646
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("old", sa.JSON(), nullable=False),
        sa.Column("new", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_event_changes_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_changes")),
    )
    with op.batch_alter_table("event_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_changes_event_id"), ["event_id"], unique=False)

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "reminder",
                "month_notice",
                "change_notice",
                name="delivery_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("occurrence_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "claimed",
                "sent",
                "failed",
                "skipped",
                name="delivery_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("change_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["event_changes.id"],
            name=op.f("fk_deliveries_change_id_event_changes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chats.id"], name=op.f("fk_deliveries_chat_id_chats"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_deliveries_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint(
            "chat_id",
            "event_id",
            "kind",
            "occurrence_at",
            "slot",
            name=op.f("uq_deliveries_chat_id"),
        ),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deliveries_chat_id"), ["chat_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deliveries_event_id"), ["event_id"], unique=False)
        batch_op.create_index("ix_deliveries_status_due", ["status", "due_at"], unique=False)

    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lead_times", sa.JSON(), nullable=True))

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.alter_column("lead_times", existing_type=sa.JSON(), nullable=True)
        batch_op.create_index(batch_op.f("ix_subscriptions_event_id"), ["event_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_subscriptions_organisation_id"), ["organisation_id"], unique=False
        )
    # One subscription per chat and target (NULL ids count as 0 so they compare equal).
    op.create_index(
        "uq_subscriptions_target",
        "subscriptions",
        [
            "chat_id",
            "scope",
            sa.text("coalesce(organisation_id, 0)"),
            sa.text("coalesce(event_id, 0)"),
        ],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_subscriptions_target", table_name="subscriptions")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriptions_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_subscriptions_event_id"))
        batch_op.alter_column("lead_times", existing_type=sa.JSON(), nullable=False)

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("revision")

    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.drop_column("lead_times")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_status_due")
        batch_op.drop_index(batch_op.f("ix_deliveries_event_id"))
        batch_op.drop_index(batch_op.f("ix_deliveries_chat_id"))

    op.drop_table("deliveries")
    with op.batch_alter_table("event_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_changes_event_id"))

    op.drop_table("event_changes")
