"""Plain, immutable views of the data that the bot renders: never live ORM objects."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dateutil.rrule import rrule, rruleset, rrulestr
from sqlalchemy import Row

from storage.dates import UTC, PartialDate, Precision, to_utc
from storage.models import (
    Chairmanship,
    Chat,
    ChatType,
    Confidence,
    DigestFrequency,
    Event,
    EventStatus,
    Organisation,
    Place,
)

if TYPE_CHECKING:
    from storage.rotation import OrganisationChairs

Text = dict[str, str]


@dataclass(frozen=True)
class OrganisationRef:
    key: str
    names: Text
    abbreviations: Text

    @classmethod
    def of(cls, org: Organisation) -> OrganisationRef:
        return cls(org.key, dict(org.names), dict(org.abbreviations))


@dataclass(frozen=True)
class ChairView:
    organisation: OrganisationRef
    country: str
    start: PartialDate | None
    end: PartialDate | None
    end_note: Text
    note: Text
    confidence: Confidence
    sources: tuple[str, ...]
    checked: dt.date | None = None  # when the facts were last checked

    @classmethod
    def of(cls, chair: Chairmanship, org: OrganisationRef) -> ChairView:
        return cls(
            organisation=org,
            country=chair.country,
            start=PartialDate.parse(chair.start_literal) if chair.start_literal else None,
            end=PartialDate.parse(chair.end_literal) if chair.end_literal else None,
            end_note=dict(chair.end_note),
            note=dict(chair.note),
            confidence=chair.confidence,
            sources=tuple(chair.sources),
            checked=chair.checked_on,
        )

    def covers(self, day: dt.date) -> bool:
        """Whether the country may have been in the chair on ``day`` (ends inclusive)."""
        after_start = self.start is None or self.start.first_day <= day
        before_end = self.end is None or day <= self.end.last_day
        return after_start and before_end

    def overlaps(self, first: dt.date, last: dt.date) -> bool:
        after_start = self.start is None or self.start.first_day <= last
        before_end = self.end is None or first <= self.end.last_day
        return after_start and before_end


@dataclass(frozen=True)
class PlaceView:
    key: str
    names: Text
    country: str
    timezone: str

    @classmethod
    def of(cls, place: Place) -> PlaceView:
        return cls(place.key, dict(place.names), place.country, place.timezone)


@dataclass(frozen=True)
class EventView:
    """An event, or one occurrence of a recurring one (then ``start``/``end`` are that year's)."""

    key: str
    organisation: OrganisationRef | None
    kind: str
    title: Text
    place: PlaceView | None
    online: bool
    country: str | None
    timezone: str | None  # None: the same local day everywhere
    start: PartialDate
    end: PartialDate | None
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: EventStatus
    recurrence: str | None
    note: Text
    confidence: Confidence
    sources: tuple[str, ...]
    updated_at: dt.datetime
    checked: dt.date | None = None  # when the facts were last checked
    # Where it is in words, when no known place names it (a feed's LOCATION); a place wins.
    location: str | None = None

    @classmethod
    def of(cls, event: Event, org: OrganisationRef | None, place: PlaceView | None) -> EventView:
        return cls(
            key=event.key,
            organisation=org,
            kind=event.kind,
            title=dict(event.title),
            place=place,
            online=event.online,
            country=event.country,
            timezone=event.timezone,
            start=PartialDate.from_local(event.start_local, event.date_precision),
            end=(
                PartialDate.from_local(event.end_local, event.end_precision)
                if event.end_local is not None and event.end_precision is not None
                else None
            ),
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            status=event.status,
            recurrence=event.recurrence,
            note=dict(event.note),
            confidence=event.confidence,
            sources=tuple(event.sources),
            updated_at=event.updated_at,
            checked=event.checked_on,
            location=event.location_text,
        )

    @property
    def is_timed(self) -> bool:
        """Whether the start is known to the minute (only then are hours shown)."""
        return self.start.precision is Precision.TIME

    def is_over(self, now: dt.datetime) -> bool:
        return self.ends_at <= now

    def fits_digest(self, now: dt.datetime, window: dt.timedelta) -> bool:
        """Whether a digest covering ``now`` .. ``now + window`` should list it: it is not
        over and begins before the span ends (a date known only to the year never fits)."""
        if self.start.precision is Precision.YEAR or self.status is EventStatus.CANCELLED:
            return False
        return not self.is_over(now) and self.starts_at < now + window

    def next_occurrence(self, now: dt.datetime) -> EventView | None:
        """This event if it is not over; for a recurring one, its next occurrence not over."""
        if not self.is_over(now):
            return self
        if not self.recurrence:
            return None
        duration = self.ends_at - self.starts_at
        end_offset = (self.end.local_start - self.start.local_start) if self.end else None
        rule = _recurrence_rule(self.recurrence, self.start.local_start)
        # The first occurrence whose span has not ended: look back by the span's length.
        naive_now = now.astimezone(UTC).replace(tzinfo=None)
        candidate = rule.after(naive_now - duration - dt.timedelta(days=2), inc=True)
        while candidate is not None:
            starts_at = to_utc(candidate, self.timezone)
            if starts_at + duration > now:
                start = PartialDate.from_local(candidate, self.start.precision)
                end = (
                    PartialDate.from_local(candidate + end_offset, self.end.precision)
                    if self.end is not None and end_offset is not None
                    else None
                )
                return replace(
                    self, start=start, end=end, starts_at=starts_at, ends_at=starts_at + duration
                )
            candidate = rule.after(candidate)
        return None


@functools.lru_cache(maxsize=1024)
def _recurrence_rule(recurrence: str, dtstart: dt.datetime) -> rrule | rruleset:
    """An RRULE parsed once: every planning pass asks each recurring event for its next
    occurrence, and parsing cost more than finding it. (A rule is only read.)"""
    return rrulestr(recurrence, dtstart=dtstart)


@dataclass(frozen=True)
class OrganisationCard:
    organisation: OrganisationRef
    founded: PartialDate | None
    founded_note: Text
    headquarters: Text
    members: int | None
    members_note: Text
    rotation: Text
    note: Text
    sources: tuple[str, ...]
    chairs: tuple[ChairView, ...]  # oldest first
    current_chair: ChairView | None
    last_event: EventView | None
    next_event: EventView | None
    # Today's chair as far as it is known: a term that ended with nobody recorded after
    # it, and who the rotation rule expects (storage.rotation).
    chair_today: OrganisationChairs | None = None
    checked: dt.date | None = None
    # Undated events whose period is mostly gone: not "Next", but not known to be over.
    uncertain_events: tuple[EventView, ...] = ()


@dataclass(frozen=True)
class EventPage:
    events: tuple[EventView, ...]
    page: int
    pages: int
    total: int
    page_size: int


@dataclass(frozen=True)
class ChatView:
    id: int
    type: ChatType
    title: str | None
    language: str
    timezone: str
    is_active: bool
    paused: bool = False
    digest: DigestFrequency = DigestFrequency.OFF
    linked_by: int | None = None
    lead_times: tuple[int, ...] | None = None

    @classmethod
    def of(cls, chat: Chat | Row[Any]) -> ChatView:
        """From the stored chat, or a row of its columns by name (``Chats``)."""
        return cls(
            chat.id,
            chat.type,
            chat.title,
            chat.language,
            chat.timezone,
            chat.is_active,
            bool(chat.paused),
            DigestFrequency(chat.digest or DigestFrequency.OFF),
            chat.linked_by,
            tuple(chat.lead_times) if chat.lead_times else None,
        )
