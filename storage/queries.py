"""The domain questions the bot answers, as plain views.

Kept whole, though over 500 lines: it is essentially one class, the :class:`Catalogue`,
whose questions share its per-revision caches (organisations, timelines, lists, event
views, the search index) and the one read of the revision per request that keeps them
consistent.

"Who chairs X on day D", "what are the next summits", "find ШОС": every answer
is computed here, without Telegram, and unit-tested with a fixed clock.
Each method opens its own short read transaction.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from storage.aging import the_next
from storage.database import Database
from storage.dataset import CATALOGUE_VERSION_KEY
from storage.dates import PartialDate
from storage.models import (
    Chairmanship,
    Event,
    EventStatus,
    Meta,
    Organisation,
    Place,
    Subscription,
    SubscriptionScope,
)
from storage.rotation import OrganisationChairs, RotationRule, chairs_between
from storage.search import SearchDocument, SearchHit, SearchIndex, normalise
from storage.views import (
    ChairView,
    EventPage,
    EventView,
    OrganisationCard,
    OrganisationRef,
    PlaceView,
)


class When(StrEnum):
    """Which part of the calendar a list shows."""

    UPCOMING = "upcoming"
    PAST = "past"
    ALL = "all"


# Observances recur every year; lists of summits leave them out.
MEETING_KINDS_EXCLUDE = ("observance",)


@dataclass(frozen=True)
class EventFilter:
    """A list of events: which organisation, which year, which part of the calendar."""

    organisation: str | None = None
    year: int | None = None
    when: When = When.ALL
    # None: only the general list of upcoming events shows international days.
    include_observances: bool | None = None

    @property
    def with_observances(self) -> bool:
        if self.include_observances is not None:
            return self.include_observances
        return self.organisation is None and self.when is When.UPCOMING


# A "did you mean" candidate: an organisation, or an event by its id.
Suggestion = OrganisationRef | str


@dataclass(frozen=True)
class DatasetCurrency:
    """How current the data are: the newest and the oldest day a fact was checked."""

    latest: dt.date | None
    oldest: dt.date | None


@dataclass(frozen=True)
class NextEvents:
    """/next: the next event, and undated ones that may already have taken place."""

    next: EventView | None
    uncertain: tuple[EventView, ...] = ()


@dataclass(frozen=True)
class SearchResults:
    organisations: tuple[OrganisationRef, ...]
    events: tuple[EventView, ...]
    exact_organisation: OrganisationRef | None
    suggestions: tuple[Suggestion, ...]
    # Organisations and events together, best match first.
    ranked: tuple[OrganisationRef | EventView, ...] = ()


def _event_query() -> Select[Event]:
    # Both are many-to-one: joined into the same query, not one more query each.
    return select(Event).options(joinedload(Event.organisation), joinedload(Event.place))


def _view(event: Event) -> EventView:
    org = OrganisationRef.of(event.organisation) if event.organisation else None
    place = PlaceView.of(event.place) if event.place else None
    return EventView.of(event, org, place)


@dataclass
class _RequestRevision:
    """The catalogue's revision as read once for one request (see :func:`one_revision`)."""

    revision: tuple[object, ...] | None = None
    open: bool = True


_request_revision: ContextVar[_RequestRevision | None] = ContextVar(
    "catalogue_request_revision", default=None
)


@contextmanager
def one_revision() -> Iterator[None]:
    """Within this block (one update), the catalogue's revision is read at most once.

    Caches are keyed by the revision, so one update reads it once and every lookup it
    makes agrees with the others; the next update reads it anew, so a write by another
    replica is seen by the next request. The scope closes with the block: a task that
    outlives the update (and copied its context) reads the revision itself again.
    """
    scope = _RequestRevision()
    token = _request_revision.set(scope)
    try:
        yield
    finally:
        scope.open = False
        _request_revision.reset(token)


@dataclass(frozen=True)
class _OrganisationFacts:
    """What an organisation's card shows that does not depend on the day: its row and chairs."""

    id: int
    ref: OrganisationRef
    founded: PartialDate | None
    founded_note: dict[str, str]
    headquarters: dict[str, str]
    members: int | None
    members_note: dict[str, str]
    rotation: dict[str, str]
    note: dict[str, str]
    sources: tuple[str, ...]
    chairs: tuple[ChairView, ...] = field(default=())
    rotation_rule: RotationRule | None = None
    checked: dt.date | None = None
    # The single events that can hand its chair on (the rule's kinds), by start.
    handovers: tuple[EventView, ...] = field(default=())


@dataclass(frozen=True)
class _Organisations:
    """Every organisation as of one revision: by key (in key order) and by name."""

    by_key: dict[str, _OrganisationFacts]
    names: dict[str, OrganisationRef]


@dataclass(frozen=True)
class _Timeline:
    """One organisation's events in brief, by start (and id): (starts_at, key, ends_at,
    status, recurring). Enough to pick what its card shows at any moment."""

    events: tuple[tuple[Any, ...], ...]

    def card_events(self, now: dt.datetime) -> tuple[str | None, list[str]]:
        """(the last held event, the events that may come next): the first coming single
        event and every recurring one, whose next occurrence is computed by the caller."""
        held = next(
            (
                key
                for _, key, ends_at, status, _ in reversed(self.events)
                if ends_at <= now and status is not EventStatus.CANCELLED
            ),
            None,
        )
        coming = [
            key
            for _, key, _, status, recurring in self.events
            if recurring and status is not EventStatus.CANCELLED
        ]
        # A few: the first may be an undated one that cannot be "the next" (storage.aging).
        coming.extend(
            itertools.islice(
                (
                    key
                    for _, key, ends_at, status, recurring in self.events
                    if ends_at > now and status is not EventStatus.CANCELLED and not recurring
                ),
                COMING_ON_A_CARD,
            )
        )
        return held, coming


@dataclass(frozen=True)
class _Singles:
    """Single events of a list in brief, by start (and id), to page the upcoming ones."""

    starts: list[dt.datetime]
    keys: list[str]
    ends: list[dt.datetime]
    ends_in_order: list[dt.datetime]
    longest: dt.timedelta  # the longest span: nothing that started earlier is still on

    @classmethod
    def of(cls, rows: Sequence[tuple[Any, ...]]) -> _Singles:
        starts = [row[0] for row in rows]
        ends = [row[2] for row in rows]
        spans = (end - start for start, end in zip(starts, ends, strict=True))
        return cls(
            starts=starts,
            keys=[row[1] for row in rows],
            ends=ends,
            ends_in_order=sorted(ends),
            longest=max(spans, default=dt.timedelta(0)),
        )

    def upcoming(self, now: dt.datetime, limit: int) -> tuple[list[tuple[dt.datetime, str]], int]:
        """The first ``limit`` events not over at ``now`` (start, id), and how many there are."""
        count = len(self.ends_in_order) - bisect.bisect_right(self.ends_in_order, now)
        # Every event starting before ``now - longest`` has ended; check the rest in order.
        index = bisect.bisect_right(self.starts, now - max(self.longest, dt.timedelta(0)))
        found: list[tuple[dt.datetime, str]] = []
        while len(found) < limit and index < len(self.starts):
            if self.ends[index] > now:
                found.append((self.starts[index], self.keys[index]))
            index += 1
        return found, count


# Single events a card considers for "Next" (undated ones that may be over are passed by).
COMING_ON_A_CARD = 4

# Bounds of the per-revision caches (emptied when full, rebuilt as requests come).
MAX_CACHED_LISTS = 1024
MAX_CACHED_EVENTS = 4096
# Events read along with a miss because they are likely asked for next (every card's).
MAX_PRELOADED_EVENTS = 1024


class _Recurring:
    """A recurring event with its last computed next occurrence (rrule is slow to step).

    The next occurrence found at ``now`` stays the next one until it ends: for any later
    moment before its end the answer is the same, so it is computed again only then (or
    for an earlier moment).
    """

    __slots__ = ("_occurrence", "_since", "event")

    def __init__(self, event: EventView) -> None:
        self.event = event
        self._since: dt.datetime | None = None
        self._occurrence: EventView | None = None

    def next_occurrence(self, now: dt.datetime) -> EventView | None:
        since, occurrence = self._since, self._occurrence
        if since is not None and since <= now and (occurrence is None or now < occurrence.ends_at):
            return occurrence
        occurrence = self.event.next_occurrence(now)
        self._since, self._occurrence = now, occurrence
        return occurrence


@functools.lru_cache(maxsize=1024)
def _filter_conditions(query: EventFilter) -> tuple[ColumnElement[bool], ...]:
    """A list's conditions that do not depend on the moment, built once per filter:
    building them cost more than picking a warm list's page."""
    conditions: list[ColumnElement[bool]] = []
    if query.organisation:
        conditions.append(
            Event.organisation_id.in_(
                select(Organisation.id).where(Organisation.key == query.organisation)
            )
        )
    if not query.with_observances:
        conditions.append(Event.kind.not_in(MEETING_KINDS_EXCLUDE))
    if query.year is not None:
        year_start = dt.datetime(query.year, 1, 1, tzinfo=dt.UTC)
        year_end = dt.datetime(query.year + 1, 1, 1, tzinfo=dt.UTC)
        # Spans are compared in UTC; a day either side keeps venue-zone days in their year.
        # Then exactly: the venue-local dates touch the year (the end's year is that of
        # its last day, whatever its precision).
        conditions += [
            Event.starts_at < year_end + dt.timedelta(days=1),
            Event.ends_at > year_start - dt.timedelta(days=1),
            Event.start_local < year_end.replace(tzinfo=None),
            func.coalesce(Event.end_local, Event.start_local) >= year_start.replace(tzinfo=None),
        ]
    if query.when is When.UPCOMING:
        conditions.append(Event.status != EventStatus.CANCELLED)
    return tuple(conditions)


class Catalogue:
    """Read-side service over organisations, chairmanships and events.

    What is cached in process (the search index; organisations with their names, facts
    and chairs; each organisation's timeline; the events of upcoming lists in brief;
    event views) is keyed by the catalogue's revision (:meth:`_revision`), read from the
    database once per request and before any data cached under it: a change written
    through any replica retires it before the next request. A cache filled while a
    newer revision arrives is filled under the revision it was read for, never the
    newer one. Nothing depending on the moment is cached, only what it is picked from.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._index: SearchIndex | None = None
        self._index_revision: tuple[object, ...] | None = None
        self._orgs: _Organisations | None = None
        self._orgs_revision: tuple[object, ...] | None = None
        self._timeline_cache: dict[int, _Timeline] = {}
        self._timelines_revision: tuple[object, ...] | None = None
        self._single_lists: dict[EventFilter, _Singles] = {}
        self._singles_revision: tuple[object, ...] | None = None
        self._recurring_lists: dict[EventFilter, list[_Recurring]] = {}
        self._recurring_revision: tuple[object, ...] | None = None
        self._views: dict[str, EventView] = {}
        self._views_revision: tuple[object, ...] | None = None

    # --- organisations -----------------------------------------------------

    async def organisations(self) -> list[OrganisationRef]:
        """Every organisation, by key."""
        return [facts.ref for facts in (await self._organisations()).by_key.values()]

    async def find_organisation(self, name: str) -> OrganisationRef | None:
        """The organisation with this key, name, abbreviation or alias (any language, any case)."""
        wanted = normalise(name)
        if not wanted:
            return None
        organisations = await self._organisations()
        found = organisations.names.get(wanted)
        if found is not None:
            return found
        hits = [hit for hit in (await self.search_index()).search(name, 3) if hit.exact]
        organisation_hits = [hit for hit in hits if hit.kind == "organisation"]
        if len(organisation_hits) == 1:
            facts = organisations.by_key.get(organisation_hits[0].key)
            return facts.ref if facts else None
        return None

    async def _organisations(self) -> _Organisations:
        """Every organisation by key and by each of its names, with its facts and chairs,
        as of the catalogue's revision; read again (two statements) when it changes.

        Where two share a name, the first by key wins.
        """
        revision = await self._revision()
        if self._orgs is not None and self._orgs_revision == revision:
            return self._orgs
        names: dict[str, OrganisationRef] = {}
        async with self.database.sessions() as session:
            orgs = (await session.scalars(select(Organisation).order_by(Organisation.key))).all()
            by_key = await self._load_facts(session, orgs)
        for org in orgs:
            ref = by_key[org.key].ref
            for candidate in (
                org.key,
                *org.names.values(),
                *org.abbreviations.values(),
                *org.aliases,
            ):
                names.setdefault(normalise(candidate), ref)
        self._orgs, self._orgs_revision = _Organisations(by_key, names), revision
        return self._orgs

    async def organisation_card(
        self, key: str, now: dt.datetime, today: dt.date | None = None
    ) -> OrganisationCard | None:
        """Everything /org shows: names, facts, chair history, last and next event; the
        chair as of ``today``, the reader's date (by default ``now``'s in UTC)."""
        return (await self.organisation_cards([key], now, today)).get(key)

    async def organisation_cards(
        self, keys: Iterable[str], now: dt.datetime, today: dt.date | None = None
    ) -> dict[str, OrganisationCard]:
        """The cards of several organisations by key (those that exist), in one session.

        Facts, chairs and each organisation's timeline come from the caches while the
        catalogue's revision holds; the last held and next events are picked from the
        timelines for ``now``, and their views come from the event cache.
        """
        facts = (await self._organisations()).by_key
        found = [facts[key] for key in dict.fromkeys(keys) if key in facts]
        if not found:
            return {}
        timelines = await self._timelines([f.id for f in found])
        picked = {fact.id: timelines[fact.id].card_events(now) for fact in found}
        # The timelines read last (another request's may have replaced these): they only
        # choose which events are read along, not what this card shows.
        all_timelines = self._timeline_cache

        def every_card() -> Iterator[str]:
            # A miss reads what every organisation's card shows now, in the same statement:
            # one at a time, most /org requests after a change missed their own.
            for timeline in all_timelines.values():
                held_key, coming_keys = timeline.card_events(now)
                if held_key:
                    yield held_key
                yield from coming_keys

        views = await self._events_by_key(
            [key for held_key, coming in picked.values() for key in (held_key, *coming) if key],
            also=every_card,
        )
        held: dict[int, EventView] = {}
        coming: dict[int, list[EventView]] = {}
        for organisation_id, (held_key, coming_keys) in picked.items():
            if held_key is not None and held_key in views:
                held[organisation_id] = views[held_key]
            coming[organisation_id] = [views[key] for key in coming_keys if key in views]
        today = today or now.date()
        cards = {}
        for fact in found:
            events = sorted(coming.get(fact.id, ()), key=lambda v: (v.starts_at, v.key))
            chair_today = _chairs_of(fact, today, today)
            cards[fact.ref.key] = OrganisationCard(
                organisation=fact.ref,
                founded=fact.founded,
                founded_note=dict(fact.founded_note),
                headquarters=dict(fact.headquarters),
                members=fact.members,
                members_note=dict(fact.members_note),
                rotation=dict(fact.rotation),
                note=dict(fact.note),
                sources=fact.sources,
                chairs=fact.chairs,
                current_chair=chair_today.chairs[0] if chair_today.chairs else None,
                last_event=held.get(fact.id),
                next_event=_next_of(events, now),
                chair_today=chair_today,
                checked=fact.checked,
                uncertain_events=_uncertain_of(events, now),
            )
        return cards

    async def _load_facts(
        self, session: AsyncSession, orgs: Sequence[Organisation]
    ) -> dict[str, _OrganisationFacts]:
        """The facts and chairs of these organisations (one more statement, for chairs)."""
        refs = {org.id: OrganisationRef.of(org) for org in orgs}
        chairs: dict[int, list[ChairView]] = {org.id: [] for org in orgs}
        if orgs:
            for row in await session.scalars(
                select(Chairmanship)
                .where(Chairmanship.organisation_id.in_(list(refs)))
                .order_by(
                    Chairmanship.organisation_id,
                    Chairmanship.starts_on.is_not(None),
                    Chairmanship.starts_on,
                    Chairmanship.id,
                )
            ):
                chairs[row.organisation_id].append(ChairView.of(row, refs[row.organisation_id]))
        rules = {org.id: RotationRule.stored(org.rotation_rule) for org in orgs}
        handovers: dict[int, list[EventView]] = {org.id: [] for org in orgs}
        kinds = sorted({kind for rule in rules.values() if rule for kind in rule.events})
        if kinds:
            for event in await session.scalars(
                _event_query()
                .where(
                    Event.organisation_id.in_([o for o, rule in rules.items() if rule]),
                    Event.kind.in_(kinds),
                    Event.recurrence.is_(None),
                )
                .order_by(Event.starts_at, self._key_order())
            ):
                assert event.organisation_id is not None
                handovers[event.organisation_id].append(_view(event))
        return {
            org.key: _OrganisationFacts(
                id=org.id,
                ref=refs[org.id],
                founded=PartialDate.parse(org.founded) if org.founded else None,
                founded_note=dict(org.founded_note),
                headquarters=dict(org.headquarters),
                members=org.members,
                members_note=dict(org.members_note),
                rotation=dict(org.rotation),
                note=dict(org.note),
                sources=tuple(org.sources),
                chairs=tuple(chairs[org.id]),
                rotation_rule=rules[org.id],
                checked=org.checked_on,
                handovers=tuple(handovers[org.id]),
            )
            for org in orgs
        }

    async def _timelines(self, organisation_ids: Sequence[int]) -> dict[int, _Timeline]:
        """Organisations' events in brief, by organisation, as of the catalogue's revision.

        Every organisation's at once, in one statement of a few columns, when a revision
        is first asked for: read one organisation at a time, most /org requests found
        theirs missing (there are many organisations, each asked for now and then).
        """
        revision = await self._revision()
        timelines = self._timeline_cache
        if self._timelines_revision != revision:
            rows: dict[int, list[tuple[Any, ...]]] = {}
            async with self.database.sessions() as session:
                result = await session.execute(
                    select(
                        Event.organisation_id,
                        Event.starts_at,
                        Event.key,
                        Event.ends_at,
                        Event.status,
                        Event.recurrence.is_not(None),
                    )
                    .where(Event.organisation_id.is_not(None))
                    .order_by(Event.starts_at, self._key_order())
                )
                for org_id, starts_at, key, ends_at, status, recurring in result:
                    if org_id is not None:
                        rows.setdefault(org_id, []).append(
                            (starts_at, key, ends_at, status, recurring)
                        )
            timelines = {org_id: _Timeline(tuple(events)) for org_id, events in rows.items()}
            self._timeline_cache, self._timelines_revision = timelines, revision
        empty = _Timeline(())
        return {org_id: timelines.get(org_id, empty) for org_id in organisation_ids}

    # --- chairmanships -----------------------------------------------------

    async def chairs_on(self, day: dt.date) -> list[OrganisationChairs]:
        """Who chaired each organisation on ``day``, as far as it is known: the recorded
        chair, or a term that had ended with no successor recorded and who the rotation
        rule expects (organisations with nothing to say are left out).

        On a handover day both terms cover the day; the one that started last wins.
        """
        return await self.chairs_during(day, day)

    async def chairs_during(self, first: dt.date, last: dt.date) -> list[OrganisationChairs]:
        """Every recorded chair of every organisation whose term overlaps ``first``..``last``,
        with terms that end within it unsucceeded and the rule's projections after them."""
        result = []
        for fact in (await self._organisations()).by_key.values():
            found = _chairs_of(fact, first, last)
            if found.chairs or found.ended or found.projected:
                result.append(found)
        return result

    async def currency(self) -> DatasetCurrency:
        """When the organisations, chairs and events were checked, newest and oldest."""
        async with self.database.sessions() as session:
            days: list[dt.date] = []
            for model in (Organisation, Chairmanship, Event):
                row = (
                    await session.execute(
                        select(func.max(model.checked_on), func.min(model.checked_on))
                    )
                ).one()
                days.extend(day for day in row if day is not None)
        return DatasetCurrency(max(days, default=None), min(days, default=None))

    # --- events ------------------------------------------------------------

    async def event(self, key: str) -> EventView | None:
        """The event with this id, or None (from this revision's cache of events: a
        channel post's deep link brings the same card to everyone who taps it)."""
        if "\x00" in key:  # no id holds a NUL, and PostgreSQL refuses one in text
            return None
        return (await self._events_by_key([key])).get(key)

    def _key_order(self) -> ColumnElement[str]:
        # Event ids compared byte by byte, as Python compares them, on both databases.
        return Event.key.collate("BINARY" if self.database.is_sqlite else "C")

    async def events(
        self, query: EventFilter, now: dt.datetime, page: int = 0, page_size: int = 8
    ) -> EventPage:
        """One page of events. Recurring ones appear at their next occurrence when upcoming.

        Filtering, counting and paging happen in the database; only the page's events
        (and, when upcoming, the few recurring ones, whose next occurrence is computed
        here) are loaded.
        """
        conditions = list(_filter_conditions(query))
        if query.when is When.PAST:
            conditions.append(Event.ends_at <= now)

        if query.when is not When.UPCOMING:
            async with self.database.sessions() as session:
                return await self._sorted_page(
                    session, conditions, page, page_size, descending=query.when is When.PAST
                )
        # Upcoming: recurring events at their next occurrence, merged with the others
        # (which are all still to come, so they sort by their own start).
        recurring = [
            occurrence
            for event in await self._recurring(query, conditions)
            for occurrence in [event.next_occurrence(now)]
            if occurrence is not None
        ]
        recurring.sort(key=lambda v: (v.starts_at, v.key))
        # Only the first ``last`` single events can reach the page; a page past the end
        # shows the last one, which those taken for the page asked for cover.
        asked = max(page, 0)
        singles = await self._singles(query, conditions)
        prefix, count = singles.upcoming(now, (asked + 1) * page_size)
        total = len(recurring) + count
        page, pages = _page_bounds(total, page, page_size)
        first, last = page * page_size, (page + 1) * page_size
        merged = sorted(
            [(starts_at, key, None) for starts_at, key in prefix]
            + [(view.starts_at, view.key, view) for view in recurring],
            key=lambda item: (item[0], item[1]),
        )[first:last]
        loaded = await self._events_by_key([key for _, key, view in merged if view is None])
        window = [view if view is not None else loaded[key] for _, key, view in merged]
        return EventPage(tuple(window), page, pages, total, page_size)

    async def _singles(
        self, query: EventFilter, conditions: Sequence[ColumnElement[bool]]
    ) -> _Singles:
        """The single (not recurring) events a list shows, in brief and in order, cached
        by revision and filter: the upcoming ones at any moment are picked from them."""
        revision = await self._revision()
        if self._singles_revision != revision:
            self._single_lists, self._singles_revision = {}, revision
        # This revision's lists: a newer revision may replace them while this one reads.
        lists = self._single_lists
        cached = lists.get(query)
        if cached is not None:
            return cached
        async with self.database.sessions() as session:
            rows = (
                await session.execute(
                    select(Event.starts_at, Event.key, Event.ends_at)
                    .where(*conditions, Event.recurrence.is_(None))
                    .order_by(Event.starts_at, self._key_order())
                )
            ).all()
        found = _Singles.of([tuple(row) for row in rows])
        if len(lists) >= MAX_CACHED_LISTS:
            lists.clear()
        lists[query] = found
        return found

    async def _recurring(
        self, query: EventFilter, conditions: Sequence[ColumnElement[bool]]
    ) -> list[_Recurring]:
        """The recurring events a list shows (few), cached by revision and filter."""
        revision = await self._revision()
        if self._recurring_revision != revision:
            self._recurring_lists, self._recurring_revision = {}, revision
        lists = self._recurring_lists  # this revision's (see ``_singles``)
        cached = lists.get(query)
        if cached is not None:
            return cached
        async with self.database.sessions() as session:
            rows = await session.scalars(
                _event_query().where(*conditions, Event.recurrence.is_not(None))
            )
            found = [_Recurring(_view(event)) for event in rows]
        if len(lists) >= MAX_CACHED_LISTS:
            lists.clear()
        lists[query] = found
        return found

    async def _events_by_key(
        self, keys: Sequence[str], also: Callable[[], Iterable[str]] | None = None
    ) -> dict[str, EventView]:
        """Events by key, from the cache of this revision's events where they are in it.

        When some are missing, the events ``also`` names (likely asked for soon) are read
        with them, as many as leave the cache room (up to MAX_PRELOADED_EVENTS).
        """
        revision = await self._revision()
        if self._views_revision != revision:
            self._views, self._views_revision = {}, revision
        views = self._views
        missing = list(dict.fromkeys(key for key in keys if key not in views))
        if missing:
            if len(views) + len(missing) > MAX_CACHED_EVENTS:
                views.clear()
            if also is not None:
                room = min(MAX_PRELOADED_EVENTS, MAX_CACHED_EVENTS - len(views) - len(missing))
                wanted = set(missing)
                extra = (key for key in also() if key not in views and key not in wanted)
                missing.extend(dict.fromkeys(itertools.islice(extra, max(room, 0))))
            async with self.database.sessions() as session:
                for event in await session.scalars(_event_query().where(Event.key.in_(missing))):
                    views[event.key] = _view(event)
        return {key: views[key] for key in keys if key in views}

    async def _count(self, session: AsyncSession, conditions: Sequence[ColumnElement[bool]]) -> int:
        return int(await session.scalar(select(func.count(Event.id)).where(*conditions)) or 0)

    async def _sorted_page(
        self,
        session: AsyncSession,
        conditions: Sequence[ColumnElement[bool]],
        page: int,
        page_size: int,
        *,
        descending: bool,
    ) -> EventPage:
        """A page of events by their stored start (and id), oldest or newest first."""
        total = await self._count(session, conditions)
        page, pages = _page_bounds(total, page, page_size)
        order = (
            (Event.starts_at.desc(), self._key_order().desc())
            if descending
            else (
                Event.starts_at,
                self._key_order(),
            )
        )
        rows = await session.scalars(
            _event_query()
            .where(*conditions)
            .order_by(*order)
            .offset(page * page_size)
            .limit(page_size)
        )
        return EventPage(tuple(_view(e) for e in rows), page, pages, total, page_size)

    async def next_event(
        self, organisation: str | None, now: dt.datetime, *, meetings_only: bool = True
    ) -> EventView | None:
        """The next event (of one organisation) that has not ended, is not called off, and
        is not an undated one that may already have taken place (storage.aging)."""
        return (await self.next_events(organisation, now, meetings_only=meetings_only)).next

    async def next_events(
        self, organisation: str | None, now: dt.datetime, *, meetings_only: bool = True
    ) -> NextEvents:
        """The next event, and the undated ones before it that may already have happened."""
        found = await self.events(
            EventFilter(
                organisation=organisation,
                when=When.UPCOMING,
                include_observances=not meetings_only,
            ),
            now,
            page_size=2 * COMING_ON_A_CARD,
        )
        return NextEvents(_next_of(found.events, now), _uncertain_of(found.events, now))

    async def followed_events(self, chat_id: int) -> list[EventView]:
        """Every event a chat follows: directly, through its organisation, or everything."""
        subscriptions = select(Subscription).where(Subscription.chat_id == chat_id).subquery()
        follows = or_(
            select(subscriptions.c.id)
            .where(subscriptions.c.scope == SubscriptionScope.ALL)
            .exists(),
            Event.organisation_id.in_(
                select(subscriptions.c.organisation_id).where(
                    subscriptions.c.scope == SubscriptionScope.ORGANISATION
                )
            ),
            Event.id.in_(
                select(subscriptions.c.event_id).where(
                    subscriptions.c.scope == SubscriptionScope.EVENT
                )
            ),
        )
        async with self.database.sessions() as session:
            rows = await session.scalars(_event_query().where(follows).order_by(Event.starts_at))
            return [_view(event) for event in rows]

    async def places(self, keys: Sequence[str | None]) -> dict[str, PlaceView]:
        wanted = [key for key in keys if key]
        async with self.database.sessions() as session:
            rows = await session.scalars(select(Place).where(Place.key.in_(wanted)))
            return {place.key: PlaceView.of(place) for place in rows}

    # --- search ------------------------------------------------------------

    async def revision(self) -> tuple[object, ...]:
        """The catalogue's revision (read once per request): changes with every change
        to places, organisations, chairs or events, made through any replica."""
        return await self._revision()

    async def _revision(self) -> tuple[object, ...]:
        # The catalogue's version, written with every change made through the bot or an
        # import (by any replica, whatever its clock), plus the count of changes the
        # database's triggers keep, for changes made in it directly (a row deleted by
        # hand too). Two rows of ``meta`` by key, read once per request (``one_revision``)
        # and always before the data cached under it.
        scope = _request_revision.get()
        if scope is not None and scope.open and scope.revision is not None:
            return scope.revision
        revision = await self._read_revision()
        if scope is not None and scope.open:
            scope.revision = revision
        return revision

    async def _read_revision(self) -> tuple[object, ...]:
        async with self.database.single_reads() as session:
            row = (await session.execute(select(*self.revision_columns()))).one()
        return tuple(row)

    @staticmethod
    def revision_columns() -> tuple[ScalarSelect[Any], ...]:
        """The revision as scalar subqueries, for a request's first statement to read
        along (``Chats.ensure``); hand the values to :meth:`use_revision`."""
        return _revision_columns()

    @staticmethod
    def use_revision(values: Sequence[object]) -> None:
        """The revision read along with something else at the start of this request:
        the catalogue's lookups in this request use it instead of reading it again."""
        scope = _request_revision.get()
        if scope is not None and scope.open and scope.revision is None:
            scope.revision = tuple(values)

    async def search_index(self) -> SearchIndex:
        """The search index, rebuilt when the data changed since it was built."""
        revision = await self._revision()
        if self._index is None or revision != self._index_revision:
            self._index = await self._build_index()
            self._index_revision = revision
        return self._index

    async def _build_index(self) -> SearchIndex:
        documents = []
        async with self.database.sessions() as session:
            orgs = (await session.scalars(select(Organisation))).all()
            for org in orgs:
                documents.append(
                    SearchDocument(
                        "organisation",
                        org.key,
                        (org.key, *org.names.values(), *org.abbreviations.values(), *org.aliases),
                    )
                )
            for event in await session.scalars(_event_query()):
                org_terms = (
                    (*event.organisation.abbreviations.values(), *event.organisation.aliases)
                    if event.organisation
                    else ()
                )
                place_terms = tuple(event.place.names.values()) if event.place else ()
                years = {str(event.start_local.year)}
                if event.end_local is not None:
                    years.add(str(event.end_local.year))
                documents.append(
                    SearchDocument(
                        "event",
                        event.key,
                        (event.key, *event.title.values()),
                        (*org_terms, *place_terms, *sorted(years), event.kind),
                    )
                )
        return SearchIndex(documents)

    async def search(
        self, text: str, now: dt.datetime, limit: int = 10, *, suggest: bool = True
    ) -> SearchResults:
        """Organisations and events matching ``text``, with suggestions when nothing does
        (unless not ``suggest``: a fuzzy pass over every name, some 10 ms with 10,000
        events, for a caller that shows none)."""
        index = await self.search_index()
        hits = index.search(text, limit)
        org_keys = [hit.key for hit in hits if hit.kind == "organisation"]
        event_keys = [hit.key for hit in hits if hit.kind == "event"]
        facts = (await self._organisations()).by_key
        orgs = {key: facts[key].ref for key in org_keys if key in facts}
        events = await self._events_by_key(event_keys)
        exact = _exact_organisation(hits)
        ranked = [
            orgs.get(hit.key) if hit.kind == "organisation" else events.get(hit.key) for hit in hits
        ]
        return SearchResults(
            organisations=tuple(orgs[key] for key in org_keys if key in orgs),
            events=tuple(events[key] for key in event_keys if key in events),
            exact_organisation=orgs.get(exact.key) if exact else None,
            suggestions=tuple(await self.suggestions(text)) if suggest and not hits else (),
            ranked=tuple(item for item in ranked if item is not None),
        )

    async def suggestions(self, text: str, kind: str | None = None) -> list[Suggestion]:
        """Organisations (and event ids) whose names look like ``text``."""
        index = await self.search_index()
        # In a thread: scoring every name takes tens of milliseconds with a large
        # catalogue, without the GIL, and other updates go on meanwhile.
        found = await asyncio.to_thread(index.suggestions, text, kind=kind)
        facts = (await self._organisations()).by_key
        orgs = {key: facts[key].ref for found_kind, key in found if key in facts}
        return [
            orgs.get(key, key) if found_kind == "organisation" else key for found_kind, key in found
        ]


# The row of ``meta`` that triggers add one to on every change to places, organisations,
# chairs or events, however made (migration 0009).
CATALOGUE_CHANGES_KEY = "catalogue_changes"


@functools.cache
def _revision_columns() -> tuple[ScalarSelect[Any], ...]:
    # Built once: statements are immutable, and building them took a millisecond an update.
    def meta(key: str) -> ScalarSelect[Any]:
        return select(Meta.value).where(Meta.key == key).scalar_subquery()

    return (meta(CATALOGUE_VERSION_KEY), meta(CATALOGUE_CHANGES_KEY))


def _exact_organisation(hits: list[SearchHit]) -> SearchHit | None:
    exact = [hit for hit in hits if hit.exact and hit.kind == "organisation"]
    return exact[0] if len(exact) == 1 else None


def _chairs_of(facts: _OrganisationFacts, first: dt.date, last: dt.date) -> OrganisationChairs:
    return chairs_between(
        facts.ref, facts.chairs, facts.rotation_rule, facts.handovers, first, last
    )


def _page_bounds(total: int, page: int, page_size: int) -> tuple[int, int]:
    """(the page shown, how many there are): a page past either end shows the nearest one."""
    pages = max(1, math.ceil(total / page_size))
    return min(max(page, 0), pages - 1), pages


def _occurrences(events: Sequence[EventView], now: dt.datetime) -> list[EventView]:
    return [
        occurrence
        for e in events
        if e.status is not EventStatus.CANCELLED
        for occurrence in [e.next_occurrence(now)]
        if occurrence is not None
    ]


def _next_of(events: Sequence[EventView], now: dt.datetime) -> EventView | None:
    return the_next(_occurrences(events, now), now)[0]


def _uncertain_of(events: Sequence[EventView], now: dt.datetime) -> tuple[EventView, ...]:
    """Undated events of a period begun, passed over for "the next" (storage.aging)."""
    return the_next(_occurrences(events, now), now)[1]
