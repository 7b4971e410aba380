"""Sources the bot follows by itself: iCalendar feeds and data files polled over HTTPS.

This module keeps sources and their polling state, and applies what one poll brought
(rows already read and checked by the caller) through the same path as a data-file
import (``storage.dataset``): validation, the change log (who = ``source:<id>``), one
notice per follower, re-planned reminders. The rules it keeps:

- **Ownership.** A source creates events and changes only the events it created (linked
  in ``source_events``). A row whose id names an event someone else created fails the
  whole poll. A data-file source carries events only: places, organisations and
  chairmanships are an operator's to add (its events may name existing ones).
- **Operator edits win.** A row is written only when the source's values changed since
  its last poll. If the event was changed since by anyone else (the change log's last
  entry is not the source's; an operator's "checked today" is logged too), the new values
  are not written and the event is flagged once for /review ("changed in the feed, kept
  the operator's edit"). A row that does not say when its facts were checked (a feed's
  never does) keeps the day the event was last checked.
- **Stale copies.** A row with a lower ``SEQUENCE`` than the one stored, or the same
  with an older ``LAST-MODIFIED``, is ignored.
- **Gone.** An event that no longer comes from its source is not deleted: it is marked
  missing (shown in /review while it is neither over nor cancelled or held) and the
  mark is cleared if it comes back.

Polling state: a claim is a lease (``claimed_by`` until ``claimed_until``) taken with a
conditional UPDATE (due ones in a batch, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so
two processes never poll one source at once; errors back off (the interval after the
first failure in a row, doubled after each next one, at most a day, and never sooner
than a Retry-After).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import chosen_once
from storage.datafile import Dataset, DatasetError, EventRow, PlaceRow, Problem
from storage.dataset import apply_dataset, follow_up_import
from storage.models import (
    Event,
    EventChange,
    EventStatus,
    Organisation,
    Place,
    Source,
    SourceEvent,
    SourceKind,
)
from storage.planning import Planner

DEFAULT_INTERVAL = dt.timedelta(hours=1)
MIN_INTERVAL = dt.timedelta(minutes=5)
MAX_BACKOFF = dt.timedelta(days=1)
# A source failing for longer than this is shown in /review.
FAILING_FOR_REVIEW = dt.timedelta(days=1)
MAX_ERROR_CHARS = 500
_T = TypeVar("_T")


def changed_by(source_id: int) -> str:
    """Who a source's changes are logged as."""
    return f"source:{source_id}"


@dataclass(frozen=True)
class SourceView:
    """A source and the state of its polling, as plain data."""

    id: int
    url: str
    kind: SourceKind
    organisation: str | None  # the organisation's key
    language: str
    interval: dt.timedelta
    enabled: bool
    added_by: str
    added_at: dt.datetime
    last_polled_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_status: str | None
    last_error: str | None
    failures: int
    failing_since: dt.datetime | None
    next_poll_at: dt.datetime
    etag: str | None
    last_modified: str | None

    def failing_for(self, now: dt.datetime) -> dt.timedelta | None:
        return now - self.failing_since if self.failing_since is not None else None


class SourceError(ValueError):
    """A source cannot be added or changed as asked; ``reason`` says why:
    ``unknown_organisation``, ``interval_too_short``, ``duplicate_url``,
    ``organisation_required`` (an iCalendar feed belongs to an organisation) or
    ``unknown_source``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class UnknownOrganisation(SourceError):
    """A source names an organisation the database does not have (``str()`` is its key)."""

    def __init__(self, organisation: str) -> None:
        super().__init__("unknown_organisation", organisation)


def _view(source: Source, organisation: str | None) -> SourceView:
    return SourceView(
        id=source.id,
        url=source.url,
        kind=SourceKind(source.kind),
        organisation=organisation,
        language=source.language,
        interval=dt.timedelta(seconds=source.interval_seconds),
        enabled=source.enabled,
        added_by=source.added_by,
        added_at=source.added_at,
        last_polled_at=source.last_polled_at,
        last_success_at=source.last_success_at,
        last_status=source.last_status,
        last_error=source.last_error,
        failures=source.failures,
        failing_since=source.failing_since,
        next_poll_at=source.next_poll_at,
        etag=source.etag,
        last_modified=source.last_modified,
    )


def _with_organisation() -> Any:
    return select(Source, Organisation.key).outerjoin(
        Organisation, Organisation.id == Source.organisation_id
    )


async def add_source(
    session: AsyncSession,
    *,
    url: str,
    kind: SourceKind,
    organisation: str | None,
    language: str,
    interval: dt.timedelta,
    added_by: str,
    now: dt.datetime,
) -> SourceView:
    """A new source, due at once. Never commits. :class:`SourceError` if the interval
    is under five minutes, the URL is followed already, an iCalendar feed has no
    organisation, or the organisation key is not known (:class:`UnknownOrganisation`);
    ``duplicate_url`` also when another transaction adds the URL at the same time (the
    unique constraint's refusal). The URL must have been checked (HTTPS, a public
    address) by the caller."""
    if interval < MIN_INTERVAL:
        raise SourceError("interval_too_short", f"{interval} is under {MIN_INTERVAL}")
    if kind == SourceKind.ICAL and organisation is None:
        raise SourceError("organisation_required", "an iCalendar feed needs an organisation")
    if await _is_followed(session, url):
        raise SourceError("duplicate_url", url)
    organisation_id: int | None = None
    if organisation is not None:
        organisation_id = await session.scalar(
            select(Organisation.id).where(Organisation.key == organisation)
        )
        if organisation_id is None:
            raise UnknownOrganisation(organisation)
    source = Source(
        url=url,
        kind=kind,
        organisation_id=organisation_id,
        language=language,
        interval_seconds=int(interval.total_seconds()),
        enabled=True,
        added_by=added_by,
        added_at=now,
        next_poll_at=now,
        failures=0,
    )
    try:
        # A savepoint: another operator's row for the URL, committed after the check
        # above, fails this insert only, and the caller's transaction can still say why.
        async with session.begin_nested():
            session.add(source)
            await session.flush()
    except IntegrityError:
        if await _is_followed(session, url):
            raise SourceError("duplicate_url", url) from None
        raise
    return _view(source, organisation)


async def _is_followed(session: AsyncSession, url: str) -> bool:
    return await session.scalar(select(Source.id).where(Source.url == url)) is not None


async def list_sources(session: AsyncSession) -> list[SourceView]:
    """Every source, in the order they were added."""
    rows = await session.execute(_with_organisation().order_by(Source.id))
    return [_view(source, key) for source, key in rows.all()]


async def get_source(session: AsyncSession, source_id: int) -> SourceView | None:
    """One source, or None if there is no such source."""
    row = (await session.execute(_with_organisation().where(Source.id == source_id))).first()
    return _view(row[0], row[1]) if row is not None else None


async def remove_source(session: AsyncSession, source_id: int) -> bool:
    """Stop following a source; False if there was none. Its events stay (as an
    operator's would); only their links to it go. Never commits."""
    await session.execute(delete(SourceEvent).where(SourceEvent.source_id == source_id))
    result = await session.execute(delete(Source).where(Source.id == source_id))
    return bool(getattr(result, "rowcount", 0))


async def set_enabled(session: AsyncSession, source_id: int, enabled: bool) -> bool:
    """Switch a source on or off; False if there is no such source. Never commits."""
    values: dict[str, Any] = {"enabled": enabled}
    result = await session.execute(update(Source).where(Source.id == source_id).values(**values))
    return bool(getattr(result, "rowcount", 0))


def _lease_free(now: dt.datetime) -> Any:
    """No process holds the source's lease (none was taken, or it lapsed)."""
    return or_(Source.claimed_until.is_(None), Source.claimed_until < now)


def _due(now: dt.datetime) -> Any:
    return and_(Source.enabled.is_(True), Source.next_poll_at <= now)


async def claim_source(
    session: AsyncSession,
    source_id: int,
    *,
    worker: str,
    now: dt.datetime,
    lease: dt.timedelta,
    due_only: bool = True,
) -> SourceView | None:
    """Take the lease on a source (due, unless ``due_only`` is false) if no live process
    holds it; None otherwise. One conditional UPDATE: of two processes racing, the second
    finds the lease taken (on PostgreSQL it waits for the first's commit, then re-checks)."""
    claim = (
        update(Source)
        .where(Source.id == source_id, _lease_free(now))
        .values(claimed_by=worker, claimed_until=now + lease)
    )
    if due_only:
        claim = claim.where(_due(now))
    result = await session.execute(claim)
    if not getattr(result, "rowcount", 0):
        return None
    return await get_source(session, source_id)


async def claim_due_sources(
    session: AsyncSession, *, worker: str, now: dt.datetime, lease: dt.timedelta, limit: int
) -> list[SourceView]:
    """Claim up to ``limit`` enabled, due sources no live process holds, the most overdue
    first. Never commits. One UPDATE of the chosen rows (``storage.database.chosen_once``:
    another replica's choice is passed over, not waited for), re-checking that the lease
    is free."""
    due = (
        select(Source.id)
        .where(_due(now), _lease_free(now))
        .order_by(Source.next_poll_at, Source.id)
        .limit(limit)
    )
    chosen = chosen_once(session, due, "due")
    claimed = await session.scalars(
        update(Source)
        .where(Source.id.in_(select(chosen.c.id)), _lease_free(now))
        .values(claimed_by=worker, claimed_until=now + lease)
        .returning(Source.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(claimed.all())
    if not ids:
        return []
    rows = await session.execute(
        _with_organisation()
        .where(Source.id.in_(ids))
        .order_by(Source.next_poll_at, Source.id)
        .execution_options(populate_existing=True)
    )
    return [_view(source, key) for source, key in rows.all()]


def backoff(interval: dt.timedelta, failures: int, retry_after: float | None) -> dt.timedelta:
    """How long after the ``failures``-th failure in a row a source is polled again: the
    interval after the first, doubled after each next one; never sooner than the
    server's Retry-After (seconds); and at most a day, whatever a server asks."""
    delay = min(interval * (1 << min(max(failures - 1, 0), 20)), MAX_BACKOFF)
    if retry_after is not None:
        delay = max(delay, dt.timedelta(seconds=retry_after))
    return min(delay, MAX_BACKOFF)


async def record_failure(
    session: AsyncSession,
    source_id: int,
    *,
    worker: str,
    now: dt.datetime,
    status: str,
    error: str,
    retry_after: float | None = None,
) -> SourceView | None:
    """A failed poll: nothing else changed; back off and release the lease. Never commits."""
    source = await session.get(Source, source_id)
    if source is None:
        return None
    source.failures += 1
    source.failing_since = source.failing_since or now
    source.last_polled_at = now
    source.last_status = status
    source.last_error = error[:MAX_ERROR_CHARS]
    interval = dt.timedelta(seconds=source.interval_seconds)
    source.next_poll_at = now + backoff(interval, source.failures, retry_after)
    _release(source, worker)
    await session.flush()
    return await get_source(session, source_id)


async def record_success(
    session: AsyncSession,
    source_id: int,
    *,
    worker: str,
    now: dt.datetime,
    status: str,
    etag: str | None,
    last_modified: str | None,
    note: str | None = None,
) -> None:
    """A poll that worked (``ok`` or ``not_modified``); ``note`` says what was skipped.
    Written in the same transaction as what the poll imported. Never commits."""
    source = await session.get(Source, source_id)
    if source is None:
        return
    source.failures = 0
    source.failing_since = None
    source.last_polled_at = now
    source.last_success_at = now
    source.last_status = status
    source.last_error = note[:MAX_ERROR_CHARS] if note else None
    source.etag = etag[:512] if etag else None
    source.last_modified = last_modified[:128] if last_modified else None
    source.next_poll_at = now + dt.timedelta(seconds=source.interval_seconds)
    _release(source, worker)
    await session.flush()


async def release_leases(session: AsyncSession, worker: str) -> None:
    """Give back every lease ``worker`` holds (a process stopping). Never commits."""
    await session.execute(
        update(Source)
        .where(Source.claimed_by == worker)
        .values(claimed_by=None, claimed_until=None)
    )


def _release(source: Source, worker: str) -> None:
    """Give the lease back, if ``worker`` still holds it (a lapsed one may be another's)."""
    if source.claimed_by == worker:
        source.claimed_by = None
        source.claimed_until = None


async def known_places(session: AsyncSession) -> list[PlaceRow]:
    """The places a feed's LOCATION may name."""
    places = (await session.scalars(select(Place).order_by(Place.key))).all()
    return [
        PlaceRow(key=p.key, names=p.names, country=p.country, timezone=p.timezone) for p in places
    ]


# ---------------------------------------------------------------------------
# Applying a poll


@dataclass(frozen=True)
class SourceRow:
    """One event as a source gives it: its UID there, the row, and how new the copy is."""

    uid: str
    row: EventRow
    sequence: int = 0
    last_modified: dt.datetime | None = None


@dataclass
class PollReport:
    """What one poll did to the data."""

    added: list[str] = field(default_factory=list)  # event keys
    changed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # newly missing from the source
    returned: list[str] = field(default_factory=list)  # back after being missing
    kept_edits: list[str] = field(default_factory=list)  # the operator's edit kept
    stale: int = 0  # older copies ignored


class SourceRefused(DatasetError):
    """What a source gave may not be written (ownership); nothing was."""


def row_snapshot(row: EventRow) -> dict[str, Any]:
    """A row as JSON, dates as written: what a source last gave for an event."""
    data = row.model_dump(mode="json")
    data["start"] = row.start.literal
    data["end"] = row.end.literal if row.end is not None else None
    return data


def _is_stale(row: SourceRow, link: SourceEventView) -> bool:
    if row.sequence != link.sequence:
        return row.sequence < link.sequence
    return (
        row.last_modified is not None
        and link.feed_modified_at is not None
        and row.last_modified < link.feed_modified_at
    )


async def _edited_by_others(session: AsyncSession, event_ids: Sequence[int], who: str) -> set[int]:
    """Events whose last logged change was made by someone other than ``who``."""
    if not event_ids:
        return set()
    last = (
        select(EventChange.event_id, func.max(EventChange.id).label("last_id"))
        .where(EventChange.event_id.in_(event_ids))
        .group_by(EventChange.event_id)
        .subquery()
    )
    found = await session.scalars(
        select(EventChange.event_id)
        .join(last, last.c.last_id == EventChange.id)
        .where(EventChange.changed_by != who)
    )
    return set(found.all())


def check_datafile_sections(dataset: Dataset, name: str) -> None:
    """A data-file source carries events only; DatasetError (one problem) otherwise."""
    others = [s for s in ("places", "organisations", "chairmanships") if getattr(dataset, s)]
    if others:
        message = (
            f"a source may carry events only; {', '.join(others)} are added by operators "
            "(its events may name the ones the bot has)"
        )
        raise SourceRefused([Problem(name, 1, message)])


async def apply_poll(
    session: AsyncSession,
    source_id: int,
    rows: Sequence[SourceRow],
    *,
    now: dt.datetime,
    planner: Planner,
) -> PollReport:
    """Write what a poll gave (every row, all of it or nothing), then notices and
    reminders as an import does. Never commits; DatasetError (nothing written) when a
    row is refused or fails validation."""
    who = changed_by(source_id)
    links = await links_of(session, source_id)
    existing = await _event_ids(session, [row.row.id for row in rows])
    refused = [
        Problem(who, index + 1, f"event {row.row.id!r} was not created by this source")
        for index, row in enumerate(rows)
        if row.row.id in existing
        and (row.uid not in links or links[row.uid].event_id != existing[row.row.id])
    ]
    if refused:
        raise SourceRefused(refused)

    report = PollReport()
    # Every row's link is seen now; a stale or unchanged copy keeps what it had.
    updates: dict[str, LinkUpdate] = {}
    candidates: list[tuple[SourceRow, SourceEventView]] = []
    to_write: list[SourceRow] = []
    for row in rows:
        link = links.get(row.uid)
        if link is None:
            to_write.append(row)
            continue
        updates[row.uid] = LinkUpdate.kept(link)
        if link.missing_since is not None:
            report.returned.append(row.row.id)
        if _is_stale(row, link):
            report.stale += 1
        elif _gives_other_values(row_snapshot(row.row), link.snapshot):
            candidates.append((row, link))
    edited = await _edited_by_others(session, [link.event_id for _, link in candidates], who)
    for row, link in candidates:
        if link.event_id in edited:
            # The operator's values stay; the source's are remembered, so the flag is
            # raised once for this change and not again on every poll.
            updates[row.uid] = LinkUpdate.given(row, link.event_id, edit_kept=True)
            report.kept_edits.append(row.row.id)
        else:
            to_write.append(row)

    gone = await mark_missing(session, source_id, [row.uid for row in rows], now)
    gone_keys = await _event_keys(session, [event_id for _, event_id in gone])
    report.gone = [gone_keys.get(event_id, uid) for uid, event_id in gone]

    if to_write:
        checked = await _checked_days(session, [links[r.uid] for r in to_write if r.uid in links])
        imported = await apply_dataset(
            session,
            Dataset(events=[_keeping_checked(row, checked.get(row.uid)) for row in to_write]),
            changed_by=who,
        )
        await follow_up_import(session, imported, now, planner)
        report.added = list(imported.added["events"])
        report.changed = list(imported.changed["events"])
        ids = await _event_ids(session, [row.row.id for row in to_write])
        for row in to_write:
            updates[row.uid] = LinkUpdate.given(row, ids[row.row.id])
    await upsert_links(session, source_id, list(updates.values()), now=now)
    return report


def _gives_other_values(given: dict[str, Any], stored: dict[str, Any]) -> bool:
    """Whether a source's row differs from what it gave last time. A field rows did not
    have then (``location``, since 0014), left empty now, is no change: an upgrade alone
    must not read as every event changed in its feed."""
    compared = {name: value for name, value in given.items() if value is not None or name in stored}
    return compared != stored


def _keeping_checked(row: SourceRow, checked_on: dt.date | None) -> EventRow:
    """The row to write. A source that does not say when its facts were checked (a feed
    never does) leaves the day the event was last checked as it was."""
    if row.row.checked is not None or checked_on is None:
        return row.row
    return row.row.model_copy(update={"checked": checked_on})


def _chunks(values: Sequence[_T], size: int = 500) -> Iterator[Sequence[_T]]:
    """``values`` a few hundred at a time, for ``IN`` lists any database takes."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


async def _event_ids(session: AsyncSession, keys: Sequence[str]) -> dict[str, int]:
    """The ids of the events with these keys (those there are)."""
    found: dict[str, int] = {}
    for chunk in _chunks(keys):
        rows = await session.execute(select(Event.key, Event.id).where(Event.key.in_(chunk)))
        found.update((key, value) for key, value in rows.all())
    return found


async def _event_keys(session: AsyncSession, event_ids: Sequence[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in _chunks(event_ids):
        rows = await session.execute(select(Event.id, Event.key).where(Event.id.in_(chunk)))
        found.update((key, value) for key, value in rows.all())
    return found


async def _checked_days(
    session: AsyncSession, links: Sequence[SourceEventView]
) -> dict[str, dt.date]:
    """The day each linked event was last checked, by the source's UID (those checked)."""
    uids = {link.event_id: link.uid for link in links}
    found: dict[str, dt.date] = {}
    for chunk in _chunks(list(uids)):
        rows = await session.execute(
            select(Event.id, Event.checked_on).where(
                Event.id.in_(chunk), Event.checked_on.is_not(None)
            )
        )
        found.update((uids[event_id], day) for event_id, day in rows.all() if day)
    return found


@dataclass(frozen=True)
class SourceEventView:
    """An event a source created, as its link to the source keeps it."""

    uid: str
    event_id: int
    sequence: int
    feed_modified_at: dt.datetime | None  # the feed's LAST-MODIFIED for it
    snapshot: dict[str, Any]  # the values the source last gave
    seen_at: dt.datetime
    missing_since: dt.datetime | None
    edit_kept_at: dt.datetime | None


@dataclass(frozen=True)
class LinkUpdate:
    """What a poll keeps on the link of one of the source's events."""

    uid: str
    event_id: int
    sequence: int = 0
    feed_modified_at: dt.datetime | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)
    # The operator's edit was kept over these values: flagged for /review (once).
    edit_kept: bool = False

    @classmethod
    def given(cls, row: SourceRow, event_id: int, *, edit_kept: bool = False) -> LinkUpdate:
        """What the source gave now."""
        snapshot = row_snapshot(row.row)
        return cls(row.uid, event_id, row.sequence, row.last_modified, snapshot, edit_kept)

    @classmethod
    def kept(cls, link: SourceEventView) -> LinkUpdate:
        """What the link had (a stale or unchanged copy)."""
        return cls(link.uid, link.event_id, link.sequence, link.feed_modified_at, link.snapshot)


def _link_view(link: SourceEvent) -> SourceEventView:
    return SourceEventView(
        uid=link.uid,
        event_id=link.event_id,
        sequence=link.sequence,
        feed_modified_at=link.last_modified,
        snapshot=dict(link.snapshot),
        seen_at=link.seen_at,
        missing_since=link.missing_since,
        edit_kept_at=link.edit_kept_at,
    )


async def _links(session: AsyncSession, source_id: int) -> list[SourceEvent]:
    found = await session.scalars(
        select(SourceEvent).where(SourceEvent.source_id == source_id).order_by(SourceEvent.id)
    )
    return list(found.all())


async def links_of(session: AsyncSession, source_id: int) -> dict[str, SourceEventView]:
    """The events a source created, by its UID for each."""
    return {link.uid: _link_view(link) for link in await _links(session, source_id)}


async def upsert_links(
    session: AsyncSession, source_id: int, updates: Sequence[LinkUpdate], *, now: dt.datetime
) -> dict[str, SourceEventView]:
    """Link events to the source's UIDs for them, with what the source gave; seen now, so
    no longer missing. The source's links are read once, whatever their number. Never
    commits. :class:`SourceError` ``unknown_source``."""
    if await session.get(Source, source_id) is None:
        raise SourceError("unknown_source", str(source_id))
    links = {link.uid: link for link in await _links(session, source_id)}
    for update_ in updates:
        link = links.get(update_.uid)
        if link is None:
            link = SourceEvent(source_id=source_id, uid=update_.uid, event_id=update_.event_id)
            session.add(link)
            links[update_.uid] = link
        link.event_id = update_.event_id
        link.sequence = update_.sequence
        link.last_modified = update_.feed_modified_at
        link.snapshot = update_.snapshot
        link.seen_at = now
        link.missing_since = None
        if update_.edit_kept and link.edit_kept_at is None:
            link.edit_kept_at = now
    await session.flush()
    return {update_.uid: _link_view(links[update_.uid]) for update_ in updates}


async def upsert_link(
    session: AsyncSession,
    source_id: int,
    uid: str,
    *,
    event_id: int,
    sequence: int,
    feed_modified_at: dt.datetime | None,
    snapshot: dict[str, Any],
    now: dt.datetime,
) -> SourceEventView:
    """One link, as :func:`upsert_links` keeps them."""
    update_ = LinkUpdate(uid, event_id, sequence, feed_modified_at, snapshot)
    return (await upsert_links(session, source_id, [update_], now=now))[uid]


async def mark_missing(
    session: AsyncSession, source_id: int, present_uids: Iterable[str], now: dt.datetime
) -> list[tuple[str, int]]:
    """Mark the source's events it no longer gives as missing since ``now``; the (uid,
    event id) of those newly missing. One missing already keeps its first date. Never
    commits; the events themselves are not touched."""
    present = set(present_uids)
    gone: list[tuple[str, int]] = []
    for link in await _links(session, source_id):
        if link.uid not in present and link.missing_since is None:
            link.missing_since = now
            gone.append((link.uid, link.event_id))
    await session.flush()
    return gone


# ---------------------------------------------------------------------------
# What operators see: /review, /stats, /sources seen


@dataclass(frozen=True)
class FlaggedEvent:
    """An event of a source that needs a person."""

    key: str
    title: dict[str, str]
    source_id: int
    since: dt.datetime  # missing since, or the operator's edit kept since


@dataclass(frozen=True)
class SourceReview:
    failing: list[SourceView]  # failing for more than FAILING_FOR_REVIEW
    gone: list[FlaggedEvent]  # gone from their source, not over, not cancelled or held
    kept_edits: list[FlaggedEvent]  # changed in the source, the operator's edit kept

    def __len__(self) -> int:
        return len(self.failing) + len(self.gone) + len(self.kept_edits)


async def failing_sources(
    session: AsyncSession, now: dt.datetime, longer_than: dt.timedelta = FAILING_FOR_REVIEW
) -> list[SourceView]:
    """Enabled sources whose polls have all failed for longer than ``longer_than``, the
    longest failing first (for /review)."""
    rows = await session.execute(
        _with_organisation()
        .where(
            Source.enabled.is_(True),
            Source.failing_since.is_not(None),
            Source.failing_since < now - longer_than,
        )
        .order_by(Source.failing_since, Source.id)
    )
    return [_view(source, key) for source, key in rows.all()]


async def source_review(session: AsyncSession, now: dt.datetime) -> SourceReview:
    """Sources and their events that need a person."""
    failing = await failing_sources(session, now)
    settled = (EventStatus.CANCELLED, EventStatus.HELD)
    gone_rows = await session.execute(
        select(Event.key, Event.title, SourceEvent.source_id, SourceEvent.missing_since)
        .join(Event, Event.id == SourceEvent.event_id)
        .where(
            SourceEvent.missing_since.is_not(None),
            Event.status.not_in(settled),
            Event.ends_at > now,
        )
        .order_by(SourceEvent.missing_since, Event.key)
    )
    kept_rows = await session.execute(
        select(Event.key, Event.title, SourceEvent.source_id, SourceEvent.edit_kept_at)
        .join(Event, Event.id == SourceEvent.event_id)
        .where(SourceEvent.edit_kept_at.is_not(None))
        .order_by(SourceEvent.edit_kept_at, Event.key)
    )
    return SourceReview(
        failing=failing,
        gone=[FlaggedEvent(k, dict(t), s, since or now) for k, t, s, since in gone_rows.all()],
        kept_edits=[
            FlaggedEvent(k, dict(t), s, since or now) for k, t, s, since in kept_rows.all()
        ],
    )


async def mark_edit_seen(session: AsyncSession, event_key: str) -> bool:
    """An operator has seen that the source changed an event they had edited. Never commits."""
    event_id = await session.scalar(select(Event.id).where(Event.key == event_key))
    if event_id is None:
        return False
    result = await session.execute(
        update(SourceEvent)
        .where(SourceEvent.event_id == event_id, SourceEvent.edit_kept_at.is_not(None))
        .values(edit_kept_at=None)
    )
    return bool(getattr(result, "rowcount", 0))


@dataclass(frozen=True)
class SourceCounts:
    total: int
    enabled: int
    failing: int  # enabled, and the last poll failed


async def source_counts(session: AsyncSession) -> SourceCounts:
    sources = await list_sources(session)
    return SourceCounts(
        total=len(sources),
        enabled=sum(1 for s in sources if s.enabled),
        failing=sum(1 for s in sources if s.enabled and s.failures > 0),
    )
