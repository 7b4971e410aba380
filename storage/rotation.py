"""Who chairs an organisation when the data stop: terms that end, and rotation rules.

A chairmanship's end is often not a date but a rule: "until the next summit", "the
calendar year", "a three-year term". Each organisation may carry its rule as data
(:class:`RotationRule`), and the code decides from it:

- when a recorded term ends (its own end date; else the rule's: the 31 December of its
  year, the end of its elected term, or the summit that hands the chair on);
- that a term which has ended with no successor recorded is shown as such, never as
  still running;
- who the rule says comes next: a *projection*, always labelled, never stored, and never
  shown where a successor is recorded.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from storage.models import EventStatus
from storage.views import ChairView, EventView, OrganisationRef

# How far ahead a calendar-year rotation is projected (a longer one is only a guess).
MAX_PROJECTED_YEARS = 10


class RotationKind(enum.StrEnum):
    CALENDAR_YEAR = "calendar_year"  # a term a calendar year, members in a fixed order
    AT_SUMMIT = "at_summit"  # the chair passes on at each summit (or assembly)
    ELECTED = "elected"  # elected for a term of some years; nobody can be projected


class PassesTo(enum.StrEnum):
    NEXT_HOST = "next_host"  # at each summit, to the host of the next one (SCO)
    HOST = "host"  # the host of each summit takes the chair at it (OTS)


@dataclass(frozen=True)
class RotationRule:
    """How an organisation's chair passes on, as a data file writes it."""

    kind: RotationKind
    order: tuple[str, ...] = ()  # calendar_year: country codes in the order they chair
    passes_to: PassesTo = PassesTo.NEXT_HOST  # at_summit
    events: tuple[str, ...] = ("summit",)  # at_summit: the event kinds that hand it on
    term_years: int | None = None  # elected

    @classmethod
    def parse(cls, data: Mapping[str, Any], event_kinds: Sequence[str]) -> RotationRule:
        """Read a rule; ValueError says what is wrong, for the person editing the file."""
        if not isinstance(data, Mapping):
            raise ValueError("expected kind: calendar_year, at_summit or elected, with its fields")
        fields = dict(data)
        try:
            kind = RotationKind(fields.pop("kind", None))
        except ValueError:
            raise ValueError("kind must be calendar_year, at_summit or elected") from None
        allowed = {
            RotationKind.CALENDAR_YEAR: {"order"},
            RotationKind.AT_SUMMIT: {"passes_to", "events"},
            RotationKind.ELECTED: {"term_years"},
        }[kind]
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise ValueError(f"{kind.value} takes {', '.join(sorted(allowed))}, not {unknown[0]}")
        if kind is RotationKind.CALENDAR_YEAR:
            order = fields.get("order")
            if not isinstance(order, list) or not order:
                raise ValueError("calendar_year needs order: the countries in the order they chair")
            codes = tuple(str(code).upper() for code in order)
            if any(len(code) != 2 or not code.isalpha() for code in codes):
                raise ValueError("order lists ISO 3166 country codes, e.g. [AM, BY, KZ]")
            if len(set(codes)) != len(codes):
                raise ValueError("order names a country twice")
            return cls(kind, order=codes)
        if kind is RotationKind.AT_SUMMIT:
            try:
                passes_to = PassesTo(fields.get("passes_to", PassesTo.NEXT_HOST))
            except ValueError:
                raise ValueError("passes_to must be next_host or host") from None
            kinds = fields.get("events", ["summit"])
            if not isinstance(kinds, list) or not kinds or any(k not in event_kinds for k in kinds):
                raise ValueError(f"events lists event kinds ({', '.join(event_kinds)})")
            return cls(kind, passes_to=passes_to, events=tuple(str(k) for k in kinds))
        years = fields.get("term_years")
        if years is not None and (not isinstance(years, int) or not 1 <= years <= 50):
            raise ValueError("term_years is a whole number of years, 1 to 50")
        return cls(kind, term_years=years)

    def to_json(self) -> dict[str, Any]:
        """As stored and exported; :meth:`parse` reads it back equal."""
        match self.kind:
            case RotationKind.CALENDAR_YEAR:
                return {"kind": self.kind.value, "order": list(self.order)}
            case RotationKind.AT_SUMMIT:
                return {
                    "kind": self.kind.value,
                    "passes_to": self.passes_to.value,
                    "events": list(self.events),
                }
            case RotationKind.ELECTED:
                years = {} if self.term_years is None else {"term_years": self.term_years}
                return {"kind": self.kind.value, **years}

    @classmethod
    def stored(cls, data: Mapping[str, Any] | None) -> RotationRule | None:
        """A rule as the database keeps it (checked on import), or None."""
        if not data:
            return None
        return cls.parse(data, tuple(data.get("events", ("summit",))))


@dataclass(frozen=True)
class TermEnd:
    """The end of a term with no successor recorded after it."""

    chair: ChairView
    last_day: dt.date | None  # the last day of the term, where a date is known
    handover: EventView | None  # the summit that hands the chair on (at_summit)
    # Whether the handover is on record (the summit held); False: due, not recorded.
    handover_recorded: bool = False


@dataclass(frozen=True)
class ProjectedChair:
    """Who the rotation rule says chairs next: unconfirmed, never stored."""

    country: str
    year: int | None = None  # calendar_year: the year of the projected term
    host_of: EventView | None = None  # at_summit: the summit whose host it is


@dataclass(frozen=True)
class OrganisationChairs:
    """Who chaired one organisation on a day or over a period, as far as it is known."""

    organisation: OrganisationRef
    chairs: tuple[ChairView, ...]  # recorded terms covering the day or period
    ended: TermEnd | None = None  # the last recorded term ended with no successor
    projected: tuple[ProjectedChair, ...] = ()
    # The summit due to hand on the newest term still covering the period, if the rule
    # names one: the reader is told when it may already have taken place.
    handover: EventView | None = None


# A summit that hands the chair on is one that is held or expected to be (a postponed
# one at its new dates); a proposal may never happen, and a cancelled one never will.
HANDOVER_STATUSES = frozenset(
    {EventStatus.PLANNED, EventStatus.CONFIRMED, EventStatus.POSTPONED, EventStatus.HELD}
)


def _summits_after(
    day: dt.date, rule: RotationRule, events: Sequence[EventView]
) -> Iterator[EventView]:
    """The summits (of the rule's kinds) that begin after ``day``, in order."""
    for event in events:
        if (
            event.kind in rule.events
            and event.status in HANDOVER_STATUSES
            and event.start.first_day > day
        ):
            yield event


def _handover(
    chair: ChairView, rule: RotationRule, events: Sequence[EventView]
) -> EventView | None:
    """The first summit after the term began: where the chair passes on. A start known
    only to the month or year counts from its last day: the summit at which the term
    began (in that month or year) does not end it."""
    if chair.start is None:
        return None
    return next(_summits_after(chair.start.last_day, rule, events), None)


def _last_day(event: EventView) -> dt.date:
    return (event.end or event.start).last_day


@dataclass(frozen=True)
class _Term:
    chair: ChairView
    last_day: dt.date | None  # None: open, as far as anything says
    handover: EventView | None = None
    handover_recorded: bool = False


def _term(chair: ChairView, rule: RotationRule | None, events: Sequence[EventView]) -> _Term:
    """The chair's term with its end as the data, or else the rule, gives it."""
    if chair.end is not None:
        return _Term(chair, chair.end.last_day)
    if rule is None or chair.start is None:
        return _Term(chair, None)
    begun = chair.start.first_day
    match rule.kind:
        case RotationKind.CALENDAR_YEAR:
            return _Term(chair, dt.date(begun.year, 12, 31))
        case RotationKind.ELECTED:
            if rule.term_years is None:
                return _Term(chair, None)
            return _Term(chair, _add_years(begun, rule.term_years) - dt.timedelta(days=1))
        case RotationKind.AT_SUMMIT:
            summit = _handover(chair, rule, events)
            if summit is None:
                return _Term(chair, None)
            held = summit.status is EventStatus.HELD
            return _Term(chair, _last_day(summit), summit, held)


def _started(term: _Term) -> dt.date:
    return term.chair.start.first_day if term.chair.start else dt.date.min


def _add_years(day: dt.date, years: int) -> dt.date:
    """The same day ``years`` later; 29 February becomes 1 March (a term from then
    ends on 28 February)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return dt.date(day.year + years, 3, 1)


def _projection(
    term: _Term,
    rule: RotationRule | None,
    events: Sequence[EventView],
    first: dt.date,
    last: dt.date,
) -> tuple[ProjectedChair, ...]:
    """Who the rule puts in the chair after ``term``, within ``first``..``last``."""
    if rule is None or term.last_day is None:
        return ()
    if rule.kind is RotationKind.CALENDAR_YEAR:
        if term.chair.country not in rule.order:
            return ()
        position = rule.order.index(term.chair.country)
        found = []
        for step in range(1, MAX_PROJECTED_YEARS + 1):
            year = term.last_day.year + step
            if year > last.year:
                break
            if year >= first.year:
                country = rule.order[(position + step) % len(rule.order)]
                found.append(ProjectedChair(country, year=year))
        return tuple(found)
    if rule.kind is RotationKind.AT_SUMMIT and term.handover is not None:
        if rule.passes_to is PassesTo.HOST:
            host = term.handover.country
            summit: EventView | None = term.handover
        else:
            summit = next(_summits_after(term.handover.start.first_day, rule, events), None)
            host = summit.country if summit is not None else None
        if host and host != term.chair.country:
            return (ProjectedChair(host, host_of=summit),)
    return ()


def chairs_between(
    organisation: OrganisationRef,
    chairs: Sequence[ChairView],
    rule: RotationRule | None,
    events: Sequence[EventView],
    first: dt.date,
    last: dt.date,
) -> OrganisationChairs:
    """What is known of the chair from ``first`` to ``last`` (one day: both the same).

    ``chairs`` oldest first; ``events`` the organisation's single events by start. A
    term covers the days to its end (see :func:`_term`); on a handover day both terms
    cover it and, for a day, the one that started last is the chair. When the last
    recorded term ends before ``last`` with nobody recorded after it, that is said,
    and the rule's projection for the rest of the period is added.
    """
    terms = [_term(chair, rule, events) for chair in chairs]

    def overlaps(term: _Term) -> bool:
        start = term.chair.start
        after_start = start is None or start.first_day <= last
        return after_start and (term.last_day is None or first <= term.last_day)

    covering = [term for term in terms if overlaps(term)]
    if first == last and covering:
        covering = [max(covering, key=_started)]
    ended = None
    projected: tuple[ProjectedChair, ...] = ()
    # Only the newest recorded term can have ended with nobody after it.
    newest = max(terms, key=_started, default=None)
    if (
        newest is not None
        and _started(newest) <= last
        and newest.last_day is not None
        and newest.last_day < last
    ):
        ended = TermEnd(newest.chair, newest.last_day, newest.handover, newest.handover_recorded)
        after = max(first, newest.last_day + dt.timedelta(days=1))
        projected = _projection(newest, rule, events, after, last)
    running = [term for term in covering if term.last_day is None or term.last_day >= last]
    handover = max(running, key=_started).handover if running else None
    return OrganisationChairs(
        organisation, tuple(term.chair for term in covering), ended, projected, handover
    )
