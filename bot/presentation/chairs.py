"""Chairs and organisations: who chairs what on a day or over a period, terms that
ended with nobody recorded after them, projections (always labelled), /org cards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from babel.numbers import format_decimal
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

from bot.presentation import callbacks
from bot.presentation.dates import countdown, format_dates, format_day, format_partial, sources_line
from bot.presentation.events import event_line
from bot.presentation.i18n import Translator
from bot.presentation.text import (
    Reply,
    bold,
    country_name,
    esc,
    event_title,
    localised,
    organisation_heading,
    organisation_short,
    organisation_title,
)
from storage.aging import mostly_gone
from storage.models import Confidence
from storage.queries import EventFilter, When
from storage.rotation import OrganisationChairs, ProjectedChair, TermEnd
from storage.views import (
    ChairView,
    ChatView,
    OrganisationCard,
    OrganisationRef,
)

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
    if chair.confidence is Confidence.LOW:
        line += " — " + esc(tr.gettext("unconfirmed (low confidence)"))
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
    return f"<i>{esc(projection_text(projected, tr))}</i>"


def projection_text(projected: ProjectedChair, tr: Translator) -> str:
    """Who the rotation rule expects, always labelled as a projection (plain text)."""
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
    return text


def handover_caveat(group: OrganisationChairs, now: dt.datetime, tr: Translator) -> str | None:
    """When the summit due to hand the chair on is undated and may already have taken
    place, say so under the chair (HTML); else None."""
    summit = group.handover
    if summit is None or not mostly_gone(summit, now):
        return None
    _ = tr.gettext
    text = _(
        "The summit due to hand the chair on ({summit}, {dates}) may already have taken "
        "place; what happened there is not recorded.",
        summit=event_title(summit, tr),
        dates=format_dates(summit.start, summit.end, tr),
    )
    return f"<i>{esc(text)}</i>"


def chair_standing_lines(
    group: OrganisationChairs, today: dt.date, tr: Translator, now: dt.datetime | None = None
) -> list[str]:
    """The recorded chairs of one organisation, then an unsucceeded end and projections;
    with ``now``, a caveat when the handover summit may already be past."""
    lines = [f"  • {chair_line(chair, tr, sourced=True)}" for chair in group.chairs]
    caveat = handover_caveat(group, now, tr) if now is not None else None
    if caveat:
        lines.append(f"      {caveat}")
    if group.ended is not None:
        lines.append(f"  • {term_end_line(group.ended, today, tr)}")
    lines.extend(f"  • {projection_line(projected, tr)}" for projected in group.projected)
    return lines


def chairs_on(
    day: dt.date,
    chairs: Sequence[OrganisationChairs],
    today: dt.date,
    tr: Translator,
    now: dt.datetime | None = None,
    *,
    app_button: InlineKeyboardButton | None = None,
) -> Reply:
    """/chairs [DAY]; with ``now``, a day from today on says when a handover summit may
    already be past."""
    _ = tr.gettext
    heading = _("Who chairs what on {date}", date=format_day(day, tr))
    return _chairs_reply(heading, chairs, today, tr, now if day >= today else None, app_button)


def chairs_during(
    label: str,
    last: dt.date,
    chairs: Sequence[OrganisationChairs],
    today: dt.date,
    tr: Translator,
    now: dt.datetime | None = None,
    *,
    app_button: InlineKeyboardButton | None = None,
) -> Reply:
    """/chairs 2024 (or a month): everyone in the chair during the period that ends ``last``."""
    _ = tr.gettext
    if last < today:
        heading = _("Who chaired what in {period}", period=label)
    else:
        heading = _("Who chairs what in {period}", period=label)
    return _chairs_reply(heading, chairs, today, tr, now if last >= today else None, app_button)


def _chairs_reply(
    heading: str,
    chairs: Sequence[OrganisationChairs],
    today: dt.date,
    tr: Translator,
    now: dt.datetime | None,
    app_button: InlineKeyboardButton | None = None,
) -> Reply:
    _ = tr.gettext
    lines = [f"<b>{esc(heading)}</b>"]
    if not chairs:
        lines.append(esc(_("No chairmanships are known for that time.")))
    for group in chairs:
        org = group.organisation
        lines.append("")
        lines.append(organisation_heading(org, tr))
        lines.extend(chair_standing_lines(group, today, tr, now))
    buttons = [
        InlineKeyboardButton(
            organisation_short(group.organisation, tr),
            callback_data=callbacks.organisation(group.organisation.key),
        )
        for group in chairs
    ]
    rows = [buttons[i : i + 4] for i in range(0, len(buttons), 4)]
    if app_button is not None:
        rows.append([app_button])
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
        caveat = handover_caveat(standing_today, now, tr) if standing_today else None
        if caveat:
            lines.append(f"      {caveat}")
    elif standing_today is not None and standing_today.ended is not None:
        lines.append(
            _(
                "<b>Chair now:</b> {chair}",
                chair=term_end_line(
                    standing_today.ended, now.astimezone(ZoneInfo(chat.timezone)).date(), tr
                ),
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
