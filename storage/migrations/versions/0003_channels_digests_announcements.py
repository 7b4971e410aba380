"""Channels (linked by, paused), digests, and announcements and digests in the ledger.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = ("reminder", "month_notice", "change_notice")
NEW_KINDS = (*OLD_KINDS, "new_event", "announcement", "digest")


def _kinds(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def upgrade() -> None:
    with op.batch_alter_table("chats") as batch:
        batch.add_column(sa.Column("linked_by", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(
            sa.Column(
                "digest",
                sa.Enum(
                    "off",
                    "daily",
                    "weekly",
                    name="digest_frequency",
                    native_enum=False,
                    create_constraint=True,
                    length=16,
                ),
                server_default="off",
                nullable=False,
            )
        )
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint(op.f("uq_deliveries_chat_id"), type_="unique")
        batch.drop_constraint(op.f("ck_deliveries_delivery_kind"), type_="check")
        batch.create_check_constraint("delivery_kind", sa.text(_kinds(NEW_KINDS)))
        batch.alter_column("event_id", existing_type=sa.Integer(), nullable=True)
    op.create_index(
        "uq_deliveries_key",
        "deliveries",
        ["chat_id", sa.text("coalesce(event_id, 0)"), "kind", "occurrence_at", "slot"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_deliveries_key", table_name="deliveries")
    op.execute("DELETE FROM deliveries WHERE event_id IS NULL OR " + _kinds(NEW_KINDS[3:]))
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("event_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_constraint(op.f("ck_deliveries_delivery_kind"), type_="check")
        batch.create_check_constraint("delivery_kind", sa.text(_kinds(OLD_KINDS)))
        batch.create_unique_constraint(
            op.f("uq_deliveries_chat_id"), ["chat_id", "event_id", "kind", "occurrence_at", "slot"]
        )
    with op.batch_alter_table("chats") as batch:
        batch.drop_column("digest")
        batch.drop_column("paused")
        batch.drop_column("linked_by")
