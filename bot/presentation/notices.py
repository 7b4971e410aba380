"""What the bot sends on its own, one function per kind of delivery: reminders,
"this month" notices, change and new-event notices, digests. The dispatcher picks
the function; it does not know how any of them reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)

from bot.presentation import callbacks
from bot.presentation.dates import countdown, format_dates
from bot.presentation.events import event_card, event_line
from bot.presentation.i18n import Translator
from bot.presentation.text import Reply, bold, esc, event_title, localised, status_label
from storage.dates import PartialDate
from storage.models import EventStatus
from storage.views import (
    ChatView,
    EventView,
    PlaceView,
)

MAX_DIGEST_ITEMS = 30


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
