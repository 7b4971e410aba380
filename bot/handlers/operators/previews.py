"""What operators are shown: a change old → new, the card as it would be, an import's
summary or its problems (file:line), and /stats.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from bot.context import BotContext
from bot.presentation import render
from bot.presentation.i18n import Translator
from bot.presentation.text import bold, esc
from storage.datafile import (
    SECTIONS,
    EventRow,
)
from storage.dataset import ImportReport
from storage.models import ChatType, SubscriptionScope
from storage.operations import (
    OperatorStats,
)
from storage.views import EventView

MAX_PROBLEMS_SHOWN = 200
MAX_KEYS_SHOWN = 20


# --- rendering --------------------------------------------------------------------------


def _dates_text(row: EventRow, tr: Translator) -> str:
    return render.format_dates(row.start, row.end, tr)


def _change_lines(
    old: EventRow, new: EventRow, old_view: EventView, new_view: EventView, tr: Translator
) -> list[str]:
    """ "Dates: 1 December 2026 → 8 December 2026" for each field that changes."""
    _ = tr.gettext
    lines = []
    old_title, new_title = render.localised(old.title, "en"), render.localised(new.title, "en")
    if old_title != new_title:
        lines.append(_("Title: {old} → {new}", old=esc(old_title), new=esc(new_title)))
    if (old.start, old.end) != (new.start, new.end):
        lines.append(
            _(
                "Dates: {old} → {new}",
                old=esc(_dates_text(old, tr)),
                new=esc(_dates_text(new, tr)),
            )
        )
    if (old_view.place, old_view.country, old_view.timezone) != (
        new_view.place,
        new_view.country,
        new_view.timezone,
    ):
        lines.append(
            _(
                "Place: {old} → {new}",
                old=esc(render.place_label(old_view, tr) or "—"),
                new=esc(render.place_label(new_view, tr) or "—"),
            )
        )
    if old.status != new.status:
        lines.append(
            _(
                "Status: {old} → {new}",
                old=esc(render.status_label(old.status, tr)),
                new=esc(render.status_label(new.status, tr)),
            )
        )
    old_note = render.localised(old.note, tr.language) or "—"
    new_note = render.localised(new.note, tr.language) or "—"
    if old.note != new.note:
        lines.append(_("Note: {old} → {new}", old=esc(old_note), new=esc(new_note)))
    if old.sources != new.sources:
        lines.append(
            _(
                "Sources: {old} → {new}",
                old=esc("; ".join(old.sources) or "—"),
                new=esc("; ".join(new.sources) or "—"),
            )
        )
    if old.checked != new.checked:
        lines.append(render.checked_change(old.checked, new.checked, tr))
    return lines


def _card_text(view: EventView, context: BotContext) -> str:
    return render.event_card(
        view, context.chat_view, context.clock.now(), context.tr, follow_button=False
    ).text


def _stats_text(stats: OperatorStats, zone: str, now: dt.datetime, tr: Translator) -> str:
    _ = tr.gettext
    chat_types = {
        ChatType.PRIVATE: _("private chats"),
        ChatType.GROUP: _("groups"),
        ChatType.SUPERGROUP: _("supergroups"),
        ChatType.CHANNEL: _("channels"),
    }
    scopes = {
        SubscriptionScope.ALL: _("everything"),
        SubscriptionScope.ORGANISATION: _("an organisation"),
        SubscriptionScope.EVENT: _("one event"),
    }
    lines = ["📊 " + bold(_("Statistics")), "", bold(_("Chats (active / inactive)"))]
    for chat_type, label in chat_types.items():
        active = stats.chats.get((chat_type, True), 0)
        inactive = stats.chats.get((chat_type, False), 0)
        lines.append(f"{esc(label)}: {active} / {inactive}")
    lines += ["", bold(_("Active subscriptions, following…"))]
    for scope, label in scopes.items():
        lines.append(f"{esc(label)}: {stats.subscriptions.get(scope, 0)}")
    days = stats.window.days
    heading = tr.ngettext(
        "Deliveries in the last {count} day", "Deliveries in the last {count} days", days
    )
    counts = {status.value: count for status, count in stats.deliveries.items()}
    summary = _(
        "{sent} sent, {failed} failed, {skipped} skipped",
        sent=counts.get("sent", 0),
        failed=counts.get("failed", 0),
        skipped=counts.get("skipped", 0),
    )
    lines += ["", bold(heading), esc(summary), ""]
    lines.append(bold(_("Next due (times in {zone})", zone=render.zone_label(zone, now))))
    for due in stats.next_due:
        when = format_datetime(
            due.due_at.astimezone(ZoneInfo(zone)), "d MMM y, HH:mm", locale=tr.locale
        )
        key = f"<code>{esc(due.event_key)}</code>" if due.event_key else "—"
        lines.append(f"{esc(when)} · {due.chat_id} · {key} · {esc(due.kind.value)}")
    if not stats.next_due:
        lines.append(esc(_("Nothing is planned yet.")))
    lines.append(esc(_("Reminders are planned a few hours ahead; later ones are not listed yet.")))
    if stats.review_queue is not None:
        lines += ["", bold(_("Review queue"))]
        if stats.review_queue:
            waiting = tr.ngettext(
                "{count} item needs a person: /review",
                "{count} items need a person: /review",
                stats.review_queue,
            )
        else:
            waiting = _("Nothing needs a person.")
        lines.append(esc(waiting))
    return "\n".join(lines)


def _problems_text(problems: Sequence[object], tr: Translator) -> str:
    heading = tr.ngettext(
        "Nothing was imported: {count} problem.",
        "Nothing was imported: {count} problems.",
        len(problems),
    )
    lines = ["⚠️ " + bold(heading)]
    lines += [esc(problem) for problem in problems[:MAX_PROBLEMS_SHOWN]]
    hidden = len(problems) - MAX_PROBLEMS_SHOWN
    if hidden > 0:
        lines.append(esc(tr.ngettext("…and {count} more.", "…and {count} more.", hidden)))
    return "\n".join(lines)


def _import_text(name: str, report: ImportReport, tr: Translator) -> str:
    _ = tr.gettext
    if report.is_empty:
        text = _("Nothing changed: the database already has everything in {file}.", file=name)
        return esc(text)
    sections = {
        "places": _("Places"),
        "organisations": _("Organisations"),
        "chairmanships": _("Chairmanships"),
        "events": _("Events"),
    }
    lines = ["✅ " + bold(_("Imported {file}.", file=name))]
    for section in SECTIONS:
        added, edited = report.added[section], report.changed[section]
        unchanged = report.unchanged[section]
        if not (added or edited or unchanged):
            continue
        line = _(
            "{section}: {added} added, {changed} changed, {unchanged} unchanged",
            section=sections[section],
            added=len(added),
            changed=len(edited),
            unchanged=unchanged,
        )
        lines.append(esc(line))
        for mark, keys in (("+", added), ("✎", edited)):
            if keys:
                more = " …" if len(keys) > MAX_KEYS_SHOWN else ""
                lines.append(f"  {mark} " + esc(", ".join(keys[:MAX_KEYS_SHOWN]) + more))
    if report.event_changes:
        count = len(report.event_changes)
        lines.append(
            esc(
                tr.ngettext(
                    "Followers of {count} changed event will be told.",
                    "Followers of {count} changed events will be told.",
                    count,
                )
            )
        )
    return "\n".join(lines)
