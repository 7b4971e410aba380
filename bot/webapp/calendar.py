"""A year of events for the Mini App's calendar, asked of the catalogue as the chat asks.

``/summits YEAR`` lists a year's events with ``Catalogue.events`` (the year's filter:
the venue-local dates touch the year); the calendar shows the same list, observances
included, with each recurring event at its occurrence in that year
(``EventView.next_occurrence``) rather than only in the year it was first held. The
answer for a (revision, year, organisation) is kept until the catalogue's revision
changes, like the catalogue's own caches: nothing that depends on the moment is kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from storage.queries import Catalogue, EventFilter, When
from storage.views import EventView

# Events read per page while a year is gathered (a year holds a few hundred at most).
PAGE_SIZE = 500
# Years and organisations kept at once; emptied when full (a new revision empties it too).
MAX_CACHED_YEARS = 256
# The years a calendar may show, and how many occurrences of one recurring event a year.
FIRST_YEAR, LAST_YEAR = 1900, 2200
MAX_OCCURRENCES = 366


@dataclass(frozen=True)
class YearSpan:
    """The years the calendar offers: from the first event's to the last one's."""

    first: int
    last: int


def touches_year(event: EventView, year: int) -> bool:
    """Whether the event's venue-local dates (at their precision) touch ``year``."""
    last = (event.end or event.start).last_day
    return event.start.first_day.year <= year <= last.year


def occurrences_in(event: EventView, year: int) -> Iterator[EventView]:
    """A recurring event's occurrences touching ``year`` (a single event: itself, if it does)."""
    if not event.recurrence:
        if touches_year(event, year):
            yield event
        return
    # The first occurrence not over when the year begins (a day early: venue zones).
    moment = dt.datetime(year, 1, 1, tzinfo=dt.UTC) - dt.timedelta(days=1)
    for _ in range(MAX_OCCURRENCES):
        occurrence = event.next_occurrence(moment)
        if occurrence is None or occurrence.start.first_day.year > year:
            return
        if touches_year(occurrence, year):
            yield occurrence
        moment = max(occurrence.ends_at, moment + dt.timedelta(seconds=1))


# Time zones of the venues shown. ZoneInfo keeps only a few zones it made without being
# held elsewhere; a calendar of hundreds of venues would read their files again for every
# request (judging whether an event is over reads its venue's zone). Held here instead.
_ZONES: dict[str, ZoneInfo] = {}


def keep_zones(events: Iterable[EventView]) -> None:
    for event in events:
        if event.timezone and event.timezone not in _ZONES:
            _ZONES[event.timezone] = ZoneInfo(event.timezone)


class YearCalendar:
    """The events of a year (of one organisation), by start, as of the catalogue's revision."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._years: dict[tuple[int, str | None], tuple[EventView, ...]] = {}
        self._span: YearSpan | None = None
        self._revision: tuple[object, ...] | None = None

    async def _current(self) -> None:
        revision = await self.catalogue.revision()
        if revision != self._revision:
            self._years, self._span, self._revision = {}, None, revision

    async def events(self, year: int, organisation: str | None) -> tuple[EventView, ...]:
        """Every event whose dates touch ``year``, recurring ones at their occurrences in it."""
        await self._current()
        years = self._years  # this revision's (a newer one may replace it meanwhile)
        cached = years.get((year, organisation))
        if cached is not None:
            return cached
        found: dict[tuple[str, dt.datetime], EventView] = {}
        # The year's list as /summits YEAR reads it, observances and cancelled ones included.
        listed = EventFilter(organisation=organisation, year=year, include_observances=True)
        async for event in self._every(listed, _MOMENT):
            for occurrence in occurrences_in(event, year):
                found[(occurrence.key, occurrence.starts_at)] = occurrence
        # Recurring events first held in an earlier year: the upcoming list from the
        # year's start has each at its next occurrence, among the year's own events.
        start = dt.datetime(year, 1, 1, tzinfo=dt.UTC) - dt.timedelta(days=1)
        end = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=1)
        coming = EventFilter(
            organisation=organisation, when=When.UPCOMING, include_observances=True
        )
        async for event in self._every(coming, start, until=end):
            if event.recurrence:
                for occurrence in occurrences_in(event, year):
                    found[(occurrence.key, occurrence.starts_at)] = occurrence
        ordered = tuple(sorted(found.values(), key=lambda e: (e.starts_at, e.key)))
        if len(years) >= MAX_CACHED_YEARS:
            years.clear()
        years[(year, organisation)] = ordered
        return ordered

    async def span(self, today: dt.date) -> YearSpan:
        """The first event's year to the last one's (this year at least)."""
        await self._current()
        if self._span is None:
            everything = EventFilter(include_observances=True)
            first = await self.catalogue.events(everything, _MOMENT, 0, 1)
            # A page past the end is the last one: the latest event by its start.
            last = await self.catalogue.events(everything, _MOMENT, 10**9, 1)
            years = [today.year]
            years += [e.start.first_day.year for e in first.events]
            years += [(e.end or e.start).last_day.year for e in last.events]
            self._span = YearSpan(max(min(years), FIRST_YEAR), min(max(years), LAST_YEAR))
        return self._span

    async def _every(
        self, query: EventFilter, now: dt.datetime, *, until: dt.datetime | None = None
    ) -> AsyncIterator[EventView]:
        """Every event of a list, page by page; with ``until``, until one starts after it."""
        page = 0
        while True:
            found = await self.catalogue.events(query, now, page, PAGE_SIZE)
            for event in found.events:
                if until is not None and event.starts_at >= until:
                    return
                yield event
            page += 1
            if page >= found.pages:
                return


# A list that is not "upcoming" does not depend on the moment; any will do.
_MOMENT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
