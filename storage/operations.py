"""What operators do to the data, without Telegram: add, edit, postpone and cancel an event,
import a data file, and the numbers behind /stats.

An operator's change is written exactly as an import writes it: as an :class:`EventRow`
through :func:`storage.dataset.apply_dataset` and :func:`storage.dataset.follow_up_import`,
so it is checked the same way, recorded in ``event_changes`` with who made it, re-plans
the event's reminders and tells its followers.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.datafile import RECURRENCES, ChairmanshipRow, Dataset, EventRow, OrganisationRow
from storage.dataset import (
    ImportReport,
    apply_dataset,
    check_references,
    follow_up_import,
    import_text,
)
from storage.dates import PartialDate, Precision, Span
from storage.export import event_to_row
from storage.models import (
    Chairmanship,
    Chat,
    ChatType,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Event,
    EventStatus,
    Organisation,
    Place,
    Subscription,
    SubscriptionScope,
)
from storage.planning import Planner
from storage.queries import Catalogue
from storage.retention import counted_since
from storage.review import review_queue_length
from storage.rotation import RotationRule
from storage.search import normalise
from storage.views import EventView, OrganisationRef, PlaceView

MAX_EVENT_ID = 40  # events.key, and what fits in button data
MAX_TITLE = 200
MAX_SOURCE = 300
MAX_NOTE = 500
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


class EventConflict(Exception):
    """The event is no longer what the operator saw in the preview; nothing was written."""


class FactConflict(EventConflict):
    """The chairmanship or organisation is no longer what the operator saw (or, for a
    new chairmanship, one is recorded there or after it meanwhile); nothing was written."""


# --- events as data-file rows -----------------------------------------------------------


async def _load_event(session: AsyncSession, key: str, *, lock: bool = False) -> Event | None:
    statement = (
        select(Event)
        .options(selectinload(Event.organisation), selectinload(Event.place))
        .where(Event.key == key)
    )
    if lock:
        # FOR NO KEY UPDATE: edits exclude each other, but a replica planning reminders
        # (whose inserts check the foreign key with KEY SHARE) is not blocked by it, so
        # the two cannot deadlock over the event's row and the planning watermark.
        statement = statement.with_for_update(key_share=True)
    return await session.scalar(statement)


async def load_event_row(session: AsyncSession, key: str) -> EventRow | None:
    """The event ``key`` as a data-file row, or None if there is no such event."""
    event = await _load_event(session, key)
    if event is None:
        return None
    org_key = event.organisation.key if event.organisation else None
    return event_to_row(event, org_key, event.place)


def changed(row: EventRow, **values: Any) -> EventRow:
    """``row`` with some fields replaced, checked again like a row read from a file.

    Raises pydantic's ``ValidationError`` if the result is not a valid row.
    """
    return EventRow.model_validate({**dict(row), **values})


def with_place(row: EventRow, place: PlaceView | None, old_place: PlaceView | None) -> EventRow:
    """``row`` at another place, which brings its country and zone; without a place the
    event keeps the country and zone it had (``old_place`` is where it was)."""
    if place is None:
        country = row.country or (old_place.country if old_place else None)
        zone = row.timezone or (old_place.timezone if old_place else None)
        return changed(row, place=None, country=country, timezone=zone)
    return changed(row, place=place.key, country=None, timezone=None)


def _same_day_shift(start: PartialDate, new_start: PartialDate, end: PartialDate) -> PartialDate:
    delta = new_start.local_start - start.local_start
    moved = PartialDate.from_local(end.local_start + delta, end.precision)
    return PartialDate.parse(moved.literal)  # drop the hour a day-precision date never had


def postponed(row: EventRow, start: PartialDate, end: PartialDate | None = None) -> EventRow:
    """``row`` postponed to ``start`` (at the precision given), status "postponed".

    Without a new end, a known end moves with the start when both dates are days or
    times of day (a two-day summit stays two days); otherwise the end is dropped.
    """
    if end is None and row.end is not None:
        precise = (Precision.DAY, Precision.TIME)
        if (
            row.start.precision in precise
            and start.precision in precise
            and row.end.precision in precise
        ):
            end = _same_day_shift(row.start, start, row.end)
    return changed(row, start=start, end=end, status=EventStatus.POSTPONED)


def cancelled(row: EventRow, reason: str | None) -> EventRow:
    """``row`` cancelled; a reason becomes its note."""
    if reason:
        return changed(row, status=EventStatus.CANCELLED, note={"en": reason})
    return changed(row, status=EventStatus.CANCELLED)


def slug(text: str, limit: int = 24) -> str:
    """``Heads of State Council`` → ``heads-of-state-council``: ASCII, cut at a word."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = [w for w in _NOT_SLUG.split(ascii_text.lower()) if w]
    result = ""
    for word in words:
        candidate = f"{result}-{word}" if result else word
        if len(candidate) > limit:
            break
        result = candidate
    return result or (words[0][:limit] if words else "")


def proposed_event_id(
    organisation: str | None, start: PartialDate, place: str | None, title: str, kind: str
) -> str:
    """A readable id like the bundled ones: ``sco-2026-bishkek``, ``2026-world-water-day``."""
    prefix = f"{organisation}-{start.year:04d}" if organisation else f"{start.year:04d}"
    room = MAX_EVENT_ID - len(prefix) - 4  # "-" before, and "-2"… if it is taken
    return f"{prefix}-{place or slug(title, room) or kind.replace('_', '-')}"[:MAX_EVENT_ID]


async def free_event_id(session: AsyncSession, wanted: str) -> str:
    """``wanted`` if no event has it, else ``wanted-2``, ``wanted-3``… (within the limit)."""
    base = wanted[:MAX_EVENT_ID]
    taken = set(
        (await session.scalars(select(Event.key).where(Event.key.startswith(base[:30])))).all()
    )
    if base not in taken:
        return base
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = base[: MAX_EVENT_ID - len(suffix)].rstrip("-_") + suffix
        if candidate not in taken:
            return candidate
        number += 1


# --- places -----------------------------------------------------------------------------


async def _places(session: AsyncSession) -> list[Place]:
    return list((await session.scalars(select(Place).order_by(Place.key))).all())


async def find_place(session: AsyncSession, text: str) -> PlaceView | None:
    """The known place with this key or name (any language, any case)."""
    wanted = normalise(text)
    if not wanted:
        return None
    for place in await _places(session):
        if any(normalise(name) == wanted for name in (place.key, *place.names.values())):
            return PlaceView.of(place)
    return None


async def place_suggestions(
    session: AsyncSession, text: str, language: str, limit: int = 3
) -> list[str]:
    """Names of known places that look like ``text``, for "did you mean"."""
    names: dict[str, Place] = {}
    for place in await _places(session):
        for name in (place.key, *place.names.values()):
            names.setdefault(normalise(name), place)
    found = process.extract(
        normalise(text), list(names), scorer=fuzz.WRatio, score_cutoff=60, limit=limit * 4
    )
    result: list[str] = []
    for key, _, _ in found:
        place = names[key]
        name = place.names.get(language) or place.names.get("en") or place.key
        if name not in result:
            result.append(name)
    return result[:limit]


# --- previews, checks and saving --------------------------------------------------------


async def preview(session: AsyncSession, row: EventRow, now: dt.datetime) -> EventView:
    """How ``row`` would look once saved, as the view every card is drawn from."""
    org = (
        await session.scalar(select(Organisation).where(Organisation.key == row.organisation))
        if row.organisation
        else None
    )
    place = await session.scalar(select(Place).where(Place.key == row.place)) if row.place else None
    zone = row.timezone or (place.timezone if place else None)
    span = Span(row.start, row.end, zone)
    return EventView(
        key=row.id,
        organisation=OrganisationRef.of(org) if org else None,
        kind=row.kind,
        title=dict(row.title),
        place=PlaceView.of(place) if place else None,
        online=row.online,
        country=row.country or (place.country if place else None),
        timezone=zone,
        start=row.start,
        end=row.end,
        starts_at=span.starts_at,
        ends_at=span.ends_at,
        status=row.status,
        recurrence=RECURRENCES[row.recurrence] if row.recurrence else None,
        note=dict(row.note),
        confidence=row.confidence,
        sources=tuple(row.sources),
        updated_at=now,
        location=row.location,
    )


async def check_event(session: AsyncSession, row: EventRow) -> list[str]:
    """What an import would find wrong with ``row`` (unknown place, end before start…)."""
    problems = await check_references(session, Dataset(events=[row]))
    return [problem.message for problem in problems]


async def save_event(
    session: AsyncSession,
    row: EventRow,
    *,
    before: EventRow | None,
    changed_by: str,
    now: dt.datetime,
    planner: Planner,
) -> ImportReport:
    """Write ``row`` as an import would: checked, logged, followers told. Never commits.

    ``before`` is the event as the operator saw it; if it has changed since (or is gone),
    :class:`EventConflict` is raised and nothing is written. Raises
    :class:`storage.dataset.DatasetError` if the row does not fit the data.
    """
    current = await _load_event(session, row.id, lock=True)
    if current is None:
        raise EventConflict(row.id)
    org_key = current.organisation.key if current.organisation else None
    if before is None or event_to_row(current, org_key, current.place) != before:
        raise EventConflict(row.id)
    return await _apply(session, row, changed_by, now, planner)


async def add_event(
    session: AsyncSession, row: EventRow, *, changed_by: str, now: dt.datetime, planner: Planner
) -> tuple[EventRow, ImportReport]:
    """Write a new event under ``row.id`` or, if that was taken meanwhile, the next free id.

    Never commits; returns the row as saved and what the import did.
    """
    row = row.model_copy(update={"id": await free_event_id(session, row.id)})
    return row, await _apply(session, row, changed_by, now, planner)


async def _apply(
    session: AsyncSession, row: EventRow, changed_by: str, now: dt.datetime, planner: Planner
) -> ImportReport:
    report = await apply_dataset(session, Dataset(events=[row]), changed_by=changed_by)
    await follow_up_import(session, report, now, planner)
    return report


async def import_document(
    session: AsyncSession,
    text: str,
    name: str,
    *,
    changed_by: str,
    now: dt.datetime,
    planner: Planner,
) -> ImportReport:
    """Import one data file's text like ``summitbot import``: all or nothing. Never commits.

    Raises :class:`storage.dataset.DatasetError` listing every problem with its line.
    """
    report = await import_text(session, text, name, changed_by=changed_by)
    await follow_up_import(session, report, now, planner)
    return report


# --- chairmanships and organisations as data-file rows ---------------------------------


def chairmanship_to_row(chair: Chairmanship, organisation_key: str) -> ChairmanshipRow:
    """A chairmanship as a data file writes it (as ``summitbot export`` does)."""
    return ChairmanshipRow.model_validate(
        {
            "organisation": organisation_key,
            "country": chair.country,
            "start": chair.start_literal or None,
            "end": chair.end_literal or None,
            "end_note": dict(chair.end_note),
            "note": dict(chair.note),
            "confidence": chair.confidence,
            "sources": list(chair.sources),
            "checked": chair.checked_on,
        }
    )


def organisation_to_row(org: Organisation) -> OrganisationRow:
    """An organisation as a data file writes it (as ``summitbot export`` does)."""
    return OrganisationRow.model_validate(
        {
            "key": org.key,
            "names": dict(org.names),
            "abbreviations": dict(org.abbreviations),
            "aliases": list(org.aliases),
            "founded": org.founded,
            "founded_note": dict(org.founded_note),
            "headquarters": dict(org.headquarters),
            "members": org.members,
            "members_note": dict(org.members_note),
            "rotation": dict(org.rotation),
            "rotation_rule": RotationRule.stored(org.rotation_rule),
            "note": dict(org.note),
            "sources": list(org.sources),
            "checked": org.checked_on,
        }
    )


async def _load_chairmanship(
    session: AsyncSession, organisation: str, country: str, start: str, *, lock: bool = False
) -> Chairmanship | None:
    statement = (
        select(Chairmanship)
        .join(Organisation, Organisation.id == Chairmanship.organisation_id)
        .where(
            Organisation.key == organisation,
            Chairmanship.country == country,
            Chairmanship.start_literal == start,
        )
    )
    if lock:
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def load_chairmanship_row(
    session: AsyncSession, organisation: str, country: str, start: str
) -> ChairmanshipRow | None:
    """The chairmanship of ``organisation`` by ``country`` from ``start`` (as written,
    "" when none is recorded) as a data-file row, or None."""
    chair = await _load_chairmanship(session, organisation, country, start)
    return chairmanship_to_row(chair, organisation) if chair is not None else None


async def _load_organisation(
    session: AsyncSession, key: str, *, lock: bool = False
) -> Organisation | None:
    statement = select(Organisation).where(Organisation.key == key)
    if lock:
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def load_organisation_row(session: AsyncSession, key: str) -> OrganisationRow | None:
    """The organisation ``key`` as a data-file row, or None."""
    org = await _load_organisation(session, key)
    return organisation_to_row(org) if org is not None else None


async def save_fact(
    session: AsyncSession,
    row: ChairmanshipRow | OrganisationRow,
    *,
    before: ChairmanshipRow | OrganisationRow | None,
    changed_by: str,
    now: dt.datetime,
    planner: Planner,
) -> ImportReport:
    """Write a chairmanship or organisation row as an import would. Never commits.

    ``before`` is the row as the operator saw it; None adds a chairmanship, which must
    be the organisation's newest (a successor): if one is recorded at or after its start
    meanwhile, or the row changed since the preview, :class:`FactConflict` is raised and
    nothing is written. Raises :class:`storage.dataset.DatasetError` if it does not fit.
    """
    if isinstance(row, OrganisationRow):
        org = await _load_organisation(session, row.key, lock=True)
        if org is None or before is None or organisation_to_row(org) != before:
            raise FactConflict(row.key)
        dataset = Dataset(organisations=[row])
    else:
        start = row.start.literal if row.start else ""
        current = await _load_chairmanship(session, row.organisation, row.country, start, lock=True)
        if before is None:
            later = (
                select(Chairmanship.id)
                .join(Organisation, Organisation.id == Chairmanship.organisation_id)
                .where(Organisation.key == row.organisation)
            )
            if row.start is not None:
                later = later.where(Chairmanship.starts_on >= row.start.first_day)
            if current is not None or await session.scalar(later.limit(1)) is not None:
                raise FactConflict(row.organisation)
        elif current is None or chairmanship_to_row(current, row.organisation) != before:
            raise FactConflict(row.organisation)
        dataset = Dataset(chairmanships=[row])
    report = await apply_dataset(session, dataset, changed_by=changed_by)
    await follow_up_import(session, report, now, planner)
    return report


# --- /stats -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DueDelivery:
    due_at: dt.datetime
    chat_id: int
    event_key: str | None  # None for digests
    kind: DeliveryKind


@dataclass(frozen=True)
class OperatorStats:
    """Chats by type, who follows what, how delivery went lately, and what comes next."""

    chats: dict[tuple[ChatType, bool], int]  # (type, active) → chats
    subscriptions: dict[SubscriptionScope, int]  # of active chats
    deliveries: dict[DeliveryStatus, int]  # finished within the window
    next_due: tuple[DueDelivery, ...]
    window: dt.timedelta
    review_queue: int | None = None  # items in the review queue (storage.review)


async def operator_stats(
    session: AsyncSession,
    now: dt.datetime,
    window: dt.timedelta = dt.timedelta(days=7),
    upcoming: int = 5,
    catalogue: Catalogue | None = None,
) -> OperatorStats:
    """The numbers /stats shows (the review queue's length with ``catalogue``)."""
    chats: dict[tuple[ChatType, bool], int] = {}
    by_type = await session.execute(
        select(Chat.type, Chat.is_active, func.count()).group_by(Chat.type, Chat.is_active)
    )
    for chat_type, active, count in by_type.all():
        chats[(ChatType(chat_type), bool(active))] = int(count)

    subscriptions = dict.fromkeys(SubscriptionScope, 0)
    by_scope = await session.execute(
        select(Subscription.scope, func.count())
        .join(Chat, Chat.id == Subscription.chat_id)
        .where(Chat.is_active.is_(True))
        .group_by(Subscription.scope)
    )
    for scope, count in by_scope.all():
        subscriptions[SubscriptionScope(scope)] = int(count)

    finished = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
    deliveries = dict.fromkeys(finished, 0)
    by_status = await session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.status.in_(finished), Delivery.finished_at >= now - window)
        .group_by(Delivery.status)
    )
    for status, count in by_status.all():
        deliveries[DeliveryStatus(status)] = int(count)
    # Days whose rows the retention removed (storage/retention.py) count from their
    # counts: the whole days in the window. (With the window no longer than the
    # retention, the default, there are none: those rows are all still here.)
    first_whole_day = (now - window).astimezone(dt.UTC).date() + dt.timedelta(days=1)
    for status, count in (await counted_since(session, first_whole_day, finished)).items():
        deliveries[status] += count

    due = await session.execute(
        select(Delivery.due_at, Delivery.chat_id, Event.key, Delivery.kind)
        .outerjoin(Event, Event.id == Delivery.event_id)
        .where(Delivery.status == DeliveryStatus.PENDING)
        .order_by(Delivery.due_at, Delivery.id)
        .limit(upcoming)
    )
    next_due = tuple(
        DueDelivery(due_at, int(chat_id), key, DeliveryKind(kind))
        for due_at, chat_id, key, kind in due.all()
    )
    review = await review_queue_length(catalogue, now) if catalogue is not None else None
    return OperatorStats(chats, subscriptions, deliveries, next_due, window, review)
