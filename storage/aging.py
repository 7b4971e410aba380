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

from storage.dates import Precision
from storage.models import EventStatus
from storage.views import EventView

# Statuses that promise an outcome still to be recorded.
AWAITING_OUTCOME = frozenset({EventStatus.PLANNED, EventStatus.PROPOSED, EventStatus.CONFIRMED})
IMPRECISE = frozenset({Precision.MONTH, Precision.YEAR})


class Standing(enum.StrEnum):
    """What an event is on a given day, whatever its status says."""

    COMING = "coming"  # not begun, or dated and under way
    UNDATED_NOW = "undated_now"  # month or year precision, its period running
    LAPSED = "lapsed"  # dates over, outcome not recorded
    OVER = "over"  # dates over with an outcome (held, postponed, cancelled)
    CANCELLED = "cancelled"  # called off before its dates


def standing(event: EventView, now: dt.datetime) -> Standing:
    """What ``event`` (one occurrence) is at ``now``."""
    if event.is_over(now):
        return Standing.LAPSED if event.status in AWAITING_OUTCOME else Standing.OVER
    if event.status is EventStatus.CANCELLED:
        return Standing.CANCELLED
    if event.start.precision in IMPRECISE and event.starts_at <= now:
        return Standing.UNDATED_NOW
    return Standing.COMING


def is_lapsed(event: EventView, now: dt.datetime) -> bool:
    """Dates over and no outcome recorded: "dates passed — outcome not recorded"."""
    return standing(event, now) is Standing.LAPSED


def mostly_gone(event: EventView, now: dt.datetime) -> bool:
    """An undated event whose period (a month, a year) is more than half over: it may
    already have taken place without the data saying so."""
    if standing(event, now) is not Standing.UNDATED_NOW:
        return False
    return now - event.starts_at > (event.ends_at - event.starts_at) / 2


def can_be_next(event: EventView, now: dt.datetime) -> bool:
    """Whether ``event`` may be offered as "the next" one: not over, not called off, and
    not an undated event that may already have taken place."""
    found = standing(event, now)
    return found is Standing.COMING or (
        found is Standing.UNDATED_NOW and not mostly_gone(event, now)
    )
