"""The one place that turns views into Telegram messages (HTML) and buttons.

A command, a list item, a reminder and a channel post all render an event
through :func:`event_card`, so they look alike. Every piece of data is
HTML-escaped here; handlers never build message text themselves.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_interval, format_skeleton
from babel.dates import format_timedelta as babel_timedelta
from babel.lists import format_list
from babel.numbers import format_decimal
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot.presentation import callbacks
from bot.presentation.i18n import Translator, translator
from config.languages import SUPPORTED_LANGUAGES
from storage.aging import Standing, mostly_gone, standing
from storage.dates import PartialDate, Precision
from storage.followers import DEFAULT_LEAD_TIMES, LEAD_TIME_CHOICES
from storage.models import DeliveryStatus, DigestFrequency, EventStatus, SubscriptionScope
from storage.queries import EventFilter, NextEvents, SearchResults, Suggestion, When
from storage.review import ReviewItem, ReviewKind, ReviewQueue
from storage.rotation import OrganisationChairs, ProjectedChair, TermEnd
from storage.subscriptions import SubscriptionView
from storage.timezones import City, ZoneChoice, offset_label
from storage.views import (
    ChairView,
    ChatView,
    EventPage,
    EventView,
    OrganisationCard,
    OrganisationRef,
    PlaceView,
)

MAX_MESSAGE = 4096
MAX_DIGEST_ITEMS = 30


@dataclass(frozen=True)
class Reply:
    """A message to send: HTML text and optional inline buttons."""

    text: str
    keyboard: InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None = None

    @property
    def inline_keyboard(self) -> InlineKeyboardMarkup | None:
        """The buttons where only inline ones may go (edits, inline results)."""
        return self.keyboard if isinstance(self.keyboard, InlineKeyboardMarkup) else None


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def bold(text: str) -> str:
    # Not an f-string around _(): gettext extraction cannot see inside f-strings.
    return f"<b>{esc(text)}</b>"


def localised(value: dict[str, str], language: str) -> str:
    """A data field in ``language``, else English, else any language; never empty if any."""
    return value.get(language) or value.get("en") or next(iter(value.values()), "")


# --- names ---------------------------------------------------------------


def organisation_name(org: OrganisationRef, tr: Translator) -> str:
    return localised(org.names, tr.language)


def organisation_short(org: OrganisationRef, tr: Translator) -> str:
    """The abbreviation in the reader's language, else the full name."""
    return org.abbreviations.get(tr.language) or organisation_name(org, tr)


def organisation_heading(org: OrganisationRef, tr: Translator) -> str:
    """ "<b>SCO</b> — Shanghai Cooperation Organisation" (the name once if no abbreviation)."""
    short, name = organisation_short(org, tr), organisation_name(org, tr)
    return bold(short) if short == name else f"{bold(short)} — {esc(name)}"


def organisation_title(org: OrganisationRef, tr: Translator) -> str:
    name, short = organisation_name(org, tr), org.abbreviations.get(tr.language)
    return f"{name} ({short})" if short and short != name else name


def country_name(code: str | None, tr: Translator) -> str:
    if not code:
        return ""
    territories = tr.locale.territories
    return str(territories.get(code) or code)


def event_title(event: EventView, tr: Translator) -> str:
    return localised(event.title, tr.language)


def place_label(event: EventView, tr: Translator) -> str:
    _ = tr.gettext
    if event.place is not None:
        where = f"{localised(event.place.names, tr.language)}, {country_name(event.country, tr)}"
        return _("online, hosted from {place}", place=where) if event.online else where
    if event.online:
        return _("online")
    return country_name(event.country, tr)


def status_label(status: EventStatus, tr: Translator) -> str:
    _ = tr.gettext
    labels = {
        EventStatus.PLANNED: _("planned"),
        EventStatus.PROPOSED: _("proposed, not confirmed"),
        EventStatus.CONFIRMED: _("confirmed"),
        EventStatus.HELD: _("held"),
        EventStatus.POSTPONED: _("postponed"),
        EventStatus.CANCELLED: _("cancelled"),
    }
    return labels[status]


def kind_label(kind: str, tr: Translator) -> str:
    _ = tr.gettext
    labels = {
        "summit": _("summit"),
        "informal_summit": _("informal summit"),
        "ministerial": _("ministerial meeting"),
        "assembly": _("general assembly"),
        "congress": _("congress"),
        "forum": _("forum"),
        "session": _("session"),
        "meeting": _("meeting"),
        "observance": _("international day"),
    }
    return labels.get(kind, kind)


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
    _ = tr.gettext
    found = standing(event, now)
    if found is Standing.LAPSED:
        return _("dates passed — outcome not recorded")
    if found is Standing.UNDATED_NOW:
        period = format_dates(event.start, event.end, tr)
        if mostly_gone(event, now):
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


# --- events --------------------------------------------------------------


def event_card(
    event: EventView,
    chat: ChatView,
    now: dt.datetime,
    tr: Translator,
    *,
    follow_button: bool = True,
) -> Reply:
    """The full card of an event, with buttons to follow it and to its organisation."""
    _ = tr.gettext
    lines = [f"<b>{esc(event_title(event, tr))}</b>"]
    if event.organisation is not None:
        lines.append(f"🏛 {esc(organisation_title(event.organisation, tr))}")
    when = event_when(event, chat, tr)
    lines.append(f"📅 {when[0]}")
    lines.extend(f"    {line}" for line in when[1:])
    where = place_label(event, tr)
    if where:
        lines.append(f"📍 {esc(where)}")
    status = status_label(event.status, tr)
    found = standing(event, now)
    if found is Standing.COMING and event.start.precision in (Precision.MONTH, Precision.YEAR):
        status = _("{status}; exact dates not announced yet", status=status)
    lines.append(_("Status: {status}", status=esc(status)))
    label = standing_label(event, now, tr)
    if label:
        lines.append(f"{'⚠️' if found is Standing.LAPSED else '⌛'} {esc(label)}")
    left = countdown(event, chat, now, tr)
    if left:
        lines.append(f"⏳ {esc(left)}")
    if event.recurrence:
        lines.append(_("Every year"))
    note = localised(event.note, tr.language)
    if note:
        lines.append(f"ℹ️ {esc(note)}")
    sources = sources_line(event.sources, event.checked, tr)
    if sources:
        lines.append(sources)
    lines.append(f"<code>/event {esc(event.key)}</code>")
    row = []
    if follow_button and not event.is_over(now):
        row.append(
            InlineKeyboardButton(_("🔔 Remind me"), callback_data=callbacks.follow_event(event.key))
        )
    if event.organisation is not None:
        row.append(
            InlineKeyboardButton(
                organisation_short(event.organisation, tr),
                callback_data=callbacks.organisation(event.organisation.key),
            )
        )
    rows = [row] if row else []
    if event.start.precision is not Precision.YEAR:
        rows.append(
            [
                InlineKeyboardButton(
                    _("📅 Add to calendar"), callback_data=callbacks.calendar_file(event.key)
                )
            ]
        )
    return Reply("\n".join(lines), InlineKeyboardMarkup(rows) if rows else None)


def event_line(event: EventView, tr: Translator, now: dt.datetime | None = None) -> str:
    """One line of a list: dates · place · title (plain text, for buttons and lists);
    with ``now``, what the day makes of it ("dates passed — outcome not recorded")."""
    parts = [format_dates(event.start, event.end, tr)]
    where = place_label(event, tr)
    if where:
        parts.append(where)
    prefix = f"{organisation_short(event.organisation, tr)}: " if event.organisation else ""
    parts.append(prefix + event_title(event, tr))
    if event.status in (EventStatus.CANCELLED, EventStatus.POSTPONED):
        parts.append(status_label(event.status, tr))
    label = standing_label(event, now, tr) if now is not None else None
    if label:
        parts.append(label)
    return " · ".join(parts)


def list_heading(query: EventFilter, org: OrganisationRef | None, tr: Translator) -> str:
    _ = tr.gettext
    name = organisation_short(org, tr) if org else None
    if query.when is When.UPCOMING:
        heading = _("Upcoming events of {org}", org=name) if name else _("Upcoming events")
    elif query.when is When.PAST:
        heading = _("Past events of {org}", org=name) if name else _("Past events")
    else:
        heading = (
            _("Summits and meetings of {org}", org=name) if name else _("Summits and meetings")
        )
    if query.year is not None:
        heading = _("{heading} in {year}", heading=heading, year=query.year)
    return heading


def event_list(
    page: EventPage,
    query: EventFilter,
    org: OrganisationRef | None,
    now: dt.datetime,
    tr: Translator,
) -> Reply:
    """A page of events: numbered lines, a button per event, and ◀ ▶ when there is more."""
    _ = tr.gettext
    heading = esc(list_heading(query, org, tr))
    if not page.events:
        return Reply(f"<b>{heading}</b>\n" + esc(_("Nothing found.")))
    start_number = page.page * page.page_size
    lines = [f"<b>{heading}</b>"]
    if page.pages > 1:
        lines[0] += esc(" " + _("(page {page} of {pages})", page=page.page + 1, pages=page.pages))
    buttons = []
    for offset, event in enumerate(page.events):
        number = start_number + offset + 1
        lines.append(f"{number}. {esc(event_line(event, tr, now))}")
        label = f"{number}. {event_title(event, tr)}"
        buttons.append([InlineKeyboardButton(label[:60], callback_data=callbacks.event(event.key))])
    navigation = []
    if page.page > 0:
        navigation.append(
            InlineKeyboardButton("◀", callback_data=callbacks.event_list(query, page.page - 1))
        )
    if page.page < page.pages - 1:
        navigation.append(
            InlineKeyboardButton("▶", callback_data=callbacks.event_list(query, page.page + 1))
        )
    if navigation:
        buttons.append(navigation)
    return Reply("\n".join(lines), InlineKeyboardMarkup(buttons))


def next_event(
    found: NextEvents,
    org: OrganisationRef | None,
    chat: ChatView,
    now: dt.datetime,
    tr: Translator,
    last: EventView | None = None,
) -> Reply:
    """/next: the next event's card; before it, undated events that may already have
    taken place; with none, what became of the ``last`` one when it has no outcome."""
    _ = tr.gettext
    before = []
    if found.uncertain:
        before.append(esc(_("Expected without dates, and may already have taken place:")))
        before.extend(
            f"• {esc(event_line(event, tr))} — <code>/event {esc(event.key)}</code>"
            for event in found.uncertain
        )
        before.append("")
    if found.next is None:
        if org is not None:
            text = _("No upcoming events of {org} are known.", org=organisation_short(org, tr))
        else:
            text = _("No upcoming events are known.")
        lines = [*before, esc(text)]
        if last is not None and standing(last, now) is Standing.LAPSED:
            lines.append(
                _("<b>Last:</b> {event}", event=esc(event_line(last, tr, now)))
                + f" — <code>/event {esc(last.key)}</code>"
            )
        return Reply("\n".join(lines))
    card = event_card(found.next, chat, now, tr)
    if not before:
        return card
    return Reply("\n".join([*before, card.text]), card.keyboard)


# --- organisations and chairs --------------------------------------------


def chair_period(chair: ChairView, tr: Translator) -> str:
    """ "4 July 2023 – 4 July 2024", "since 1 September 2025 (until the 2026 summit)"."""
    _ = tr.gettext
    end_note = localised(chair.end_note, tr.language)
    if chair.start is None and chair.end is None:
        period = _("dates unknown")
    elif chair.start is None:
        assert chair.end is not None
        period = _("until {date}", date=format_partial(chair.end, tr))
    elif chair.end is None:
        period = _("since {date}", date=format_partial(chair.start, tr))
    else:
        period = format_dates(chair.start, chair.end, tr)
    return f"{period} ({end_note})" if end_note else period


def chair_line(chair: ChairView, tr: Translator, *, sourced: bool = False) -> str:
    """ "Kazakhstan: 1 January – 31 December 2024 — note" (HTML); ``sourced`` adds its
    sources and when they were checked, on a line of their own."""
    country = country_name(chair.country, tr)
    line = f"{esc(country)}: {esc(chair_period(chair, tr))}"
    note = localised(chair.note, tr.language)
    if note:
        line += f" — <i>{esc(note)}</i>"
    sources = sources_line(chair.sources, chair.checked, tr) if sourced else None
    if sources:
        line += f"\n      <i>{sources}</i>"
    return line


def term_end_line(ended: TermEnd, today: dt.date, tr: Translator) -> str:
    """A term with nobody recorded after it (HTML): "Russia's term ended on 31 December
    2026; the successor is not recorded", or the summit it was due to pass on at."""
    _ = tr.gettext
    country = country_name(ended.chair.country, tr)
    summit = ended.handover
    if summit is not None and not ended.handover_recorded:
        what = f"{event_title(summit, tr)}, {format_dates(summit.start, summit.end, tr)}"
        if ended.last_day is not None and ended.last_day < today:
            text = _(
                "{country}'s term was due to end at {summit}; what happened there and the "
                "successor are not recorded.",
                country=country,
                summit=what,
            )
        else:
            text = _(
                "{country}'s term is due to end at {summit}; the successor is not recorded.",
                country=country,
                summit=what,
            )
        return esc(text)
    assert ended.last_day is not None
    day = format_day(ended.last_day, tr)
    if ended.last_day < today:
        text = _(
            "{country}'s term ended on {date}; the successor is not recorded.",
            country=country,
            date=day,
        )
    else:
        text = _(
            "{country}'s term ends on {date}; the successor is not recorded.",
            country=country,
            date=day,
        )
    return esc(text)


def projection_line(projected: ProjectedChair, tr: Translator) -> str:
    """Who the rotation rule expects, always labelled as a projection (HTML)."""
    _ = tr.gettext
    country = country_name(projected.country, tr)
    if projected.year is not None:
        text = _(
            "By rotation expected: {country} for {year} (a projection, unconfirmed)",
            country=country,
            year=projected.year,
        )
    elif projected.host_of is not None:
        text = _(
            "By rotation expected: {country}, host of {summit} (a projection, unconfirmed)",
            country=country,
            summit=event_title(projected.host_of, tr),
        )
    else:
        text = _("By rotation expected: {country} (a projection, unconfirmed)", country=country)
    return f"<i>{esc(text)}</i>"


def chair_standing_lines(group: OrganisationChairs, today: dt.date, tr: Translator) -> list[str]:
    """The recorded chairs of one organisation, then an unsucceeded end and projections."""
    lines = [f"  • {chair_line(chair, tr, sourced=True)}" for chair in group.chairs]
    if group.ended is not None:
        lines.append(f"  • {term_end_line(group.ended, today, tr)}")
    lines.extend(f"  • {projection_line(projected, tr)}" for projected in group.projected)
    return lines


def chairs_on(
    day: dt.date, chairs: Sequence[OrganisationChairs], today: dt.date, tr: Translator
) -> Reply:
    _ = tr.gettext
    heading = _("Who chairs what on {date}", date=format_day(day, tr))
    return _chairs_reply(heading, chairs, today, tr)


def chairs_during(
    label: str,
    last: dt.date,
    chairs: Sequence[OrganisationChairs],
    today: dt.date,
    tr: Translator,
) -> Reply:
    """/chairs 2024 (or a month): everyone in the chair during the period that ends ``last``."""
    _ = tr.gettext
    if last < today:
        heading = _("Who chaired what in {period}", period=label)
    else:
        heading = _("Who chairs what in {period}", period=label)
    return _chairs_reply(heading, chairs, today, tr)


def _chairs_reply(
    heading: str, chairs: Sequence[OrganisationChairs], today: dt.date, tr: Translator
) -> Reply:
    _ = tr.gettext
    lines = [f"<b>{esc(heading)}</b>"]
    if not chairs:
        lines.append(esc(_("No chairmanships are known for that time.")))
    for group in chairs:
        org = group.organisation
        lines.append("")
        lines.append(organisation_heading(org, tr))
        lines.extend(chair_standing_lines(group, today, tr))
    buttons = [
        InlineKeyboardButton(
            organisation_short(group.organisation, tr),
            callback_data=callbacks.organisation(group.organisation.key),
        )
        for group in chairs
    ]
    rows = [buttons[i : i + 4] for i in range(0, len(buttons), 4)]
    return Reply("\n".join(lines), InlineKeyboardMarkup(rows) if rows else None)


def organisation_card(
    card: OrganisationCard, chat: ChatView, now: dt.datetime, tr: Translator
) -> Reply:
    """/org: names in every language, facts, current chair, history, last and next event."""
    _ = tr.gettext
    org = card.organisation
    lines = [f"<b>{esc(organisation_title(org, tr))}</b>"]
    others = [
        name for language, name in sorted(org.names.items()) if language != tr.language and name
    ]
    if others:
        lines.append(f"<i>{esc(' · '.join(others))}</i>")
    lines.append("")
    if card.founded is not None:
        founded = format_partial(card.founded, tr)
        note = localised(card.founded_note, tr.language)
        lines.append(_("Founded: {date}", date=esc(f"{founded} ({note})" if note else founded)))
    headquarters = localised(card.headquarters, tr.language)
    if headquarters:
        lines.append(_("Headquarters: {place}", place=esc(headquarters)))
    if card.members is not None:
        note = localised(card.members_note, tr.language)
        count = format_decimal(card.members, locale=tr.locale)
        members = f"{count} ({note})" if note else str(count)
        lines.append(_("Members: {members}", members=esc(members)))
    rotation = localised(card.rotation, tr.language)
    if rotation:
        lines.append(_("How the chair rotates: {rotation}", rotation=esc(rotation)))
    lines.append("")
    standing_today = card.chair_today
    if card.current_chair is not None:
        chair = chair_line(card.current_chair, tr, sourced=True)
        lines.append(_("<b>Chair now:</b> {chair}", chair=chair))
    elif standing_today is not None and standing_today.ended is not None:
        lines.append(
            _(
                "<b>Chair now:</b> {chair}",
                chair=term_end_line(standing_today.ended, now.date(), tr),
            )
        )
    else:
        lines.append(esc(_("The current chair is not known.")))
    if standing_today is not None:
        lines.extend(f"  {projection_line(p, tr)}" for p in standing_today.projected)
    if card.chairs:
        lines.append(_("<b>Chairs so far:</b>"))
        lines.extend(f"  • {chair_line(chair, tr)}" for chair in reversed(card.chairs))
    lines.append("")
    if card.last_event is not None:
        lines.append(
            _("<b>Last:</b> {event}", event=esc(event_line(card.last_event, tr, now)))
            + f" — <code>/event {esc(card.last_event.key)}</code>"
        )
    if card.next_event is not None:
        left = countdown(card.next_event, chat, now, tr)
        line = _("<b>Next:</b> {event}", event=esc(event_line(card.next_event, tr, now)))
        if left:
            line += f" ({esc(left)})"
        lines.append(line + f" — <code>/event {esc(card.next_event.key)}</code>")
    for event in card.uncertain_events:
        line = _("<b>Expected:</b> {event}", event=esc(event_line(event, tr, now)))
        lines.append(line + f" — <code>/event {esc(event.key)}</code>")
    note = localised(card.note, tr.language)
    if note:
        lines.append(f"ℹ️ {esc(note)}")
    sources = sources_line(card.sources, card.checked, tr)
    if sources:
        lines.append(sources)
    buttons = [
        InlineKeyboardButton(
            _("All summits"),
            callback_data=callbacks.event_list(EventFilter(organisation=org.key), 0),
        ),
        InlineKeyboardButton(
            _("Upcoming"),
            callback_data=callbacks.event_list(
                EventFilter(organisation=org.key, when=When.UPCOMING), 0
            ),
        ),
    ]
    rows = [
        buttons,
        [InlineKeyboardButton(_("🔔 Follow"), callback_data=callbacks.follow_org(org.key))],
    ]
    if card.next_event is not None:
        rows.append(
            [
                InlineKeyboardButton(
                    _("Next: {event}", event=event_title(card.next_event, tr))[:60],
                    callback_data=callbacks.event(card.next_event.key),
                )
            ]
        )
    return Reply("\n".join(lines), InlineKeyboardMarkup(rows))


def organisation_list(orgs: Sequence[OrganisationRef], tr: Translator) -> Reply:
    _ = tr.gettext
    lines = [bold(_("Organisations"))]
    lines.extend("• " + organisation_heading(org, tr) for org in orgs)
    lines.append(esc(_("Open one with /org NAME, or tap a button.")))
    buttons = [
        InlineKeyboardButton(
            organisation_short(org, tr), callback_data=callbacks.organisation(org.key)
        )
        for org in orgs
    ]
    rows = [buttons[i : i + 4] for i in range(0, len(buttons), 4)]
    return Reply("\n".join(lines), InlineKeyboardMarkup(rows) if rows else None)


# --- search and errors ---------------------------------------------------


def suggestion_label(suggestion: Suggestion, tr: Translator) -> str:
    if isinstance(suggestion, OrganisationRef):
        return f"<b>{esc(organisation_short(suggestion, tr))}</b>"
    return f"<code>/event {esc(suggestion)}</code>"


def not_found(what: str, suggestions: Sequence[Suggestion], tr: Translator) -> Reply:
    """ "Nothing called … is known", with the closest names to try."""
    _ = tr.gettext
    text = _("I don't know “{name}”.", name=esc(what[:100]))
    if suggestions:
        names = ", ".join(suggestion_label(s, tr) for s in suggestions)
        text += "\n" + _("Did you mean: {names}?", names=names)
    else:
        text += "\n" + esc(_("Try /org to see the organisations, or /search with another name."))
    return Reply(text)


def search_results(
    query: str, results: SearchResults, tr: Translator, now: dt.datetime | None = None
) -> Reply:
    _ = tr.gettext
    if not results.organisations and not results.events:
        return not_found(query, results.suggestions, tr)
    lines = [bold(_("Found for “{query}”:", query=query[:100]))]
    buttons = []
    for org in results.organisations:
        lines.append("🏛 " + organisation_heading(org, tr))
        buttons.append(
            [
                InlineKeyboardButton(
                    organisation_title(org, tr)[:60], callback_data=callbacks.organisation(org.key)
                )
            ]
        )
    for event in results.events:
        lines.append(f"📅 {esc(event_line(event, tr, now))}")
        buttons.append(
            [
                InlineKeyboardButton(
                    event_line(event, tr)[:60], callback_data=callbacks.event(event.key)
                )
            ]
        )
    return Reply("\n".join(lines), InlineKeyboardMarkup(buttons))


def split_message(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Split HTML text at line breaks into messages under Telegram's limit.

    Rendering never lets a tag span lines, so a split between lines keeps tags whole.
    A single line longer than the limit is cut at the limit, outside any entity.
    """
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            if "&" in line[max(0, cut - 8) : cut]:
                cut = line.rfind("&", 0, cut)
            parts.append(line[:cut])
            line = line[cut:].lstrip()
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current or not parts:
        parts.append(current)
    return parts


# --- subscriptions and reminders ------------------------------------------


def lead_time_label(minutes: int, tr: Translator) -> str:
    """ "7 days", "3 hours", "15 minutes"."""
    if minutes % 1440 == 0:
        return tr.ngettext("{count} day", "{count} days", minutes // 1440)
    if minutes % 60 == 0:
        return tr.ngettext("{count} hour", "{count} hours", minutes // 60)
    return tr.ngettext("{count} minute", "{count} minutes", minutes)


def lead_times_text(minutes: Sequence[int], tr: Translator) -> str:
    """ "7 days, 1 day and 1 hour", longest first, in the reader's language."""
    labels = [lead_time_label(m, tr) for m in sorted(minutes, reverse=True)]
    return str(format_list(labels, locale=tr.locale)) if labels else ""


def subscription_target(subscription: SubscriptionView, tr: Translator) -> str:
    _ = tr.gettext
    if subscription.scope is SubscriptionScope.ALL:
        return _("all summits and meetings")
    if subscription.organisation is not None:
        return organisation_short(subscription.organisation, tr)
    if subscription.event_title is not None:
        return localised(subscription.event_title, tr.language)
    return subscription.event_key or "?"


def _subscription_buttons(
    subscription: SubscriptionView, tr: Translator
) -> list[InlineKeyboardButton]:
    _ = tr.gettext
    return [
        InlineKeyboardButton(_("⏱ Lead times"), callback_data=callbacks.lead_menu(subscription.id)),
        InlineKeyboardButton(_("✖ Unfollow"), callback_data=callbacks.unfollow(subscription.id)),
    ]


def followed(subscription: SubscriptionView, created: bool, tr: Translator) -> Reply:
    _ = tr.gettext
    target = esc(subscription_target(subscription, tr))
    leads = esc(lead_times_text(subscription.lead_times, tr))
    if created:
        text = _("✅ You now follow <b>{target}</b>.", target=target)
    else:
        text = _("You already follow <b>{target}</b>.", target=target)
    text += "\n" + _("Reminders come {leads} before each event.", leads=leads)
    text += "\n" + esc(
        _(
            "Events known only to the month get one notice at the start of that month; "
            "events known only to the year get none until their dates are announced."
        )
    )
    return Reply(text, InlineKeyboardMarkup([_subscription_buttons(subscription, tr)]))


def unfollowed(subscription: SubscriptionView, tr: Translator) -> Reply:
    _ = tr.gettext
    target = esc(subscription_target(subscription, tr))
    return Reply(_("You no longer follow <b>{target}</b>.", target=target))


def subscribe_menu(orgs: Sequence[OrganisationRef], tr: Translator) -> Reply:
    _ = tr.gettext
    text = "\n".join(
        [
            bold(_("What would you like to follow?")),
            esc(
                _(
                    "Everything, one organisation, or one event (the 🔔 button on an event's "
                    "card, or /subscribe EVENT_ID)."
                )
            ),
        ]
    )
    buttons = [
        InlineKeyboardButton(
            organisation_short(org, tr), callback_data=callbacks.follow_org(org.key)
        )
        for org in orgs
    ]
    rows = [[InlineKeyboardButton(_("Everything"), callback_data=callbacks.follow_all())]]
    rows.extend(buttons[i : i + 4] for i in range(0, len(buttons), 4))
    return Reply(text, InlineKeyboardMarkup(rows))


def subscriptions_list(
    subscriptions: Sequence[SubscriptionView], default: Sequence[int], tr: Translator
) -> Reply:
    _ = tr.gettext
    if not subscriptions:
        text = esc(_("This chat follows nothing yet. Use /subscribe to choose."))
        return Reply(
            text,
            InlineKeyboardMarkup(
                [[InlineKeyboardButton(_("Follow…"), callback_data=callbacks.subscribe_menu())]]
            ),
        )
    lines = [bold(_("This chat follows:"))]
    rows = []
    for number, subscription in enumerate(subscriptions, start=1):
        target = subscription_target(subscription, tr)
        leads = lead_times_text(subscription.lead_times, tr)
        lines.append(f"{number}. {esc(target)} — {esc(leads)}")
        rows.append(
            [
                InlineKeyboardButton(
                    f"⏱ {number}", callback_data=callbacks.lead_menu(subscription.id)
                ),
                InlineKeyboardButton(
                    f"✖ {number}", callback_data=callbacks.unfollow(subscription.id)
                ),
            ]
        )
    lines.append("")
    lines.append(esc(_("Default lead times: {leads}", leads=lead_times_text(default, tr))))
    rows.append(
        [InlineKeyboardButton(_("⏱ Default lead times"), callback_data=callbacks.lead_menu(0))]
    )
    return Reply("\n".join(lines), InlineKeyboardMarkup(rows))


def lead_menu(
    target: str | None, current: Sequence[int], subscription_id: int, tr: Translator
) -> Reply:
    """Toggle buttons for every lead time on offer; the current ones ticked."""
    _ = tr.gettext
    if target is None:
        text = _("Default lead times for new subscriptions of this chat:")
    else:
        text = _("Remind before <b>{target}</b>:", target=esc(target))
    text += "\n" + esc(_("Tap to switch a lead time on or off."))
    buttons = [
        InlineKeyboardButton(
            ("✓ " if minutes in current else "· ") + lead_time_label(minutes, tr),
            callback_data=callbacks.toggle_lead(subscription_id, minutes),
        )
        for minutes in LEAD_TIME_CHOICES
    ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    rows.append(
        [InlineKeyboardButton(_("Done"), callback_data=callbacks.lead_done(subscription_id))]
    )
    return Reply(text, InlineKeyboardMarkup(rows))


def reminder(event: EventView, chat: ChatView, now: dt.datetime, tr: Translator) -> Reply:
    """A reminder: what, where, when, how long until it starts, and a button to the card."""
    _ = tr.gettext
    return _notice("⏰ " + bold(_("Reminder")), event, chat, now, tr)


def month_notice(event: EventView, chat: ChatView, now: dt.datetime, tr: Translator) -> Reply:
    _ = tr.gettext
    header = "🗓 " + bold(_("This month")) + "\n" + esc(_("The exact dates are not announced yet."))
    return _notice(header, event, chat, now, tr)


def change_notice(
    event: EventView,
    old: dict[str, object],
    new: dict[str, object],
    places: dict[str, PlaceView],
    chat: ChatView,
    now: dt.datetime,
    tr: Translator,
) -> Reply:
    """What changed, old and new, then the event as it is now."""
    _ = tr.gettext
    lines = ["📣 " + bold(_("Changed"))]

    def dates(values: dict[str, object]) -> str:
        start = PartialDate.parse(str(values["start"]))
        end = PartialDate.parse(str(values["end"])) if values.get("end") else None
        return format_dates(start, end, tr)

    def place(values: dict[str, object]) -> str:
        key = values.get("place")
        found = places.get(str(key)) if key else None
        name = localised(found.names, tr.language) if found else ""
        return (_("online") + (f" ({name})" if name else "")) if values.get("online") else name

    if (old.get("start"), old.get("end")) != (new.get("start"), new.get("end")):
        lines.append(_("Dates: {old} → {new}", old=esc(dates(old)), new=esc(dates(new))))
    if (old.get("place"), old.get("online")) != (new.get("place"), new.get("online")):
        lines.append(
            _("Place: {old} → {new}", old=esc(place(old) or "—"), new=esc(place(new) or "—"))
        )
    if old.get("status") != new.get("status"):
        lines.append(
            _(
                "Status: {old} → {new}",
                old=esc(status_label(EventStatus(str(old["status"])), tr)),
                new=esc(status_label(EventStatus(str(new["status"])), tr)),
            )
        )
    return _notice("\n".join(lines), event, chat, now, tr)


def _notice(
    header: str, event: EventView, chat: ChatView, now: dt.datetime, tr: Translator
) -> Reply:
    _ = tr.gettext
    card = event_card(event, chat, now, tr, follow_button=False)
    keyboard = [
        [InlineKeyboardButton(_("📋 Event card"), callback_data=callbacks.event(event.key))]
    ]
    return Reply(f"{header}\n\n{card.text}", InlineKeyboardMarkup(keyboard))


# --- language and time zone -------------------------------------------------


def language_name(language: str) -> str:
    """A language's name in itself (Babel): "Русский", "Қазақ тілі", "中文"."""
    locale = translator(language).locale
    name = str(locale.display_name or language)
    return name[:1].upper() + name[1:]


def language_menu(tr: Translator) -> Reply:
    _ = tr.gettext
    buttons = [
        InlineKeyboardButton(language_name(code), callback_data=callbacks.set_language(code))
        for code in SUPPORTED_LANGUAGES
    ]
    text = _(
        "Choose the language of this chat. Now: {language}.", language=language_name(tr.language)
    )
    return Reply(esc(text), InlineKeyboardMarkup([buttons[:3], buttons[3:]]))


def language_set(tr: Translator) -> Reply:
    _ = tr.gettext
    return Reply(esc(_("Done: I will speak {language} here.", language=language_name(tr.language))))


def zone_label(zone: str, now: dt.datetime | None = None) -> str:
    """ "Almaty" for Asia/Almaty; "UTC+05:00" for fixed offsets, which have no city."""
    if zone.startswith("Etc/") or zone in ("UTC", "GMT"):
        return offset_label(zone, now or dt.datetime.now(dt.UTC))
    return zone.rsplit("/", 1)[-1].replace("_", " ")


def timezone_help(zone: str, now: dt.datetime, tr: Translator) -> Reply:
    _ = tr.gettext
    local = format_datetime(now.astimezone(ZoneInfo(zone)), "HH:mm", locale=tr.locale)
    lines = [
        _(
            "This chat's time zone: <b>{zone}</b> ({offset}), now {time}.",
            zone=esc(zone),
            offset=offset_label(zone, now),
            time=local,
        ),
        esc(
            _(
                "Change it with /tz and a city (/tz Almaty, /tz Пекин), a time zone "
                "(/tz Europe/Berlin) or an offset (/tz UTC+5); in a private chat you can "
                "also share your location."
            )
        ),
    ]
    return Reply("\n".join(lines))


def timezone_unknown(text: str, suggestions: Sequence[str], tr: Translator) -> Reply:
    _ = tr.gettext
    lines = [_("I don't know the time zone of “{name}”.", name=esc(text[:100]))]
    if suggestions:
        names = ", ".join(f"<b>{esc(s)}</b>" for s in suggestions)
        lines.append(_("Did you mean: {names}?", names=names))
    lines.append(esc(_("Try a big city nearby, a zone such as Asia/Almaty, or UTC+5.")))
    return Reply("\n".join(lines))


def timezone_set(choice: ZoneChoice, now: dt.datetime, tr: Translator) -> Reply:
    if choice.city is not None:
        return timezone_set_by_city(choice.city, now, tr)
    _ = tr.gettext
    local = format_datetime(now.astimezone(ZoneInfo(choice.zone)), "HH:mm", locale=tr.locale)
    text = _(
        "Time zone set to <b>{zone}</b> ({offset}); it is {time} there now.",
        zone=esc(choice.zone),
        offset=offset_label(choice.zone, now),
        time=local,
    )
    return Reply(text)


def timezone_set_by_city(city: City, now: dt.datetime, tr: Translator) -> Reply:
    _ = tr.gettext
    local = format_datetime(now.astimezone(ZoneInfo(city.timezone)), "HH:mm", locale=tr.locale)
    text = _(
        "Time zone set to <b>{zone}</b> ({city}, {offset}); it is {time} there now.",
        zone=esc(city.timezone),
        city=esc(city.name(tr.language)),
        offset=offset_label(city.timezone, now),
        time=local,
    )
    return Reply(text)


# --- announcements, digests and channels ------------------------------------------


def new_event_notice(event: EventView, chat: ChatView, now: dt.datetime, tr: Translator) -> Reply:
    _ = tr.gettext
    return _notice("🆕 " + bold(_("New event")), event, chat, now, tr)


def digest(
    events: Sequence[EventView], days: int, chat: ChatView, now: dt.datetime, tr: Translator
) -> Reply:
    """The coming events a chat follows, soonest first, one line and one button each."""
    _ = tr.gettext
    heading = tr.ngettext(
        "Coming up in the next {count} day", "Coming up in the next {count} days", days
    )
    lines = ["🗓 " + bold(heading)]
    buttons = []
    for event in sorted(events, key=lambda e: e.starts_at)[:MAX_DIGEST_ITEMS]:
        left = countdown(event, chat, now, tr)
        line = esc(event_line(event, tr, now)) + (f" ({esc(left)})" if left else "")
        lines.append(f"• {line}")
        buttons.append(
            [
                InlineKeyboardButton(
                    event_title(event, tr)[:60], callback_data=callbacks.event(event.key)
                )
            ]
        )
    return Reply("\n".join(lines), InlineKeyboardMarkup(buttons))


def channel_keyboard(
    event_key: str | None, bot_username: str, tr: Translator
) -> InlineKeyboardMarkup | None:
    """Buttons under a channel post: links into a private chat with the bot."""
    _ = tr.gettext
    if not event_key or not bot_username:
        return None
    url = f"https://t.me/{bot_username}?start=e_{event_key}"
    return InlineKeyboardMarkup([[InlineKeyboardButton(_("🔔 Remind me"), url=url)]])


def digest_label(frequency: DigestFrequency, tr: Translator) -> str:
    _ = tr.gettext
    labels = {
        DigestFrequency.OFF: _("no digest"),
        DigestFrequency.DAILY: _("daily digest"),
        DigestFrequency.WEEKLY: _("weekly digest"),
    }
    return labels[frequency]


def channels_list(channels: Sequence[ChatView], tr: Translator) -> Reply:
    _ = tr.gettext
    lines = [bold(_("Your channels"))]
    if not channels:
        lines.append(esc(_("No channel is linked yet.")))
    rows = []
    for channel in channels:
        state = "" if channel.is_active and not channel.paused else " " + _("(paused)")
        lines.append(f"• {esc(channel.title or channel.id)}{esc(state)}")
        rows.append(
            [
                InlineKeyboardButton(
                    f"⚙ {channel.title or channel.id}"[:60],
                    callback_data=callbacks.channel_action(channel.id, "menu"),
                )
            ]
        )
    rows.append(
        [
            InlineKeyboardButton(
                _("➕ Link a channel"), callback_data=callbacks.channel_action(0, "link")
            )
        ]
    )
    return Reply("\n".join(lines), InlineKeyboardMarkup(rows))


def channel_menu(
    channel: ChatView,
    subscriptions: Sequence[SubscriptionView],
    orgs: Sequence[OrganisationRef],
    tr: Translator,
    *,
    linked: bool = False,
) -> Reply:
    """Everything about a linked channel on one message, each button a toggle or a choice."""
    _ = tr.gettext
    title = esc(channel.title or channel.id)
    lines = [
        _("✅ Linked <b>{channel}</b>.", channel=title)
        if linked
        else bold(channel.title or str(channel.id))
    ]
    followed = ", ".join(subscription_target(s, tr) for s in subscriptions) or _("nothing yet")
    leads = channel.lead_times or DEFAULT_LEAD_TIMES
    lines.append(esc(_("Follows: {targets}", targets=followed)))
    lines.append(esc(_("Reminders: {leads} before", leads=lead_times_text(leads, tr))))
    lines.append(
        esc(
            _(
                "Language: {language}; time zone: {zone}",
                language=language_name(channel.language),
                zone=channel.timezone,
            )
        )
    )
    lines.append(esc(digest_label(channel.digest, tr)))
    if channel.paused:
        lines.append(esc(_("Paused: nothing is posted until you resume.")))
    if not channel.is_active:
        lines.append(esc(_("I cannot post there now: make me an administrator who may post.")))

    def button(label: str, action: str, argument: str | None = None) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            label[:60], callback_data=callbacks.channel_action(channel.id, action, argument)
        )

    followed_orgs = {s.organisation.key for s in subscriptions if s.organisation}
    follows_all = any(s.scope is SubscriptionScope.ALL for s in subscriptions)
    targets = [button(("✓ " if follows_all else "· ") + _("Everything"), "all")]
    targets += [
        button(
            ("✓ " if org.key in followed_orgs else "· ") + organisation_short(org, tr),
            "org",
            org.key,
        )
        for org in orgs
    ]
    rows = [targets[i : i + 4] for i in range(0, len(targets), 4)]
    lead_buttons = [
        button(("✓ " if m in leads else "· ") + lead_time_label(m, tr), "lead", str(m))
        for m in LEAD_TIME_CHOICES
    ]
    rows += [lead_buttons[i : i + 4] for i in range(0, len(lead_buttons), 4)]
    rows.append([button(language_name(code), "lang", code) for code in SUPPORTED_LANGUAGES])
    rows.append(
        [
            button(("✓ " if channel.digest is f else "") + digest_label(f, tr), "digest", f.value)
            for f in DigestFrequency
        ]
    )
    rows.append(
        [
            button(_("🕑 Time zone"), "tz"),
            button(
                _("▶ Resume") if channel.paused else _("⏸ Pause"),
                "resume" if channel.paused else "pause",
            ),
            button(_("✖ Unlink"), "unlink"),
        ]
    )
    return Reply("\n".join(lines), InlineKeyboardMarkup(rows))


def announce_summary(outcome: dict[str, Any], fresh: set[str], tr: Translator) -> Reply:
    """Where an announcement went: posted now, posted before, or failed and why."""
    _ = tr.gettext
    if not outcome:
        return Reply(esc(_("No linked channel to post to.")))
    lines = [bold(_("Announcement"))]
    for name, row in sorted(outcome.items()):
        status = DeliveryStatus(row.status) if row is not None else None
        if status is DeliveryStatus.SENT and name in fresh:
            state = _("posted")
        elif status is DeliveryStatus.SENT:
            state = _("already posted before")
        elif status is DeliveryStatus.FAILED:
            state = _("failed: {reason}", reason=row.error or "?")
        else:
            state = _("not posted yet ({status})", status=status.value if status else "?")
        lines.append(f"• {esc(name)} — {esc(state)}")
    return Reply("\n".join(lines))


def calendar_feed(url: str, tr: Translator, *, new: bool = False) -> Reply:
    """The chat's calendar feed address, with a button that replaces it."""
    _ = tr.gettext
    lines = [
        "📅 " + bold(_("Calendar feed")),
        esc(
            _(
                "Add this address to your calendar app (in Google Calendar: "
                "“From URL”; in Apple Calendar: “New Calendar Subscription”) and it "
                "stays up to date with what this chat follows:"
            )
        ),
        f"<code>{esc(url)}</code>",
        esc(_("Anyone with the address can read the list: share it with care.")),
    ]
    if new:
        lines.append(esc(_("The old link no longer works.")))
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(_("🔄 New link"), callback_data=callbacks.new_feed_address())]]
    )
    return Reply("\n".join(lines), keyboard)


# --- the operator review queue ---------------------------------------------------

REVIEW_PAGE_SIZE = 5
REVIEW_NOTICE_ITEMS = 3
_REVIEW_ICONS = {
    ReviewKind.LAPSED: "⚠️",
    ReviewKind.TERM_ENDED: "👤",
    ReviewKind.UNDATED: "⌛",
    ReviewKind.UNCHECKED: "🔁",
    ReviewKind.WEAKLY_SOURCED: "❓",
}


def review_reason(item: ReviewItem, kind: ReviewKind, tr: Translator) -> str:
    """Why the item needs a person, for one of its reasons (plain text)."""
    _ = tr.gettext
    match kind:
        case ReviewKind.LAPSED:
            return _("dates passed — outcome not recorded")
        case ReviewKind.TERM_ENDED:
            return _("the term ended; the successor is not recorded")
        case ReviewKind.UNDATED:
            return _("expected in this period, dates not announced")
        case ReviewKind.UNCHECKED:
            if item.checked is None:
                return _("never checked")
            return _("not checked since {date}", date=format_day(item.checked, tr))
        case ReviewKind.WEAKLY_SOURCED:
            count = len(item.event.sources) if item.event is not None else 0
            if count == 0:
                return _("low confidence, no source")
            return _("low confidence, a single source")


def _review_subject(item: ReviewItem, now: dt.datetime, tr: Translator) -> str:
    """What the item is about (HTML): the event, the chair or the organisation."""
    if item.event is not None:  # (its standing is the item's reason, said above it)
        line = esc(event_line(item.event, tr))
        return f"{line} — <code>/event {esc(item.event.key)}</code>"
    if item.chair is not None:
        org = organisation_short(item.chair.organisation, tr)
        return f"{esc(org)} · {chair_line(item.chair, tr)}"
    assert item.organisation is not None
    org_key = item.organisation.key
    return f"{esc(organisation_name(item.organisation, tr))} — <code>/org {esc(org_key)}</code>"


def review_item(item: ReviewItem, number: int, now: dt.datetime, tr: Translator) -> str:
    """One item of the queue (HTML): why, what, and its other reasons."""
    _ = tr.gettext
    icon = _REVIEW_ICONS[item.kind]
    lines = [f"{number}. {icon} <b>{esc(review_reason(item, item.kind, tr))}</b>"]
    lines.append(f"    {_review_subject(item, now, tr)}")
    if item.ended is not None:
        lines.append(f"    {term_end_line(item.ended, now.date(), tr)}")
    if item.successor is not None:
        lines.append(f"    {projection_line(item.successor, tr)}")
    if item.also:
        reasons = [review_reason(item, kind, tr) for kind in item.also]
        others = format_list(reasons, locale=tr.locale)
        lines.append("    <i>" + esc(_("Also: {reasons}", reasons=others)) + "</i>")
    return "\n".join(lines)


def review_buttons(item: ReviewItem, number: int, tr: Translator) -> list[InlineKeyboardButton]:
    """One-tap actions on an item; each opens the usual preview under Save and Cancel."""
    _ = tr.gettext
    verb = callbacks.ReviewVerb

    def button(label: str, action: callbacks.ReviewVerb) -> InlineKeyboardButton:
        data = callbacks.review_action(action, item.key)
        return InlineKeyboardButton(f"{number}. {label}"[:60], callback_data=data)

    buttons = []
    if ReviewKind.LAPSED in item.kinds:
        buttons.append(button(_("✅ Held"), verb.HELD))
        buttons.append(button(_("📅 Postpone…"), verb.DATES))
    elif ReviewKind.UNDATED in item.kinds:
        buttons.append(button(_("📅 Dates…"), verb.DATES))
    if item.successor is not None and item.successor_start is not None:
        country = country_name(item.successor.country, tr)
        buttons.append(button(_("👤 {country}", country=country), verb.SUCCESSOR))
    buttons.append(button(_("☑ Checked today"), verb.CHECKED))
    return buttons


def review_page(queue: ReviewQueue, page: int, tr: Translator) -> Reply:
    """/review: a page of the queue, most urgent first, with each item's actions."""
    _ = tr.gettext
    heading = "🔎 " + bold(_("Review queue"))
    if not queue.items:
        return Reply(f"{heading}\n" + esc(_("Nothing in the data needs a person right now.")))
    pages = max(1, -(-len(queue.items) // REVIEW_PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    first = page * REVIEW_PAGE_SIZE
    count = tr.ngettext(
        "{count} item needs a person.", "{count} items need a person.", len(queue.items)
    )
    lines = [heading, esc(count)]
    if pages > 1:
        lines.append(esc(_("Page {page} of {pages}", page=page + 1, pages=pages)))
    rows = []
    for offset, item in enumerate(queue.items[first : first + REVIEW_PAGE_SIZE]):
        number = first + offset + 1
        lines += ["", review_item(item, number, queue.now, tr)]
        rows.append(review_buttons(item, number, tr))
    navigation = []
    if page > 0:
        navigation.append(InlineKeyboardButton("◀", callback_data=callbacks.review_page(page - 1)))
    if page < pages - 1:
        navigation.append(InlineKeyboardButton("▶", callback_data=callbacks.review_page(page + 1)))
    if navigation:
        rows.append(navigation)
    return Reply("\n".join(lines), InlineKeyboardMarkup(rows))


def review_counts(queue: ReviewQueue, tr: Translator) -> list[str]:
    """ "7 events whose dates passed with no outcome recorded", … by kind (plain text)."""
    counts = dict.fromkeys(ReviewKind, 0)
    for item in queue.items:
        counts[item.kind] += 1
    lines = []
    for kind, count in counts.items():
        if not count:
            continue
        match kind:
            case ReviewKind.LAPSED:
                text = tr.ngettext(
                    "{count} event whose dates passed with no outcome recorded",
                    "{count} events whose dates passed with no outcome recorded",
                    count,
                )
            case ReviewKind.TERM_ENDED:
                text = tr.ngettext(
                    "{count} chair whose term ended with no successor recorded",
                    "{count} chairs whose term ended with no successor recorded",
                    count,
                )
            case ReviewKind.UNDATED:
                text = tr.ngettext(
                    "{count} event expected in this period without dates",
                    "{count} events expected in this period without dates",
                    count,
                )
            case ReviewKind.UNCHECKED:
                text = tr.ngettext(
                    "{count} fact not checked for over 90 days",
                    "{count} facts not checked for over 90 days",
                    count,
                )
            case ReviewKind.WEAKLY_SOURCED:
                text = tr.ngettext(
                    "{count} event of low confidence with one source or none",
                    "{count} events of low confidence with one source or none",
                    count,
                )
        lines.append(text)
    return lines


def review_notice(queue: ReviewQueue, chat: ChatView, now: dt.datetime, tr: Translator) -> Reply:
    """The weekly notice to an operator: what the queue holds, its first items, and a
    button that opens it."""
    _ = tr.gettext
    count = tr.ngettext(
        "{count} item in the data needs a person:",
        "{count} items in the data need a person:",
        len(queue.items),
    )
    lines = ["🔎 " + bold(_("Weekly review")), esc(count)]
    lines += [f"• {esc(line)}" for line in review_counts(queue, tr)]
    for number, item in enumerate(queue.items[:REVIEW_NOTICE_ITEMS], start=1):
        lines += ["", review_item(item, number, now, tr)]
    lines += ["", esc(_("Send /review to work through them."))]
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(_("🔎 Open the queue"), callback_data=callbacks.review_page(0))]]
    )
    return Reply("\n".join(lines), keyboard)


def checked_change(old: dt.date | None, new: dt.date | None, tr: Translator) -> str:
    """ "Checked: never → 22 November 2026" (HTML), in a preview of a change."""
    _ = tr.gettext

    def day(value: dt.date | None) -> str:
        return format_day(value, tr) if value is not None else _("never")

    return esc(_("Checked: {old} → {new}", old=day(old), new=day(new)))


def checked_preview(
    item: ReviewItem,
    now: dt.datetime,
    old: dt.date | None,
    new: dt.date | None,
    tr: Translator,
) -> str:
    """The preview of marking a chairmanship or an organisation checked (HTML)."""
    _ = tr.gettext
    lines = ["✏️ " + bold(_("Check the change, then save it"))]
    lines += [_review_subject(item, now, tr), checked_change(old, new, tr)]
    return "\n".join(lines)


def successor_preview(
    item: ReviewItem, successor: ChairView, now: dt.datetime, tr: Translator
) -> str:
    """The preview of recording the successor the rotation rule projects (HTML)."""
    _ = tr.gettext
    org = organisation_short(successor.organisation, tr)
    lines = ["🆕 " + bold(_("New chairmanship: check it, then save it"))]
    lines.append(f"{esc(org)} · {chair_line(successor, tr, sourced=True)}")
    if item.ended is not None:
        lines.append(term_end_line(item.ended, now.date(), tr))
    lines.append(
        esc(
            _(
                "It is recorded from the rotation rule, with low confidence and no source: "
                "add the source in a data file once it is confirmed."
            )
        )
    )
    return "\n".join(lines)


def review_dates_hint(item: ReviewItem, tr: Translator) -> Reply:
    """The commands that give an event new dates (a date must be typed, not tapped)."""
    _ = tr.gettext
    assert item.event is not None
    key = esc(item.event.key)
    lines = ["📅 " + bold(event_title(item.event, tr))]
    lines.append(esc(_("If it was postponed, send its new start (a day, a month or a year):")))
    lines.append(f"<code>/postpone {key} DATE</code>")
    lines.append(esc(_("If its dates were announced:")))
    lines.append(f"<code>/editevent {key} start DATE</code>")
    lines.append(esc(_("DATE is written 2027-06-15, 2027-06 or 2027.")))
    return Reply("\n".join(lines))
