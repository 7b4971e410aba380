"""Dates known to a precision: a day, a month, a year, or an exact local time.

Summits are often announced as "October 2026" or "2026" long before their days
are fixed. A :class:`PartialDate` keeps what is known and nothing more, so that
a month-only date is never shown as "1 October 00:00" and never reminded at a
made-up hour.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UTC = dt.UTC


class Precision(enum.StrEnum):
    """How much of a date is known, from the most to the least precise."""

    TIME = "time"
    DAY = "day"
    MONTH = "month"
    YEAR = "year"


_LITERAL = re.compile(
    r"^(?P<year>\d{4})"
    r"(?:-(?P<month>\d{1,2})"
    r"(?:-(?P<day>\d{1,2})"
    r"(?:[T ](?P<hour>\d{1,2}):(?P<minute>\d{2}))?)?)?$"
)
MIN_YEAR = 1900
MAX_YEAR = 2200


class InvalidDate(ValueError):
    """A date literal that cannot be read; the message says why, for people."""


@dataclass(frozen=True, order=True)
class PartialDate:
    """A calendar date or local date-time known to :attr:`precision`.

    Unknown parts are the earliest possible (month 1, day 1, 00:00) so that
    partial dates sort sensibly, but they are never shown or used as if known.
    """

    year: int
    month: int = 1
    day: int = 1
    hour: int = 0
    minute: int = 0
    precision: Precision = Precision.YEAR

    @classmethod
    def parse(cls, literal: str | int) -> PartialDate:
        """Read ``2024``, ``2024-07``, ``2024-07-03`` or ``2024-07-03T10:00``."""
        text = str(literal).strip()
        match = _LITERAL.match(text)
        if not match:
            raise InvalidDate(
                f"{text!r} is not a date; write 2024-07-03, 2024-07, 2024 or 2024-07-03T10:00"
            )
        year = int(match["year"])
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise InvalidDate(f"year {year} is out of range ({MIN_YEAR}–{MAX_YEAR})")
        if match["month"] is None:
            return cls(year, precision=Precision.YEAR)
        month = int(match["month"])
        if not 1 <= month <= 12:
            raise InvalidDate(f"{text!r}: month {month} does not exist")
        if match["day"] is None:
            return cls(year, month, precision=Precision.MONTH)
        day = int(match["day"])
        if not 1 <= day <= calendar.monthrange(year, month)[1]:
            raise InvalidDate(f"{text!r}: day {day} does not exist in that month")
        if match["hour"] is None:
            return cls(year, month, day, precision=Precision.DAY)
        hour, minute = int(match["hour"]), int(match["minute"])
        if hour > 23 or minute > 59:
            raise InvalidDate(f"{text!r}: {hour}:{minute:02d} is not a time of day")
        return cls(year, month, day, hour, minute, Precision.TIME)

    @classmethod
    def from_local(cls, value: dt.datetime, precision: Precision) -> PartialDate:
        """The partial date whose first local instant is ``value``."""
        return cls(value.year, value.month, value.day, value.hour, value.minute, precision)

    @property
    def literal(self) -> str:
        """The form it is written in data files; ``parse(d.literal) == d``."""
        match self.precision:
            case Precision.YEAR:
                return f"{self.year:04d}"
            case Precision.MONTH:
                return f"{self.year:04d}-{self.month:02d}"
            case Precision.DAY:
                return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
            case Precision.TIME:
                return (
                    f"{self.year:04d}-{self.month:02d}-{self.day:02d}"
                    f"T{self.hour:02d}:{self.minute:02d}"
                )

    @property
    def first_day(self) -> dt.date:
        """The first calendar day this date can be."""
        return dt.date(self.year, self.month, self.day)

    @property
    def last_day(self) -> dt.date:
        """The last calendar day this date can be."""
        match self.precision:
            case Precision.YEAR:
                return dt.date(self.year, 12, 31)
            case Precision.MONTH:
                return dt.date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])
            case _:
                return self.first_day

    @property
    def local_start(self) -> dt.datetime:
        """The first local (naive, wall-clock) instant of this date."""
        return dt.datetime(self.year, self.month, self.day, self.hour, self.minute)

    @property
    def local_end(self) -> dt.datetime:
        """The local instant right after this date: exclusive end of its span.

        An exact time is an instant, so its span ends where it starts.
        """
        if self.precision is Precision.TIME:
            return self.local_start
        return dt.datetime.combine(self.last_day + dt.timedelta(days=1), dt.time())

    def contains(self, day: dt.date) -> bool:
        """Whether ``day`` lies within the span of this date."""
        return self.first_day <= day <= self.last_day


def to_utc(local: dt.datetime, zone: str | None) -> dt.datetime:
    """A venue's wall-clock time as a UTC instant; a floating date (no zone) is read as UTC."""
    tz = ZoneInfo(zone) if zone else UTC
    return local.replace(tzinfo=tz).astimezone(UTC)


def validate_zone(name: str) -> str:
    """``name`` if it is an IANA zone known to this machine's tzdata, else :class:`InvalidDate`."""
    try:
        ZoneInfo(name)
    except (KeyError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise InvalidDate(f"{name!r} is not an IANA time zone (e.g. Asia/Almaty)") from exc
    return name


@dataclass(frozen=True)
class Span:
    """When an event happens: wall-clock times at the venue and the UTC instants they mean."""

    start: PartialDate
    end: PartialDate | None
    timezone: str | None

    @property
    def start_local(self) -> dt.datetime:
        return self.start.local_start

    @property
    def end_local(self) -> dt.datetime | None:
        return self.end.local_start if self.end else None

    @property
    def starts_at(self) -> dt.datetime:
        return to_utc(self.start.local_start, self.timezone)

    @property
    def ends_at(self) -> dt.datetime:
        """Exclusive end of the whole span, as a UTC instant."""
        last = self.end or self.start
        return to_utc(last.local_end, self.timezone)

    def check(self) -> None:
        """Raise :class:`InvalidDate` if the end comes before the start."""
        end, start = self.end, self.start
        if end is None:
            return
        both_timed = end.precision is Precision.TIME and start.precision is Precision.TIME
        if end.last_day < start.first_day or (both_timed and end.local_start < start.local_start):
            raise InvalidDate(f"the end {end.literal} is before the start {start.literal}")
