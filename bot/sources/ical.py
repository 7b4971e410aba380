"""An iCalendar feed's bytes as data-file rows: the mapping behind followed calendar feeds.

:func:`parse_feed` is pure (no clock, network or database): the poller fetches the
bytes, this module turns them into checked :class:`~storage.datafile.EventRow` values,
and the sources feature decides what to write. Google Calendar, Outlook/Exchange,
Apple Calendar and Thunderbird feeds are read alike; their ``X-`` properties and
``VALARM`` reminders are ignored, and so are ``VTODO``, ``VJOURNAL`` and ``VFREEBUSY``.

What maps to what (one row per ``UID``):

- ``UID`` → ``id``: :func:`event_key_for` (the source's key, then a hash of the UID).
  Several ``VEVENT`` with one UID and no ``RECURRENCE-ID`` are copies of one event:
  the highest ``SEQUENCE`` wins, then the latest ``LAST-MODIFIED`` (or ``DTSTAMP``).
- ``DTSTART;VALUE=DATE`` → a day (``2026-07-03``). ``DTEND;VALUE=DATE`` is exclusive,
  so 1–3 July is ``DTEND:20260704`` → ``end: 2026-07-03``; a one-day event has no end.
  ``DURATION`` stands for ``DTEND``. Outlook's midnight-to-midnight times flagged
  ``X-MICROSOFT-CDO-ALLDAYEVENT:TRUE`` are days too. A date has no time zone in
  iCalendar, so an all-day event without a known place is a floating day (no ``timezone``).
- A date-time → a time of day (``2026-07-03T10:00``, seconds dropped) in the event's
  zone: ``TZID`` as an IANA name, a Windows/Outlook name ("W. Europe Standard Time"),
  a vendor-prefixed name ("/mozilla.org/20050126_1/Europe/Berlin"), in that order and
  before the feed's own ``VTIMEZONE`` of that TZID (whose ``X-LIC-LOCATION`` may name the
  IANA zone); ``Z`` is UTC; a floating time is read in the feed's
  ``X-WR-TIMEZONE``, else at the matched place, else in UTC. With a known place the
  times are converted to the place's zone; without one ``timezone`` is the event's zone.
  A ``VTIMEZONE`` that names no IANA zone (Outlook's "Customized Time Zone") still gives
  the true instants; the row's zone is then ``X-WR-TIMEZONE`` if it agrees at those
  instants, else a fixed ``Etc/GMT±N`` offset, else UTC. Instants are never shifted.
- ``STATUS``: ``CANCELLED`` → cancelled, ``CONFIRMED`` → confirmed, ``TENTATIVE``,
  anything else or none → planned.
- ``LOCATION`` → ``place`` when a known place's name (any language, ignoring case and
  accents) occurs in it as whole words, the longest such name winning; otherwise the
  row has no place and keeps the text as its ``location`` (on one line, cut to
  ``MAX_LOCATION`` characters), with the zone the times were read in.
- ``RRULE:FREQ=YEARLY`` (``INTERVAL=1``, ``BYMONTH``/``BYMONTHDAY`` only if they are the
  start's own) → ``recurrence: yearly``. A ``COUNT`` or ``UNTIL`` is accepted but not
  kept (rows have no end of a series), nor are ``EXDATE``/``RDATE``. Any other rule
  skips the event. ``RECURRENCE-ID`` overrides are ignored; the series is kept.
- ``SUMMARY`` → ``title`` and ``DESCRIPTION`` (HTML tags removed) → ``note``, under
  ``language``, cut to the limits an operator's edit has; ``URL`` (http/https) follows
  ``feed_url`` in ``sources``; ``confidence`` is medium.

A ``VEVENT`` that cannot be mapped (no UID, SUMMARY or DTSTART, an unknown zone, a date
outside the years rows hold, an end before its start, a row that fails validation, a
changed occurrence whose series is missing) is skipped with one English problem line, in
feed order; the others still map. Bytes that are not an iCalendar feed, or one cut short, raise
:class:`FeedError`, so that a broken download never reads as "all events removed".

Time zones are resolved here and not through icalendar's ``tzinfo``: icalendar caches a
custom ``VTIMEZONE`` process-wide by its TZID, so one feed's "Customized Time Zone" would
be used for every later feed with a zone of that name.
"""

from __future__ import annotations

import base64
import codecs
import datetime as dt
import hashlib
import html
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from icalendar.prop import vBroken
from icalendar.timezone import tzp
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from pydantic import ValidationError

from storage.datafile import EventRow, PlaceRow
from storage.dates import MAX_YEAR, MIN_YEAR, InvalidDate, PartialDate, Precision, Span
from storage.models import MAX_LOCATION, Confidence, EventStatus
from storage.operations import MAX_NOTE, MAX_SOURCE, MAX_TITLE

UTC = dt.UTC
# The event id: the source's key cut to this length, a dash and a 16-character hash.
_KEY_PREFIX_CHARS = 23
_KEY_HASH_CHARS = 16  # 80 bits of SHA-256: no collision among a feed's UIDs in practice
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_YEARLY_PARTS = {"FREQ", "INTERVAL", "BYMONTH", "BYMONTHDAY", "COUNT", "UNTIL", "WKST"}
_STATUSES = {"CANCELLED": EventStatus.CANCELLED, "CONFIRMED": EventStatus.CONFIRMED}
_HTML_TAG = re.compile(r"<(?:[a-zA-Z][a-zA-Z0-9]*|/[a-zA-Z][a-zA-Z0-9]*)(?:\s[^<>]*)?/?>")
_HTML_BREAK = re.compile(r"<(?:br\s*/?|/p|/div|/li)\s*>", re.IGNORECASE)
_WORD = re.compile(r"\w+")
# Scripts written without spaces between words: a name is found anywhere in the text.
_UNSPACED = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_COMPONENT_LINE = re.compile(r"^(BEGIN|END):(.*)$", re.IGNORECASE)
_REASON_CHARS = 160


class FeedError(Exception):
    """The body is not an iCalendar feed at all (nothing is imported)."""


@dataclass(frozen=True)
class FeedEvent:
    """One event of a feed, as a row, with what the sources feature needs to follow it."""

    uid: str  # the VEVENT's UID as written
    row: EventRow  # fully validated
    sequence: int  # SEQUENCE, 0 if absent
    last_modified: dt.datetime | None  # LAST-MODIFIED (or DTSTAMP if absent), aware UTC
    location: str | None  # LOCATION as written, when it matched no known place (else None)


@dataclass(frozen=True)
class ParsedFeed:
    """The events of a feed and why the others were skipped."""

    events: list[FeedEvent]  # one per UID (the master VEVENT)
    problems: list[str]  # one English line per VEVENT skipped, saying which and why
    name: str | None  # X-WR-CALNAME if any


def event_key_for(source_key: str, uid: str) -> str:
    """A stable event id for a feed's UID, namespaced by the source: a valid slug
    (storage.datafile._SLUG, ≤ 40 chars), the same for the same (source, uid) forever."""
    prefix = _NOT_SLUG.sub("-", source_key.lower()).strip("-")
    prefix = prefix[:_KEY_PREFIX_CHARS].strip("-") or "feed"
    # The whole source key goes into the hash: two keys cut to one prefix still differ.
    digest = hashlib.sha256(f"{source_key}\n{uid}".encode()).digest()
    tag = base64.b32encode(digest).decode("ascii").lower()[:_KEY_HASH_CHARS]
    return f"{prefix}-{tag}"


def parse_feed(
    data: bytes,
    *,
    source_key: str,
    feed_url: str,
    organisation: str | None,
    places: Sequence[PlaceRow],
    language: str = "en",
    kind: str = "meeting",
) -> ParsedFeed:
    """The events of an iCalendar feed as rows; :class:`FeedError` if it is not one.

    ``source_key`` namespaces the event ids, ``feed_url`` is every row's first source,
    ``organisation`` and ``kind`` are given to every row, ``places`` are the known places
    a ``LOCATION`` may name, and ``language`` is the language the feed is written in.
    """
    text = _decode(data)
    _check_structure(text)
    try:
        calendars = icalendar.Calendar.from_ical(text, multiple=True)
    except Exception as exc:  # icalendar raises several types on malformed input
        raise FeedError(f"not a valid iCalendar feed: {_short(str(exc))}") from exc
    if not calendars:
        raise FeedError("no VCALENDAR in the body")

    name: str | None = None
    calendar_zone_name: str | None = None
    timezones: dict[str, Any] = {}
    components: list[Any] = []
    for calendar in calendars:
        name = name or _text(calendar.get("X-WR-CALNAME")).strip() or None
        calendar_zone_name = (
            calendar_zone_name or _text(calendar.get("X-WR-TIMEZONE")).strip() or None
        )
        for component in calendar.subcomponents:
            if component.name == "VTIMEZONE" and (tzid := _text(component.get("TZID"))):
                timezones.setdefault(tzid, component)
            elif component.name == "VEVENT":
                components.append(component)

    feed = _Feed(
        source_key=source_key,
        feed_url=feed_url,
        organisation=organisation,
        language=language,
        kind=kind,
        places=_PlaceMatcher(places),
        timezones=timezones,
        calendar_zone_name=calendar_zone_name,
        calendar_zone=(
            _resolve_tzid(calendar_zone_name, {}) if calendar_zone_name is not None else None
        ),
    )
    events: list[FeedEvent] = []
    problems: list[tuple[int, str]] = []  # (VEVENT number, line): listed in feed order
    for candidate in _masters(components, problems):
        try:
            events.append(_map_event(candidate, feed))
        except _Skipped as skipped:
            problems.append((candidate.number, f"{candidate.describe()}: {skipped}"))
    return ParsedFeed(events=events, problems=[line for _, line in sorted(problems)], name=name)


# ---------------------------------------------------------------------------
# Bytes to text, and the shape of the feed


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with a BOM; else Windows-1252, then Latin-1."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise FeedError("the body is not valid UTF-16 text") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # Older Outlook exports are Windows-1252; Latin-1 reads any byte at all.
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _check_structure(text: str) -> None:
    """Raise :class:`FeedError` unless ``text`` is VCALENDAR blocks with every BEGIN closed.

    icalendar drops a component that is never closed without a word, so a feed cut
    short in transfer would otherwise read as a feed with fewer events.
    """
    lines = text.splitlines()
    first = next((line.strip() for line in lines if line.strip()), None)
    if first is None:
        raise FeedError("the body is empty")
    if first.startswith("<"):
        raise FeedError("the body is HTML or XML, not an iCalendar feed")
    if first.upper() != "BEGIN:VCALENDAR":
        raise FeedError("the body does not start with BEGIN:VCALENDAR")
    open_components: list[tuple[str, int]] = []
    for number, line in enumerate(lines, 1):
        if line[:1] in (" ", "\t"):  # a folded continuation line
            continue
        match = _COMPONENT_LINE.match(line.strip())
        if match is None:
            continue
        name = match[2].strip().upper()
        if match[1].upper() == "BEGIN":
            if not open_components and name != "VCALENDAR":
                raise FeedError(f"line {number}: BEGIN:{name} outside a VCALENDAR")
            open_components.append((name, number))
        elif not open_components:
            raise FeedError(f"line {number}: END:{name} without a BEGIN")
        elif open_components[-1][0] != name:
            inner, opened = open_components[-1]
            raise FeedError(
                f"line {number}: END:{name} while BEGIN:{inner} of line {opened} is open"
            )
        else:
            open_components.pop()
    if open_components:
        name, number = open_components[-1]
        raise FeedError(f"BEGIN:{name} on line {number} is never closed (the feed is cut short)")


# ---------------------------------------------------------------------------
# Which VEVENT stands for each UID


@dataclass(frozen=True)
class _Candidate:
    """A VEVENT with what decides between copies of it."""

    number: int  # 1-based among the feed's VEVENTs
    uid: str
    component: Any
    sequence: int
    last_modified: dt.datetime | None

    def describe(self) -> str:
        summary = _text(self.component.get("SUMMARY"))
        parts = [f"UID {_short(self.uid, 80)}"] if self.uid else ["no UID"]
        if summary:
            parts.append(f"“{_short(' '.join(summary.split()), 80)}”")
        return f"VEVENT {self.number} ({', '.join(parts)})"


def _masters(components: Sequence[Any], problems: list[tuple[int, str]]) -> Iterator[_Candidate]:
    """The VEVENT standing for each UID, in the order the UIDs first appear."""
    by_uid: dict[str, list[_Candidate]] = {}
    overrides: list[_Candidate] = []
    for number, component in enumerate(components, 1):
        candidate = _Candidate(
            number=number,
            uid=_text(component.get("UID")),
            component=component,
            sequence=_sequence(component),
            last_modified=_last_modified(component),
        )
        if not candidate.uid:
            problems.append((number, f"{candidate.describe()}: it has no UID"))
        elif component.get("RECURRENCE-ID") is not None:
            overrides.append(candidate)
        else:
            by_uid.setdefault(candidate.uid, []).append(candidate)
    # A changed occurrence of a series is not followed; without its series it is lost.
    for candidate in overrides:
        if candidate.uid not in by_uid:
            reason = "it changes one occurrence of a series that is not in the feed"
            problems.append((candidate.number, f"{candidate.describe()}: {reason}"))
    never = dt.datetime.min.replace(tzinfo=UTC)
    for copies in by_uid.values():
        # max() keeps the first of equals: identical copies resolve to the earliest.
        yield max(copies, key=lambda copy: (copy.sequence, copy.last_modified or never))


def _sequence(component: Any) -> int:
    value = component.get("SEQUENCE")
    if value is None or isinstance(value, vBroken):
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _last_modified(component: Any) -> dt.datetime | None:
    for name in ("LAST-MODIFIED", "DTSTAMP"):
        value = component.get(name)
        if value is None or isinstance(value, vBroken):
            continue
        moment = getattr(value, "dt", None)
        if isinstance(moment, dt.datetime):
            if moment.tzinfo is None:
                return moment.replace(tzinfo=UTC)
            return moment.astimezone(UTC)
        if isinstance(moment, dt.date):
            return dt.datetime.combine(moment, dt.time(), UTC)
    return None


# ---------------------------------------------------------------------------
# Places


def _fold(text: str) -> str:
    """Case- and accent-free words separated by single spaces: "Nur-Sultan" → "nur sultan"."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", bare).casefold()))


class _PlaceMatcher:
    """Finds the known place a LOCATION names."""

    def __init__(self, places: Sequence[PlaceRow]) -> None:
        names = [
            (folded, place)
            for place in places
            for name in place.names.values()
            if (folded := _fold(name))
        ]
        # Longest name first; among equals, the order the places were given in.
        self._names = sorted(names, key=lambda pair: -len(pair[0]))

    def match(self, location: str) -> PlaceRow | None:
        folded = _fold(location)
        if not folded:
            return None
        padded = f" {folded} "
        for name, place in self._names:
            if _UNSPACED.search(name):
                if name in folded:
                    return place
            elif f" {name} " in padded:
                return place
        return None


# ---------------------------------------------------------------------------
# Time zones


@dataclass(frozen=True)
class _Zone:
    """A time zone as the feed means it, and the IANA name a row can hold (if any)."""

    tzinfo: dt.tzinfo
    iana: str | None


def _iana_zone(name: str) -> str | None:
    """``name`` if this machine's tzdata knows it as an IANA zone."""
    if not name or name.startswith(("/", ".")):
        return None
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return None
    return name


def _iana_name_for(tzid: str) -> str | None:
    """The IANA zone a TZID names: as written, a Windows name, or a vendor-prefixed name."""
    cleaned = tzid.strip().strip('"').strip("/").strip()
    candidates = [cleaned]
    if cleaned in WINDOWS_TO_OLSON:
        candidates.append(WINDOWS_TO_OLSON[cleaned])
    # "/mozilla.org/20050126_1/Europe/Berlin", "posix/Europe/Vaduz": the longest known tail.
    parts = cleaned.split("/")
    candidates.extend("/".join(parts[start:]) for start in range(1, len(parts)))
    for candidate in candidates:
        if (found := _iana_zone(candidate)) is not None:
            return found
    return None


def _resolve_tzid(tzid: str, timezones: dict[str, Any]) -> _Zone | None:
    """The zone a TZID means in this feed, or None if nobody knows it."""
    iana = _iana_name_for(tzid)
    if iana is not None:
        return _Zone(ZoneInfo(iana), iana)
    component = timezones.get(tzid)
    if component is None:
        return None
    # Thunderbird and Evolution name the IANA zone their VTIMEZONE was made from.
    location = _text(component.get("X-LIC-LOCATION"))
    if location and (iana := _iana_name_for(location)) is not None:
        return _Zone(ZoneInfo(iana), iana)
    try:
        # Built for this feed alone: icalendar's own lookup would reuse another feed's.
        own = component.to_tz(tzp, lookup_tzid=False)
    except Exception:  # a malformed VTIMEZONE fails in many ways inside dateutil
        return None
    return _Zone(own, None) if isinstance(own, dt.tzinfo) else None


def _fixed_offset_zone(offset: dt.timedelta | None) -> str:
    """The IANA zone of a whole-hour UTC offset (``Etc/GMT-5`` is UTC+5), else UTC."""
    if offset is None or offset % dt.timedelta(hours=1):
        return "UTC"
    hours = int(offset / dt.timedelta(hours=1))
    if hours == 0 or not -12 <= hours <= 14:
        return "UTC"
    return f"Etc/GMT{'-' if hours > 0 else '+'}{abs(hours)}"


# ---------------------------------------------------------------------------
# One VEVENT to one row


class _Skipped(Exception):
    """Why a VEVENT cannot be a row, in words for an operator."""


@dataclass(frozen=True)
class _Feed:
    """What every event of one feed is mapped with."""

    source_key: str
    feed_url: str
    organisation: str | None
    language: str
    kind: str
    places: _PlaceMatcher
    timezones: dict[str, Any]
    calendar_zone_name: str | None  # X-WR-TIMEZONE as written
    calendar_zone: _Zone | None  # and what it means, None if nobody knows it


@dataclass(frozen=True)
class _When:
    """The start and end literals of a row and the zone they are written in."""

    start: str
    end: str | None
    timezone: str | None


def _map_event(candidate: _Candidate, feed: _Feed) -> FeedEvent:
    component = candidate.component
    title = _one_line(_text(component.get("SUMMARY")))
    if not title:
        raise _Skipped("it has no SUMMARY (title)")
    location = _text(component.get("LOCATION")).strip() or None
    place = feed.places.match(location) if location else None
    when = _when(component, feed, place)
    recurrence = _recurrence(component)

    note = _plain_text(_text(component.get("DESCRIPTION")))
    sources = [feed.feed_url]
    url = _text(component.get("URL")).strip()
    if url.startswith(("https://", "http://")) and len(url) <= MAX_SOURCE and url not in sources:
        sources.append(url)
    status_text = _text(component.get("STATUS")).strip().upper()
    values: dict[str, Any] = {
        "id": event_key_for(feed.source_key, candidate.uid),
        "organisation": feed.organisation,
        "kind": feed.kind,
        "title": {feed.language: _cut(title, MAX_TITLE)},
        "place": place.key if place is not None else None,
        "location": _cut(_one_line(location), MAX_LOCATION) if location and not place else None,
        "timezone": when.timezone if place is None else None,
        "start": when.start,
        "end": when.end,
        "status": _STATUSES.get(status_text, EventStatus.PLANNED),
        "recurrence": recurrence,
        "note": {feed.language: _cut(note, MAX_NOTE)} if note else {},
        "confidence": Confidence.MEDIUM,
        "sources": sources,
    }
    try:
        row = EventRow.model_validate(values)
        Span(row.start, row.end, None).check()
    except ValidationError as exc:
        raise _Skipped(_validation_reason(exc)) from exc
    except InvalidDate as exc:
        raise _Skipped(str(exc)) from exc
    return FeedEvent(
        uid=candidate.uid,
        row=row,
        sequence=candidate.sequence,
        last_modified=candidate.last_modified,
        location=location if place is None else None,
    )


def _recurrence(component: Any) -> str | None:
    """``"yearly"`` for a yearly rule on the start's own date, None without a rule."""
    rules = component.get("RRULE")
    if rules is None:
        return None
    rules = rules if isinstance(rules, list) else [rules]
    if any(isinstance(rule, vBroken) for rule in rules):
        raise _Skipped("its RRULE cannot be read")
    written = "; ".join(f"RRULE:{rule.to_ical().decode()}" for rule in rules)
    start = _property_value(component, "DTSTART")
    frequencies = [str(value).upper() for rule in rules for value in rule.get("FREQ", [])]
    if frequencies != ["YEARLY"] or not isinstance(start, dt.date):
        raise _Skipped(f"only yearly recurrences are followed, not {written}")
    if not _is_yearly_on(rules[0], start):
        raise _Skipped(
            "only yearly recurrences are followed, every year on the start's own day, "
            f"not {written}"
        )
    return "yearly"


def _is_yearly_on(rule: Any, start: dt.date) -> bool:
    """Whether ``rule`` repeats ``start`` on its own month and day every year."""

    def numbers(part: str, default: int) -> list[int]:
        # str() first: a BYMONTH value is a vMonth, which may be a leap month ("5L").
        return [int(str(value)) for value in rule.get(part, [default])]

    try:
        return (
            {str(part).upper() for part in rule} <= _YEARLY_PARTS
            and numbers("INTERVAL", 1) == [1]
            and numbers("BYMONTH", start.month) == [start.month]
            and numbers("BYMONTHDAY", start.day) == [start.day]
        )
    except (TypeError, ValueError):
        return False


def _when(component: Any, feed: _Feed, place: PlaceRow | None) -> _When:
    start = _property_value(component, "DTSTART")
    if start is None:
        raise _Skipped("it has no DTSTART (start)")
    if not isinstance(start, dt.date):
        raise _Skipped("its DTSTART is not a date or a date-time")
    _check_year(start, "DTSTART")
    end = _property_value(component, "DTEND")
    duration = _property_value(component, "DURATION") if end is None else None
    if end is not None:
        if not isinstance(end, dt.date):
            raise _Skipped("its DTEND is not a date or a date-time")
        _check_year(end, "DTEND")
    if duration is not None and not isinstance(duration, dt.timedelta):
        raise _Skipped("its DURATION cannot be read")
    if isinstance(start, dt.datetime):
        if end is not None and not isinstance(end, dt.datetime):
            raise _Skipped("its DTSTART is a date-time but its DTEND a date")
        if _outlook_all_day(component, start, end):
            return _all_day(start.date(), end.date() if end is not None else None, duration)
        return _timed(component, start, end, duration, feed, place)
    if isinstance(end, dt.datetime):
        raise _Skipped("its DTSTART is a date but its DTEND a date-time")
    return _all_day(start, end, duration)


def _outlook_all_day(component: Any, start: dt.datetime, end: dt.datetime | None) -> bool:
    """Outlook writes some all-day events as midnight to midnight, flagged as all-day."""
    flag = _text(component.get("X-MICROSOFT-CDO-ALLDAYEVENT")).strip().upper()
    midnight = dt.time()
    return flag == "TRUE" and start.time() == midnight and (end is None or end.time() == midnight)


def _all_day(start: dt.date, end: dt.date | None, duration: dt.timedelta | None) -> _When:
    last_day = start
    if end is not None:
        if end < start:
            raise _Skipped(f"it ends ({end.isoformat()}) before it starts ({start.isoformat()})")
        last_day = max(start, end - dt.timedelta(days=1))  # DTEND is exclusive
    elif duration is not None:
        if duration < dt.timedelta(0):
            raise _Skipped("its DURATION is negative")
        # A duration of a day or less is that day; part of a day more counts as a day.
        days = -(-duration // dt.timedelta(days=1))
        last_day = start + dt.timedelta(days=max(days - 1, 0))
    _check_year(last_day, "DURATION")
    literal_end = None if last_day == start else last_day.isoformat()
    return _When(start=start.isoformat(), end=literal_end, timezone=None)


def _timed(
    component: Any,
    start: dt.datetime,
    end: dt.datetime | None,
    duration: dt.timedelta | None,
    feed: _Feed,
    place: PlaceRow | None,
) -> _When:
    start_zone = _zone_of(component, "DTSTART", start, feed, place)
    starts_at = _instant(start, start_zone)
    ends_at: dt.datetime | None = None
    if end is not None:
        ends_at = _instant(end, _zone_of(component, "DTEND", end, feed, place))
    elif duration is not None:
        # Days are calendar days at the venue (RFC 5545 §3.3.6); hours are exact.
        whole_days = dt.timedelta(days=duration.days)
        local_end = start.replace(tzinfo=None) + whole_days
        _check_year(local_end, "DURATION")
        ends_at = _instant(local_end, start_zone) + (duration - whole_days)
    if ends_at is not None and ends_at < starts_at:
        raise _Skipped(
            f"it ends ({ends_at:%Y-%m-%d %H:%M} UTC) before it starts "
            f"({starts_at:%Y-%m-%d %H:%M} UTC)"
        )
    if place is not None:
        zone_name = place.timezone
    elif start_zone.iana is not None:
        zone_name = start_zone.iana
    else:
        zone_name = _name_for_unnamed_zone(start_zone, starts_at, ends_at, feed)
    zone = ZoneInfo(zone_name)

    def literal(moment: dt.datetime) -> str:
        local = moment.astimezone(zone)
        _check_year(local, "the date")
        return PartialDate.from_local(local, Precision.TIME).literal

    end_literal = literal(ends_at) if ends_at is not None and ends_at != starts_at else None
    return _When(start=literal(starts_at), end=end_literal, timezone=zone_name)


def _zone_of(
    component: Any, name: str, value: dt.datetime, feed: _Feed, place: PlaceRow | None
) -> _Zone:
    """The zone a date-time property is written in."""
    tzid = _first(component.get(name)).params.get("TZID")
    if tzid:
        zone = _resolve_tzid(str(tzid), feed.timezones)
        if zone is None:
            raise _Skipped(
                f"the time zone {_short(str(tzid), 80)!r} of its {name} is unknown "
                "(no IANA or Windows name, and no VTIMEZONE of that TZID in the feed)"
            )
        return zone
    if value.tzinfo is not None:  # written with Z
        return _Zone(UTC, "UTC")
    # A floating time: the calendar's zone, else the venue's, else UTC.
    if feed.calendar_zone_name is not None:
        if feed.calendar_zone is None:
            raise _Skipped(
                f"its {name} is a floating time and the feed's X-WR-TIMEZONE "
                f"{_short(feed.calendar_zone_name, 80)!r} is unknown"
            )
        return feed.calendar_zone
    if place is not None:
        return _Zone(ZoneInfo(place.timezone), place.timezone)
    return _Zone(UTC, "UTC")


def _instant(value: dt.datetime, zone: _Zone) -> dt.datetime:
    """The UTC instant of a wall-clock time in ``zone`` (icalendar's tzinfo is not used)."""
    try:
        return value.replace(tzinfo=zone.tzinfo).astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise _Skipped(f"{value:%Y-%m-%d %H:%M} cannot be placed in time") from exc


def _name_for_unnamed_zone(
    zone: _Zone, starts_at: dt.datetime, ends_at: dt.datetime | None, feed: _Feed
) -> str:
    """An IANA zone for times given in a VTIMEZONE that names none, keeping the instants."""
    moments = [starts_at] if ends_at is None else [starts_at, ends_at]
    offsets = [moment.astimezone(zone.tzinfo).utcoffset() for moment in moments]
    calendar_zone = feed.calendar_zone
    if calendar_zone is not None and calendar_zone.iana is not None:
        # X-WR-TIMEZONE is the calendar's zone: taken when it agrees with the VTIMEZONE.
        named = ZoneInfo(calendar_zone.iana)
        if offsets == [moment.astimezone(named).utcoffset() for moment in moments]:
            return calendar_zone.iana
    return _fixed_offset_zone(offsets[0])


def _check_year(value: dt.date, name: str) -> None:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise _Skipped(
            f"{name} {value.isoformat()[:10]} is outside the years {MIN_YEAR}–{MAX_YEAR}"
        )


# ---------------------------------------------------------------------------
# Values


def _first(value: Any) -> Any:
    """A property given twice counts once, as first written."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _property_value(component: Any, name: str) -> Any:
    """A property's decoded value, None if absent; :class:`_Skipped` if unreadable."""
    value = _first(component.get(name))
    if value is None:
        return None
    if isinstance(value, vBroken):
        raise _Skipped(f"its {name} cannot be read ({_short(str(value), 60)!r})")
    return getattr(value, "dt", None)


def _text(value: Any) -> str:
    """A text property as a string ("" if absent); the first of repeated ones."""
    value = _first(value)
    if value is None or isinstance(value, vBroken):
        return ""
    return str(value)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _plain_text(text: str) -> str:
    """A DESCRIPTION as plain text: Google writes HTML (``<br>``, ``<a href>``)."""
    if _HTML_TAG.search(text):
        text = _HTML_BREAK.sub("\n", text)
        text = html.unescape(_HTML_TAG.sub("", text))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _short(text: str, limit: int = _REASON_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _validation_reason(error: ValidationError) -> str:
    reasons = []
    for detail in error.errors():
        field_name = ".".join(str(part) for part in detail["loc"])
        message = str(detail["msg"]).removeprefix("Value error, ")
        reasons.append(f"{field_name}: {message}" if field_name else message)
    return "; ".join(reasons)
