"""Retention of the delivery ledger: per-day counts of the deliveries removed.

Finished deliveries older than DELIVERY_RETENTION_DAYS are removed by the dispatcher's
sweep (storage/retention.py); what they counted is kept per day, kind and status.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The ledger now loses old rows every day as well as gaining new ones; autovacuum's
        # default (a vacuum once 20 % of the rows are dead) would let a sixth of it lie
        # dead between vacuums, and the pruning scan step over them. 2 %: a few days'.
        op.execute(
            "ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.02,"
            " autovacuum_analyze_scale_factor = 0.02)"
        )
    op.create_table(
        "delivery_daily_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "kind", "status", name=op.f("pk_delivery_daily_counts")),
    )


def downgrade() -> None:
    # The removed rows are gone either way; only their counts go with the table.
    op.drop_table("delivery_daily_counts")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE deliveries RESET (autovacuum_vacuum_scale_factor,"
            " autovacuum_analyze_scale_factor)"
        )
