"""SQLAlchemy models: organisations, chairmanships, places, events, chats, subscriptions.

Times are stored as UTC instants (:class:`UTCDateTime`) with the venue's IANA
zone beside them. The venue's wall-clock start and end are kept as written too,
so that a later tzdata release (Astana moved from UTC+6 to UTC+5 in 2024) can
re-derive the instants instead of silently shifting a day.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from storage.dates import UTC, Precision

# Stable constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Text in several languages: {"en": "...", "ru": "..."}.
LocalisedText = dict[str, str]


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC instant on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC instant is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


class EventStatus(enum.StrEnum):
    PLANNED = "planned"
    PROPOSED = "proposed"
    CONFIRMED = "confirmed"
    HELD = "held"
    POSTPONED = "postponed"
    CANCELLED = "cancelled"


class Confidence(enum.StrEnum):
    """How well a fact is sourced: H two or more sources, M one, L weak or conflicting."""

    HIGH = "H"
    MEDIUM = "M"
    LOW = "L"


class ChatType(enum.StrEnum):
    PRIVATE = "private"
    GROUP = "group"
    SUPERGROUP = "supergroup"
    CHANNEL = "channel"


class SubscriptionScope(enum.StrEnum):
    ALL = "all"
    ORGANISATION = "organisation"
    EVENT = "event"


class DeliveryKind(enum.StrEnum):
    REMINDER = "reminder"  # ``slot`` is the lead time in minutes
    MONTH_NOTICE = "month_notice"  # "this month": events known only to the month
    CHANGE_NOTICE = "change_notice"  # ``slot`` is the event's revision
    NEW_EVENT = "new_event"  # a new event of a followed organisation
    ANNOUNCEMENT = "announcement"  # an operator's /announce of an event to a channel
    DIGEST = "digest"  # no event; ``occurrence_at`` is the start of the period covered
    REVIEW_NOTICE = "review_notice"  # to an operator: the review queue; no event, weekly


class DigestFrequency(enum.StrEnum):
    OFF = "off"
    DAILY = "daily"
    WEEKLY = "weekly"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"  # a dispatcher is sending it
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # came due while down and was stale: recorded, not sent


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    # Stored as short strings with a CHECK constraint: portable and readable in SQL.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        LocalisedText: JSON,
        list[str]: JSON,
        list[int]: JSON,
        dt.datetime: UTCDateTime,
    }


class Meta(Base):
    """Small key/value facts about the database itself (e.g. the bundled dataset's digest)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Place(Base):
    """A city or venue: names per language, country and IANA time zone."""

    __tablename__ = "places"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    names: Mapped[LocalisedText]
    country: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(64))


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    names: Mapped[LocalisedText]
    abbreviations: Mapped[LocalisedText] = mapped_column(default=dict)
    aliases: Mapped[list[str]] = mapped_column(default=list)
    founded: Mapped[str | None] = mapped_column(String(16))  # a PartialDate literal
    founded_note: Mapped[LocalisedText] = mapped_column(default=dict)
    headquarters: Mapped[LocalisedText] = mapped_column(default=dict)
    members: Mapped[int | None]
    members_note: Mapped[LocalisedText] = mapped_column(default=dict)
    rotation: Mapped[LocalisedText] = mapped_column(default=dict)
    # How the chair passes on, as data (storage.rotation.RotationRule.to_json); None: unknown.
    rotation_rule: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    note: Mapped[LocalisedText] = mapped_column(default=dict)
    sources: Mapped[list[str]] = mapped_column(default=list)
    checked_on: Mapped[dt.date | None] = mapped_column(Date)  # when the facts were last checked
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    chairmanships: Mapped[list[Chairmanship]] = relationship(back_populates="organisation")


class Chairmanship(Base):
    """A country chairing an organisation over a period whose ends may be approximate."""

    __tablename__ = "chairmanships"
    __table_args__ = (
        UniqueConstraint("organisation_id", "country", "start_literal"),
        Index("ix_chairmanships_org_start", "organisation_id", "starts_on"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    country: Mapped[str] = mapped_column(String(2))
    # The literal keeps the precision; the dates bound the span for queries.
    start_literal: Mapped[str] = mapped_column(String(16), default="")
    starts_on: Mapped[dt.date | None] = mapped_column(Date)
    end_literal: Mapped[str] = mapped_column(String(16), default="")
    ends_on: Mapped[dt.date | None] = mapped_column(Date)  # last day it can have lasted to
    end_note: Mapped[LocalisedText] = mapped_column(default=dict)
    note: Mapped[LocalisedText] = mapped_column(default=dict)
    confidence: Mapped[Confidence] = mapped_column(_enum(Confidence, "confidence"))
    sources: Mapped[list[str]] = mapped_column(default=list)
    checked_on: Mapped[dt.date | None] = mapped_column(Date)

    organisation: Mapped[Organisation] = relationship(back_populates="chairmanships")


# Where an event is, as a feed wrote it, when no known place names it (``Event.location_text``).
MAX_LOCATION = 200


class Event(Base):
    """A summit, meeting or observance; ``key`` is its stable public id."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_ends_at", "ends_at"),
        # Lists of events (/upcoming, its pages) are counted and ordered from this index
        # alone, without reading the events' rows.
        Index("ix_events_listing", "ends_at", "starts_at", "key", "kind", "status", "recurrence"),
        # The few recurring events, which every planning pass reads whatever their dates
        # (storage/planning.py): an index range beside the one on starts_at, not a scan.
        Index(
            "ix_events_recurring",
            "id",
            sqlite_where=text("recurrence IS NOT NULL"),
            postgresql_where=text("recurrence IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[LocalisedText]
    place_id: Mapped[int | None] = mapped_column(ForeignKey("places.id", ondelete="SET NULL"))
    # Where it is in words (a feed's LOCATION that names no known place); a place wins.
    location_text: Mapped[str | None] = mapped_column(String(MAX_LOCATION))
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    country: Mapped[str | None] = mapped_column(String(2))
    # None: a floating date, the same local day everywhere (observances).
    timezone: Mapped[str | None] = mapped_column(String(64))
    date_precision: Mapped[Precision] = mapped_column(_enum(Precision, "date_precision"))
    start_local: Mapped[dt.datetime] = mapped_column(DateTime(timezone=False))
    starts_at: Mapped[dt.datetime] = mapped_column(index=True)
    end_precision: Mapped[Precision | None] = mapped_column(_enum(Precision, "end_precision"))
    end_local: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=False))
    # Exclusive end of the whole span (of the start's span when no end is known).
    ends_at: Mapped[dt.datetime]
    status: Mapped[EventStatus] = mapped_column(_enum(EventStatus, "event_status"))
    # Counts changes of date, place or status; a change notice is sent once per revision.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    recurrence: Mapped[str | None] = mapped_column(String(64))  # an RRULE, e.g. FREQ=YEARLY
    note: Mapped[LocalisedText] = mapped_column(default=dict)
    confidence: Mapped[Confidence] = mapped_column(_enum(Confidence, "confidence"))
    sources: Mapped[list[str]] = mapped_column(default=list)
    checked_on: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    organisation: Mapped[Organisation | None] = relationship()
    place: Mapped[Place | None] = relationship()


class Chat(Base):
    """A Telegram chat the bot talks to: private, group, supergroup or channel."""

    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[ChatType] = mapped_column(_enum(ChatType, "chat_type"))
    title: Mapped[str | None] = mapped_column(String(256))
    language: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Minutes before an event; None: the bot's default lead times.
    lead_times: Mapped[list[int] | None] = mapped_column(JSON)
    migrated_to_id: Mapped[int | None] = mapped_column(BigInteger)
    # Channels: the user who linked it (told when the bot loses its rights there).
    linked_by: Mapped[int | None] = mapped_column(BigInteger)
    # A paused chat keeps its subscriptions but is sent nothing.
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    digest: Mapped[DigestFrequency] = mapped_column(
        _enum(DigestFrequency, "digest_frequency"),
        default=DigestFrequency.OFF,
        server_default="off",
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Subscription(Base):
    """A chat following everything, one organisation or one event, with its lead times."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("chats.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[SubscriptionScope] = mapped_column(_enum(SubscriptionScope, "subscription_scope"))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    # Minutes before the start; None: the chat's default lead times.
    lead_times: Mapped[list[int] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# One subscription per chat and target. NULLs are distinct in unique constraints, so the
# index is on expressions that turn "no organisation/event" into 0.
Index(
    "uq_subscriptions_target",
    Subscription.chat_id,
    Subscription.scope,
    func.coalesce(Subscription.organisation_id, 0),
    func.coalesce(Subscription.event_id, 0),
    unique=True,
)


class EventChange(Base):
    """A change of an event's date, place or status: who, when, old and new."""

    __tablename__ = "event_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    changed_by: Mapped[str] = mapped_column(String(128))
    old: Mapped[dict[str, Any]] = mapped_column(JSON)
    new: Mapped[dict[str, Any]] = mapped_column(JSON)


class Delivery(Base):
    """The delivery ledger: one row per chat, event occurrence and lead time.

    The unique key is what makes a reminder "sent exactly once": a row is created
    once, claimed atomically by one dispatcher, and marked with its outcome.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Looked up by chat through uq_deliveries_key, which begins with it.
    chat_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("chats.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(  # None for digests
        ForeignKey("events.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[DeliveryKind] = mapped_column(_enum(DeliveryKind, "delivery_kind"))
    occurrence_at: Mapped[dt.datetime]  # start of the event occurrence it is about
    slot: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[dt.datetime]
    # After this it is stale news (the event started, the month is over): skipped, not sent.
    expires_at: Mapped[dt.datetime]
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[dt.datetime | None]  # retry back-off
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    change_id: Mapped[int | None] = mapped_column(
        ForeignKey("event_changes.id", ondelete="CASCADE")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# What makes a delivery "sent once": one row per chat, event occurrence, kind and slot.
# A digest has no event; NULLs are distinct in unique constraints, hence coalesce.
Index(
    "uq_deliveries_key",
    Delivery.chat_id,
    func.coalesce(Delivery.event_id, 0),
    Delivery.kind,
    Delivery.occurrence_at,
    Delivery.slot,
    unique=True,
)


class DeliveryDailyCount(Base):
    """How many deliveries of a kind ended with a status on a day (UTC), for the days whose
    ledger rows are gone: rows older than ``DELIVERY_RETENTION_DAYS`` are removed, and
    counted here first (storage/retention.py), so totals over a period stay right.

    ``day`` is the UTC date the delivery finished (its due date if it has no finish time).
    Kind and status are plain strings, not the ledger's CHECKed enums: a count of the
    past stays valid whatever kinds the ledger allows later.
    """

    __tablename__ = "delivery_daily_counts"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class Dialogue(Base):
    """What a person was last asked in a chat (an operator's /addevent, linking a channel),
    kept here rather than in one process's memory so that any replica can take the answer.
    """

    __tablename__ = "dialogues"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class PendingOperation(Base):
    """An operator's change shown under Save and Cancel, waiting behind a one-time token."""

    __tablename__ = "pending_operations"

    token: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class CalendarFeed(Base):
    """The secret address of a chat's calendar feed (``/calendar/<token>.ics``): a new
    token replaces the old one, which then stops working."""

    __tablename__ = "calendar_feeds"

    chat_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True
    )
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ProcessedUpdate(Base):
    """Telegram updates already taken by a webhook replica: Telegram may post one again
    (after a time-out or an error), possibly to another replica, which then skips it."""

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    received_at: Mapped[dt.datetime] = mapped_column(index=True)


class SourceKind(enum.StrEnum):
    ICAL = "ical"  # an iCalendar feed (.ics)
    DATAFILE = "datafile"  # a data file in our YAML format


class Source(Base):
    """A URL the bot polls for events (an iCalendar feed or a data file), with the state
    of its polling. ``claimed_by``/``claimed_until`` is a lease: one process polls it at a
    time, and a crashed one's claim lapses."""

    __tablename__ = "sources"
    # Checked in storage.sources as well, to say why; the database keeps it for any writer.
    __table_args__ = (
        CheckConstraint("interval_seconds >= 300", name="interval_at_least_5_minutes"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    kind: Mapped[SourceKind] = mapped_column(_enum(SourceKind, "source_kind"))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    language: Mapped[str] = mapped_column(String(8), default="en")
    interval_seconds: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_polled_at: Mapped[dt.datetime | None]
    last_success_at: Mapped[dt.datetime | None]
    # ok, not_modified, or what failed (a fetch error's code, invalid_feed, invalid_data…).
    last_status: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # When the current run of failures began (for /review: failing for more than a day).
    failing_since: Mapped[dt.datetime | None]
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(128))
    next_poll_at: Mapped[dt.datetime] = mapped_column(index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[dt.datetime | None]

    organisation: Mapped[Organisation | None] = relationship()


class SourceEvent(Base):
    """An event a source created: its UID in the source (the event id for a data file),
    the feed's last SEQUENCE and LAST-MODIFIED, the row it last gave (the values the
    source wants), and whether it is missing from the source or needs a person."""

    __tablename__ = "source_events"
    __table_args__ = (UniqueConstraint("source_id", "uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    uid: Mapped[str] = mapped_column(String(1000))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), unique=True)
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_modified: Mapped[dt.datetime | None]
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    seen_at: Mapped[dt.datetime]
    missing_since: Mapped[dt.datetime | None]
    # Set once when the source changed an event an operator had edited (the edit was
    # kept); shown in /review until an operator marks it seen.
    edit_kept_at: Mapped[dt.datetime | None]
