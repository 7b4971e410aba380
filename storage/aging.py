"""How an event's facts age: what the bot may say of it on a given day.

A data file says "planned" until someone records the outcome, and a summit known
only as "2026" stays in its year until the year is over. The code, not the data,
decides what that means on the day a reader asks:

- an event whose dates are over (at their own precision) and whose outcome was never
  recorded (still planned, proposed or confirmed) has *lapsed*: it is never upcoming,
  never "the next", never reminded, and shows as "dates passed — outcome not recorded";
- an event known only to the month or year whose period is running has no dates yet:
  it says so, and once most of the period is gone it says it may already have happened,
  and it is not offered as "the next" while a dated event is.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from storage.dates import Precision
from storage.models import EventStatus
from storage.views import EventView

# Statuses that promise an outcome still to be recorded. "Postponed" is one of them: a
# postponement carries the new dates, and once those are over nothing says what happened.
AWAITING_OUTCOME = frozenset(
    {EventStatus.PLANNED, EventStatus.PROPOSED, EventStatus.CONFIRMED, EventStatus.POSTPONED}
)
IMPRECISE = frozenset({Precision.MONTH, Precision.YEAR})


class Standing(enum.StrEnum):
    """What an event is on a given day, whatever its status says."""

    COMING = "coming"  # not begun, or dated and under way
    UNDATED_NOW = "undated_now"  # month or year precision, its period running
    LAPSED = "lapsed"  # dates over, outcome not recorded
    OVER = "over"  # dates over with an outcome (held, postponed, cancelled)
    CANCELLED = "cancelled"  # called off before its dates


def _over(event: EventView, now: dt.datetime) -> bool:
    """Whether the event's dates are over. A start at a time of day with no end is an
    instant to remind at, not the meeting's length: it is over when its day is."""
    if event.start.precision is Precision.TIME and event.end is None:
        zone = ZoneInfo(event.timezone) if event.timezone else dt.UTC
        day = event.starts_at.astimezone(zone).date()
        return now >= dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
    return event.is_over(now)


def standing(event: EventView, now: dt.datetime) -> Standing:
    """What ``event`` is at ``now``; a recurring one, at its next occurrence."""
    if event.recurrence:
        occurrence = event.next_occurrence(now)
        if occurrence is None:
            return Standing.OVER
        event = occurrence
    if _over(event, now):
        return Standing.LAPSED if event.status in AWAITING_OUTCOME else Standing.OVER
    if event.is_over(now):  # a time of day, begun, its day not over: under way
        return Standing.COMING
    if event.status is EventStatus.CANCELLED:
        return Standing.CANCELLED
    if event.start.precision in IMPRECISE and event.starts_at <= now:
        return Standing.UNDATED_NOW
    return Standing.COMING


def is_lapsed(event: EventView, now: dt.datetime) -> bool:
    """Dates over and no outcome recorded: "dates passed — outcome not recorded"."""
    return standing(event, now) is Standing.LAPSED


def mostly_gone(event: EventView, now: dt.datetime, judged: Standing | None = None) -> bool:
    """An undated event whose period (a month, a year) is more than half over: it may
    already have taken place without the data saying so. ``judged``: its standing at
    ``now``, when the caller has it already."""
    if (judged or standing(event, now)) is not Standing.UNDATED_NOW:
        return False
    return now - event.starts_at > (event.ends_at - event.starts_at) / 2


def can_be_next(event: EventView, now: dt.datetime) -> bool:
    """Whether ``event`` may be offered as "the next" one on its own: not over, not called
    off, and not an undated event that may already have taken place."""
    found = standing(event, now)
    if found is Standing.UNDATED_NOW:
        return not mostly_gone(event, now)
    return found is Standing.COMING


def the_next(
    occurrences: Iterable[EventView], now: dt.datetime
) -> tuple[EventView | None, tuple[EventView, ...]]:
    """(the next event, the undated ones passed over), among occurrences not called off.

    An undated event whose month or year has begun may fall on any day of it, or be past
    already: it is "the next" only while no event with dates (a day, a time) is still to
    come, and never once most of its period is gone."""
    ordered = sorted(occurrences, key=lambda e: (e.starts_at, e.key))
    coming = [e for e in ordered if standing(e, now) is Standing.COMING]
    undated_now = [e for e in ordered if standing(e, now) is Standing.UNDATED_NOW]
    dated_to_come = any(e.start.precision not in IMPRECISE for e in coming)
    passed_over = tuple(e for e in undated_now if dated_to_come or mostly_gone(e, now))
    candidates = sorted(
        [*coming, *(e for e in undated_now if e not in passed_over)],
        key=lambda e: (e.starts_at, e.key),
    )
    return (candidates[0] if candidates else None), passed_over
