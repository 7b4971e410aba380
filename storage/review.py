"""The operator review queue: what in the data needs a person, most urgent first.

The code decides how facts age (``storage.aging``, ``storage.rotation``); this module
turns that into a list an operator can work through, computed at a moment ``now`` and
returned as plain data (no Telegram here):

a. events whose dates passed with no outcome recorded (lapsed), oldest first;
b. chairmanships whose term ended with no successor recorded, oldest end first;
c. events known only to the month or year whose period is running, without dates;
d. facts that can still change and were not checked for more than ``STALE_AFTER``
   (or never): events not yet over, the chairs of today and later, organisations.
   Settled history (a summit held, a term followed by its successor) is not re-checked;
e. events not over, of low confidence with at most one source.

One item per fact, at its most urgent reason; the other reasons it has ride along
(``also``), so recording an outcome may leave the fact in the queue for its check.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from storage.aging import AWAITING_OUTCOME, Standing, standing
from storage.dates import PartialDate, Precision
from storage.models import Chairmanship, Confidence, Event, EventStatus, Organisation
from storage.queries import Catalogue
from storage.rotation import OrganisationChairs, ProjectedChair, TermEnd
from storage.views import ChairView, EventView, OrganisationRef, PlaceView

# A fact not checked for longer than this needs checking again.
STALE_AFTER = dt.timedelta(days=90)


class ReviewKind(enum.StrEnum):
    """Why a fact needs a person; the order is the queue's order of urgency."""

    LAPSED = "lapsed"  # dates passed, outcome not recorded
    TERM_ENDED = "term_ended"  # a chair's term ended, no successor recorded
    UNDATED = "undated"  # month or year precision, its period running, no dates
    UNCHECKED = "unchecked"  # not checked for more than STALE_AFTER, or never
    WEAKLY_SOURCED = "weakly_sourced"  # confidence L and at most one source


_URGENCY = {kind: rank for rank, kind in enumerate(ReviewKind)}


class Subject(enum.StrEnum):
    EVENT = "event"
    CHAIRMANSHIP = "chairmanship"
    ORGANISATION = "organisation"


@dataclass(frozen=True)
class ChairKey:
    """A chairmanship as data files and the database name it."""

    organisation: str
    country: str
    start: str  # the start as written ("2025-07"); "" when not known

    @classmethod
    def of(cls, chair: ChairView) -> ChairKey:
        start = chair.start.literal if chair.start is not None else ""
        return cls(chair.organisation.key, chair.country, start)


@dataclass(frozen=True)
class ReviewItem:
    """One fact that needs a person, with what the actions on it need."""

    kind: ReviewKind
    subject: Subject
    event: EventView | None = None  # events: the occurrence at ``now``
    chair: ChairView | None = None  # chairmanships (for TERM_ENDED, the ended term)
    organisation: OrganisationRef | None = None  # organisations, and a chair's
    checked: dt.date | None = None  # when the fact was last checked
    also: tuple[ReviewKind, ...] = ()  # its other, less urgent, reasons
    ended: TermEnd | None = None  # TERM_ENDED: the term
    # TERM_ENDED: who the rotation rule projects next, and from when they would chair.
    successor: ProjectedChair | None = None
    # When a recorded successor would start: only where the record allows a date.
    successor_start: PartialDate | None = None

    @property
    def kinds(self) -> tuple[ReviewKind, ...]:
        return (self.kind, *self.also)

    @property
    def key(self) -> str:
        """What it is about: ``event:ID``, ``chair:ORG:COUNTRY:START``, ``organisation:KEY``."""
        if self.event is not None:
            return f"event:{self.event.key}"
        if self.chair is not None:
            chair = ChairKey.of(self.chair)
            return f"chair:{chair.organisation}:{chair.country}:{chair.start}"
        assert self.organisation is not None
        return f"organisation:{self.organisation.key}"

    @property
    def reason(self) -> str:
        """A short reason in English, for logs (the bot renders its own, translated)."""
        match self.kind:
            case ReviewKind.LAPSED:
                return "dates passed, outcome not recorded"
            case ReviewKind.TERM_ENDED:
                return "term ended, successor not recorded"
            case ReviewKind.UNDATED:
                return "expected this period, dates not announced"
            case ReviewKind.UNCHECKED:
                return f"last checked {self.checked}" if self.checked else "never checked"
            case ReviewKind.WEAKLY_SOURCED:
                return "low confidence, at most one source"


@dataclass(frozen=True)
class ReviewQueue:
    """The queue at ``now``: items most urgent first."""

    now: dt.datetime
    items: tuple[ReviewItem, ...]

    def __len__(self) -> int:
        return len(self.items)

    def find(self, key: str, kind: ReviewKind | None = None) -> ReviewItem | None:
        """The item about ``key`` (see :attr:`ReviewItem.key`), if it has ``kind`` among
        its reasons (any, without ``kind``)."""
        for item in self.items:
            if item.key == key and (kind is None or kind in item.kinds):
                return item
        return None


def is_stale(checked: dt.date | None, today: dt.date) -> bool:
    """Never checked, or checked more than STALE_AFTER before ``today``."""
    return checked is None or today - checked > STALE_AFTER


def _event_reasons(event: EventView, now: dt.datetime) -> list[ReviewKind]:
    """Why one event (its occurrence at ``now``) needs a person, most urgent first."""
    found = standing(event, now)
    reasons = []
    if found is Standing.LAPSED:
        reasons.append(ReviewKind.LAPSED)
    elif found is Standing.UNDATED_NOW:
        reasons.append(ReviewKind.UNDATED)
    if found in (Standing.COMING, Standing.UNDATED_NOW):
        # Only what may still change is checked again: not history, not a cancellation.
        if is_stale(event.checked, now.date()):
            reasons.append(ReviewKind.UNCHECKED)
        if event.confidence is Confidence.LOW and len(event.sources) <= 1:
            reasons.append(ReviewKind.WEAKLY_SOURCED)
    return reasons


def _order(item: ReviewItem) -> tuple[object, ...]:
    """Most urgent kind first; within a kind, the longest waiting first."""
    if item.kind is ReviewKind.LAPSED and item.event is not None:
        within: tuple[object, ...] = (item.event.ends_at, item.event.key)
    elif item.kind is ReviewKind.TERM_ENDED and item.ended is not None:
        within = (item.ended.last_day or dt.date.min, item.key)
    elif item.kind is ReviewKind.UNCHECKED:
        # Never checked first, then the oldest check; events, chairs, organisations.
        subjects = list(Subject)
        checked = item.checked or dt.date.min
        within = (item.checked is not None, checked, subjects.index(item.subject), item.key)
    elif item.event is not None:
        within = (item.event.starts_at, item.event.key)
    else:
        within = (item.key,)
    return (_URGENCY[item.kind], *within)


def successor_start(ended: TermEnd, successor: ProjectedChair | None) -> PartialDate | None:
    """When the projected successor would start, as precisely as the record allows, or
    None where it allows no date: a calendar-year term begins on 1 January; a chair
    passed on at a summit begins on the summit's last day, at its precision, and only
    when the summit is recorded as held (else nothing says it passed on at all)."""
    if successor is None:
        return None
    if successor.year is not None:
        return PartialDate(successor.year, 1, 1, precision=Precision.DAY)
    summit = ended.handover
    if summit is None or not ended.handover_recorded:
        return None
    last = summit.end or summit.start
    if last.precision is Precision.TIME:
        return PartialDate(last.year, last.month, last.day, precision=Precision.DAY)
    return last


def build_queue(
    now: dt.datetime,
    events: Sequence[EventView],
    chairs: Sequence[ChairView],
    organisations: Sequence[tuple[OrganisationRef, dt.date | None]],
    chairs_today: Sequence[OrganisationChairs],
) -> ReviewQueue:
    """The queue at ``now`` from the facts themselves (the unit under test).

    ``events`` as stored (recurring ones are looked at in their occurrence at ``now``);
    ``chairs`` every recorded chairmanship; ``organisations`` with the day each was
    checked; ``chairs_today`` who chairs each organisation today (``Catalogue.chairs_on``).
    """
    today = now.date()
    items: list[ReviewItem] = []
    for stored in events:
        event = stored.next_occurrence(now) or stored
        reasons = _event_reasons(event, now)
        if reasons:
            items.append(
                ReviewItem(
                    reasons[0],
                    Subject.EVENT,
                    event=event,
                    organisation=event.organisation,
                    checked=event.checked,
                    also=tuple(reasons[1:]),
                )
            )

    # Chairs that can still change: today's, the ended ones, and those recorded ahead.
    ended = {ChairKey.of(g.ended.chair): g for g in chairs_today if g.ended is not None}
    current = {ChairKey.of(chair) for g in chairs_today for chair in g.chairs}
    for chair in chairs:
        key = ChairKey.of(chair)
        stale = is_stale(chair.checked, today)
        group = ended.get(key)
        if group is not None and group.ended is not None:
            successor = group.projected[0] if group.projected else None
            items.append(
                ReviewItem(
                    ReviewKind.TERM_ENDED,
                    Subject.CHAIRMANSHIP,
                    chair=chair,
                    organisation=chair.organisation,
                    checked=chair.checked,
                    also=(ReviewKind.UNCHECKED,) if stale else (),
                    ended=group.ended,
                    successor=successor,
                    successor_start=successor_start(group.ended, successor),
                )
            )
            continue
        ahead = chair.start is not None and chair.start.first_day > today
        if stale and (key in current or ahead):
            items.append(
                ReviewItem(
                    ReviewKind.UNCHECKED,
                    Subject.CHAIRMANSHIP,
                    chair=chair,
                    organisation=chair.organisation,
                    checked=chair.checked,
                )
            )

    for organisation, checked in organisations:
        if is_stale(checked, today):
            items.append(
                ReviewItem(
                    ReviewKind.UNCHECKED,
                    Subject.ORGANISATION,
                    organisation=organisation,
                    checked=checked,
                )
            )
    return ReviewQueue(now, tuple(sorted(items, key=_order)))


async def review_queue(catalogue: Catalogue, now: dt.datetime) -> ReviewQueue:
    """The review queue at ``now``, read from the database (three statements, plus the
    catalogue's cached chairs)."""
    async with catalogue.database.sessions() as session:
        org_rows = (await session.scalars(select(Organisation).order_by(Organisation.key))).all()
        refs = {org.id: OrganisationRef.of(org) for org in org_rows}
        organisations = [(refs[org.id], org.checked_on) for org in org_rows]
        chairs = [
            ChairView.of(chair, refs[chair.organisation_id])
            for chair in await session.scalars(
                select(Chairmanship).order_by(Chairmanship.organisation_id, Chairmanship.id)
            )
        ]
        events = []
        for event in await session.scalars(
            select(Event)
            .options(joinedload(Event.place))
            .where(
                Event.status != EventStatus.CANCELLED,
                # Over with an outcome is settled history: not read at all.
                or_(
                    Event.ends_at > now,
                    Event.recurrence.is_not(None),
                    Event.status.in_(AWAITING_OUTCOME),
                ),
            )
            .order_by(Event.starts_at, Event.id)
        ):
            org = refs.get(event.organisation_id) if event.organisation_id else None
            place = PlaceView.of(event.place) if event.place else None
            events.append(EventView.of(event, org, place))
    chairs_today = await catalogue.chairs_on(now.date())
    return build_queue(now, events, chairs, organisations, chairs_today)


async def review_queue_length(catalogue: Catalogue, now: dt.datetime) -> int:
    """How many items the review queue has at ``now`` (for /stats and /metrics)."""
    return len(await review_queue(catalogue, now))
