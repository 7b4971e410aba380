"""Truth over time: when each fact was checked, rotation rules, and review notices.

Organisations, chairmanships and events carry the day their facts were last checked;
an organisation carries how its chair rotates, as data; operators get a weekly notice
of the review queue through the ledger (a new delivery kind).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = ("reminder", "month_notice", "change_notice", "new_event", "announcement", "digest")
NEW_KINDS = (*OLD_KINDS, "review_notice")
CHECKED = ("organisations", "chairmanships", "events")
# The ledger's key: an expression index, which SQLite's table rebuild does not carry over.
LEDGER_KEY: list[str | sa.TextClause] = [
    "chat_id",
    sa.text("coalesce(event_id, 0)"),
    "kind",
    "occurrence_at",
    "slot",
]


def _kinds(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def _set_kinds(kinds: tuple[str, ...]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_deliveries_delivery_kind"), "deliveries", type_="check")
        op.create_check_constraint("delivery_kind", "deliveries", sa.text(_kinds(kinds)))
        return
    # SQLite changes a CHECK constraint by rebuilding the table; the key goes with it.
    op.drop_index("uq_deliveries_key", table_name="deliveries")
    with op.batch_alter_table("deliveries", recreate="always") as batch:
        batch.drop_constraint(op.f("ck_deliveries_delivery_kind"), type_="check")
        batch.create_check_constraint("delivery_kind", sa.text(_kinds(kinds)))
    op.create_index("uq_deliveries_key", "deliveries", LEDGER_KEY, unique=True)


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): the catalogue tables keep their triggers (0009).
    for table in CHECKED:
        op.add_column(table, sa.Column("checked_on", sa.Date(), nullable=True))
    op.add_column("organisations", sa.Column("rotation_rule", sa.JSON(), nullable=True))
    _set_kinds(NEW_KINDS)


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE kind = 'review_notice'")
    _set_kinds(OLD_KINDS)
    op.drop_column("organisations", "rotation_rule")
    for table in CHECKED:
        op.drop_column(table, "checked_on")
