"""The operators' review queue: its pages with one-tap actions, the weekly notice,
and the previews of what an action would save.
"""

from __future__ import annotations

import datetime as dt

from babel.lists import format_list
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

from bot.presentation import callbacks
from bot.presentation.chairs import chair_line, projection_line, term_end_line
from bot.presentation.dates import format_day
from bot.presentation.events import event_line
from bot.presentation.i18n import Translator
from bot.presentation.text import (
    Reply,
    bold,
    country_name,
    esc,
    event_title,
    organisation_name,
    organisation_short,
)
from storage.review import ReviewItem, ReviewKind, ReviewQueue
from storage.views import (
    ChairView,
    ChatView,
)

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
