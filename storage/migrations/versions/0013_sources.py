"""Sources the bot follows by itself: iCalendar feeds and data files over HTTPS.

A source is a URL with its organisation, language, polling interval and the state of
its polling (a lease, so that one replica polls it at a time); each event a source
created is linked to it by the source's UID for it, with the values it last gave.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "ical",
                "datafile",
                name="source_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("organisation_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("added_by", sa.String(length=128), nullable=False),
        sa.Column("added_at", UTC_DATETIME, nullable=False),
        sa.Column("last_polled_at", UTC_DATETIME, nullable=True),
        sa.Column("last_success_at", UTC_DATETIME, nullable=True),
        sa.Column("last_status", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failing_since", UTC_DATETIME, nullable=True),
        sa.Column("etag", sa.String(length=512), nullable=True),
        sa.Column("last_modified", sa.String(length=128), nullable=True),
        sa.Column("next_poll_at", UTC_DATETIME, nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_sources_organisation_id_organisations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("url", name=op.f("uq_sources_url")),
        sa.CheckConstraint(
            "interval_seconds >= 300", name=op.f("ck_sources_interval_at_least_5_minutes")
        ),
    )
    op.create_index(op.f("ix_sources_next_poll_at"), "sources", ["next_poll_at"])
    op.create_table(
        "source_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=1000), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_modified", UTC_DATETIME, nullable=True),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("seen_at", UTC_DATETIME, nullable=False),
        sa.Column("missing_since", UTC_DATETIME, nullable=True),
        sa.Column("edit_kept_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_source_events_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_source_events_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_source_events_event_id")),
        sa.UniqueConstraint("source_id", "uid", name=op.f("uq_source_events_source_id")),
    )


def downgrade() -> None:
    # The events sources created stay, as events an operator had added would.
    op.drop_table("source_events")
    op.drop_index(op.f("ix_sources_next_poll_at"), table_name="sources")
    op.drop_table("sources")
