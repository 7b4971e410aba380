"""Dates as readers read them: at their own precision, in the reader's locale and
time zone, with what the day makes of an event (storage.aging) and how long until it.

Day and month ranges are CLDR's interval formats through Babel, on purpose (see
``_format_dates``). A date known to the month is never shown with a day or an hour.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_interval, format_skeleton
from babel.dates import format_timedelta as babel_timedelta

from bot.presentation.i18n import Translator
from bot.presentation.text import esc
from storage.aging import Standing, mostly_gone, standing
from storage.dates import PartialDate, Precision
from storage.timezones import offset_label
from storage.views import (
    ChatView,
    EventView,
)

# --- dates ---------------------------------------------------------------


def format_day(day: dt.date, tr: Translator) -> str:
    return _format_day(day, tr.locale)


def format_partial(value: PartialDate, tr: Translator) -> str:
    """A date shown only as precisely as it is known."""
    return _format_partial(value, tr.locale)


def format_dates(start: PartialDate, end: PartialDate | None, tr: Translator) -> str:
    """A span of dates at their precision: "3–4 July 2024", "April – May 2026", "2026"."""
    return _format_dates(start, end, tr.locale)


# Babel's formatting (an interval takes about a millisecond: it matches its skeleton
# anew each time) is a pure function of the dates and the locale, and a card or a list
# shows the same few dates again and again: formatted once, kept (bounded).
FORMAT_CACHE_SIZE = 8192


@functools.lru_cache(maxsize=FORMAT_CACHE_SIZE)
def _format_day(day: dt.date, locale: Locale) -> str:
    return str(format_date(day, format="long", locale=locale))


@functools.lru_cache(maxsize=FORMAT_CACHE_SIZE)
def _format_partial(value: PartialDate, locale: Locale) -> str:
    match value.precision:
        case Precision.YEAR:
            return str(value.year)
        case Precision.MONTH:
            return str(format_skeleton("yMMMM", value.first_day, locale=locale))
        case Precision.DAY:
            return _format_day(value.first_day, locale)
        case Precision.TIME:
            moment = value.local_start
            return str(format_datetime(moment, "d MMMM y, HH:mm", locale=locale))


# Day and month ranges are CLDR's interval formats for the reader's locale, through Babel,
# on purpose: each language's own order and dash ("3–4 июля", "2024年7月3日至4日"), kept
# current by Babel. Their spacing is CLDR's too and may change with a release (Babel 2.19
# put thin spaces around the English dash); a reader needs both days, the month and the
# year, which every form gives. Arabic isolates the number range whatever its spacing
# (bot.presentation.i18n.directional).
@functools.lru_cache(maxsize=FORMAT_CACHE_SIZE)
def _format_dates(start: PartialDate, end: PartialDate | None, locale: Locale) -> str:
    if end is None or end == start:
        return _format_partial(start, locale)
    same_precision = start.precision == end.precision
    if start.year != end.year:
        return f"{_format_partial(start, locale)} – {_format_partial(end, locale)}"
    if same_precision and start.precision is Precision.DAY:
        interval = format_interval(start.first_day, end.first_day, "yMMMMd", locale=locale)
        return str(interval)
    if same_precision and start.precision is Precision.MONTH:
        interval = format_interval(start.first_day, end.first_day, "yMMMM", locale=locale)
        return str(interval)
    return f"{_format_partial(start, locale)} – {_format_partial(end, locale)}"


def standing_label(event: EventView, now: dt.datetime, tr: Translator) -> str | None:
    """What the day makes of an event whatever its status says (storage.aging), or None:
    "dates passed — outcome not recorded", "expected in 2026, dates not announced"."""
    return standing_text(standing(event, now), event, now, tr)


def standing_text(
    found: Standing, event: EventView, now: dt.datetime, tr: Translator
) -> str | None:
    """:func:`standing_label` for a standing already judged (``storage.aging.standing``),
    for callers that need the standing too (a calendar judges hundreds of events)."""
    _ = tr.gettext
    if found is Standing.LAPSED:
        return _("dates passed — outcome not recorded")
    if found is Standing.UNDATED_NOW:
        period = format_dates(event.start, event.end, tr)
        if mostly_gone(event, now, found):
            return _(
                "expected in {period}, dates not announced; may already have taken place",
                period=period,
            )
        return _("expected in {period}, dates not announced", period=period)
    return None


def sources_line(sources: Sequence[str], checked: dt.date | None, tr: Translator) -> str | None:
    """ "Sources: a; b · checked 5 December 2026" (HTML), or None when there is neither."""
    _ = tr.gettext
    parts = []
    if sources:
        parts.append(_("Sources: {sources}", sources=esc("; ".join(sources))))
    if checked is not None:
        parts.append(esc(_("checked {date}", date=format_day(checked, tr))))
    return " · ".join(parts) if parts else None


def event_when(event: EventView, chat: ChatView, tr: Translator) -> list[str]:
    """When the event is: reader's time zone first, the venue's beside it when they differ."""
    _ = tr.gettext
    if not event.is_timed or event.timezone is None:
        return [esc(format_dates(event.start, event.end, tr))]
    reader = ZoneInfo(chat.timezone)
    pattern = "d MMMM y, HH:mm"
    start_here = format_datetime(event.starts_at.astimezone(reader), pattern, locale=tr.locale)
    lines = [
        _(
            "{time} ({zone} time)",
            time=esc(start_here),
            zone=esc(zone_label(chat.timezone, event.starts_at)),
        )
    ]
    venue = ZoneInfo(event.timezone)
    if (
        event.starts_at.astimezone(venue).utcoffset()
        != event.starts_at.astimezone(reader).utcoffset()
    ):
        start_there = format_datetime(event.starts_at.astimezone(venue), pattern, locale=tr.locale)
        lines.append(
            _("{time} at the venue ({zone})", time=esc(start_there), zone=esc(event.timezone))
        )
    if event.end is not None and event.end.precision is not Precision.TIME:
        lines.append(_("until {date}", date=esc(format_partial(event.end, tr))))
    return lines


def countdown(event: EventView, chat: ChatView, now: dt.datetime, tr: Translator) -> str | None:
    """ "in 12 days", "today", "under way": only as precise as the date is known."""
    _ = tr.gettext
    if event.is_over(now):
        return None
    if event.starts_at <= now:
        # A month or a year that has begun says nothing about whether the meeting has.
        precise = event.start.precision in (Precision.TIME, Precision.DAY)
        return _("under way now") if precise else None
    if event.start.precision is Precision.YEAR:
        return None  # "in about 4 weeks" to 1 January would be a made-up date
    if event.is_timed:
        delta = event.starts_at - now
        # 0.95: "in 1 day" a second before a day, not "in 24 hours".
        return str(babel_timedelta(delta, add_direction=True, locale=tr.locale, threshold=0.95))
    # Day-level dates count calendar days in the reader's zone (the venue's for floating days).
    today = now.astimezone(ZoneInfo(chat.timezone)).date()
    days = (event.start.first_day - today).days
    if event.start.precision is Precision.DAY:
        if days <= 0:
            return _("today")
        if days == 1:
            return _("tomorrow")
        return tr.ngettext("in {count} day", "in {count} days", days)
    delta = dt.timedelta(days=max(days, 1))
    approximate = babel_timedelta(delta, add_direction=True, locale=tr.locale, threshold=1.1)
    return _("in about {time}", time=str(approximate).removeprefix("in "))


def zone_label(zone: str, now: dt.datetime | None = None) -> str:
    """ "Almaty" for Asia/Almaty; "UTC+05:00" for fixed offsets, which have no city."""
    if zone.startswith("Etc/") or zone in ("UTC", "GMT"):
        return offset_label(zone, now or dt.datetime.now(dt.UTC))
    return zone.rsplit("/", 1)[-1].replace("_", " ")
