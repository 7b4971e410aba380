"""Events: the card (the one rendering of an event, which lists, reminders, inline
results and channel posts all show), list lines and pages, /next, search results.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

from bot.presentation import callbacks
from bot.presentation.dates import countdown, event_when, format_dates, sources_line, standing_label
from bot.presentation.i18n import Translator
from bot.presentation.text import (
    Reply,
    bold,
    esc,
    event_title,
    localised,
    organisation_heading,
    organisation_short,
    organisation_title,
    place_label,
    status_label,
)
from storage.aging import Standing, standing
from storage.dates import Precision
from storage.models import EventStatus
from storage.queries import EventFilter, NextEvents, SearchResults, Suggestion, When
from storage.views import (
    ChatView,
    EventPage,
    EventView,
    OrganisationRef,
)

# --- events --------------------------------------------------------------


def event_card(
    event: EventView,
    chat: ChatView,
    now: dt.datetime,
    tr: Translator,
    *,
    follow_button: bool = True,
    app_button: InlineKeyboardButton | None = None,
) -> Reply:
    """The full card of an event, with buttons to follow it and to its organisation
    (and ``app_button``, "🗓 Open calendar", on a row of its own)."""
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
    if app_button is not None:
        rows.append([app_button])
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
    *,
    app_button: InlineKeyboardButton | None = None,
) -> Reply:
    """A page of events: numbered lines, a button per event, and ◀ ▶ when there is more
    (and ``app_button``, "🗓 Open calendar", last)."""
    _ = tr.gettext
    heading = esc(list_heading(query, org, tr))
    if not page.events:
        keyboard = InlineKeyboardMarkup([[app_button]]) if app_button is not None else None
        return Reply(f"<b>{heading}</b>\n" + esc(_("Nothing found.")), keyboard)
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
    if app_button is not None:
        buttons.append([app_button])
    return Reply("\n".join(lines), InlineKeyboardMarkup(buttons))


def next_event(
    found: NextEvents,
    org: OrganisationRef | None,
    chat: ChatView,
    now: dt.datetime,
    tr: Translator,
    last: EventView | None = None,
    *,
    app_button: InlineKeyboardButton | None = None,
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
    card = event_card(found.next, chat, now, tr, app_button=app_button)
    if not before:
        return card
    return Reply("\n".join([*before, card.text]), card.keyboard)


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
