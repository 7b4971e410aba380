"""Operator commands: /addevent (a dialogue), /editevent, /postpone, /cancel, /setstatus,
data files sent as documents, and /stats.

Operators are the user ids in ``OPERATOR_IDS``; anyone else is refused politely and
nothing changes. These commands work in a private chat with the bot. A change is first
shown (the would-be card, or old → new) under Save and Cancel buttons; the change itself
waits in the database (``storage.dialogues``) under a random one-time token, so a button
carries only ``op:<token>:ok|no``, and a forged or stale one finds nothing. Saving goes
through ``storage.operations``, which writes as an import does: the same checks, the change
log (who and when), re-planned reminders and notices to followers.

The /addevent answers so far are kept in the database too, not in one process's memory:
several bot processes may serve one database, and the next answer may reach any of them.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.constants import ChatType as TelegramChatType
from telegram.ext import ApplicationHandlerStop, CommandHandler, MessageHandler, filters

from bot.context import BotApplication, BotContext
from bot.handlers import channels
from bot.permissions import is_operator
from bot.presentation import callbacks, render
from bot.presentation.i18n import Translator
from bot.presentation.messaging import answer, edit
from bot.presentation.text import Reply, bold, esc
from storage.datafile import (
    EVENT_KINDS,
    MAX_FILE_BYTES,
    SECTIONS,
    ChairmanshipRow,
    DatasetError,
    EventRow,
    OrganisationRow,
)
from storage.dataset import ImportReport
from storage.dates import InvalidDate, PartialDate, Precision, Span
from storage.dialogues import (
    DialogueKind,
    DialogueState,
    add_pending_operation,
    advance_dialogue,
    claim_pending_operation,
    current_dialogue,
    end_dialogue,
    start_dialogue,
)
from storage.models import ChatType, EventStatus, SubscriptionScope
from storage.operations import (
    MAX_NOTE,
    MAX_SOURCE,
    MAX_TITLE,
    EventConflict,
    FactConflict,
    OperatorStats,
    add_event,
    cancelled,
    changed,
    check_event,
    find_place,
    free_event_id,
    import_document,
    load_event_row,
    operator_stats,
    place_suggestions,
    postponed,
    preview,
    proposed_event_id,
    save_event,
    save_fact,
    with_place,
)
from storage.search import normalise
from storage.timezones import city_suggestions, resolve_timezone
from storage.views import EventView, PlaceView

log = logging.getLogger(__name__)

OPERATION_TTL = dt.timedelta(minutes=15)
DIALOGUE_TIMEOUT = dt.timedelta(minutes=30)
MAX_PENDING = 20
MAX_PROBLEMS_SHOWN = 200
MAX_KEYS_SHOWN = 20
EDITABLE_FIELDS = ("title", "start", "end", "place", "status", "note", "source")
_DATE_SEPARATORS = re.compile(r"\s+|\s*[–—]\s*|\.\.")


class Question(enum.StrEnum):
    """The /addevent questions; the dialogue's step is the one to answer next."""

    ORGANISATION = "organisation"
    KIND = "kind"
    TITLE = "title"
    PLACE = "place"
    COUNTRY = "country"
    DATES = "dates"
    ZONE = "zone"
    STATUS = "status"
    SOURCE = "source"
    DONE = "done"  # not asked: the answers are complete, show the preview


class _Invalid(ValueError):
    """Input to correct; ``text`` (HTML) says what is wrong."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass
class Draft:
    """The answers of an /addevent dialogue so far."""

    organisation: str | None = None  # an organisation's key
    kind: str = "summit"
    title: str = ""
    place: str | None = None  # a known place's key
    country: str | None = None
    start: PartialDate | None = None
    end: PartialDate | None = None
    timezone: str | None = None
    status: EventStatus = EventStatus.PLANNED
    sources: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """As stored with the dialogue (dates as they are written in data files)."""
        return {
            **asdict(self),
            "start": self.start.literal if self.start else None,
            "end": self.end.literal if self.end else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Draft:
        start, end = data.get("start"), data.get("end")
        return cls(
            **{
                **data,
                "start": PartialDate.parse(start) if start else None,
                "end": PartialDate.parse(end) if end else None,
                "status": EventStatus(data.get("status", EventStatus.PLANNED)),
            }
        )


# What a pending operation writes: an event, a chairmanship or an organisation, each as
# a data file writes it (and saved as an import writes it).
Row = EventRow | ChairmanshipRow | OrganisationRow
_SECTIONS: dict[str, type[Row]] = {
    "events": EventRow,
    "chairmanships": ChairmanshipRow,
    "organisations": OrganisationRow,
}
_DATE_FIELDS = ("start", "end", "founded")


def _row_to_json(row: Row) -> dict[str, Any]:
    """A row as stored with a pending operation; its model's ``model_validate`` reads it
    back equal (dates as they are written in data files, a rotation rule as stored)."""
    data = row.model_dump(mode="json")
    for name in _DATE_FIELDS:
        if name in data:
            value = getattr(row, name)
            data[name] = value.literal if value is not None else None
    if isinstance(row, OrganisationRow):
        data["rotation_rule"] = row.rotation_rule.to_json() if row.rotation_rule else None
    return data


def _section(row: Row) -> str:
    return next(name for name, model in _SECTIONS.items() if isinstance(row, model))


@dataclass(frozen=True)
class PendingOperation:
    """A change shown to an operator, waiting for Save or Cancel."""

    row: Row
    before: Row | None  # the row as shown; None for a new event or chairmanship
    preview: str  # the preview's HTML, kept to mark it saved or cancelled

    def to_json(self) -> dict[str, Any]:
        before = _row_to_json(self.before) if self.before else None
        return {
            "section": _section(self.row),
            "row": _row_to_json(self.row),
            "before": before,
            "preview": self.preview,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingOperation:
        # Operations stored before chairs and organisations could wait are events.
        model = _SECTIONS[data.get("section", "events")]
        before = data["before"]
        return cls(
            model.model_validate(data["row"]),
            None if before is None else model.model_validate(before),
            data["preview"],
        )


# --- who may ----------------------------------------------------------------------------


async def refuse(update: Update, context: BotContext, what: str) -> None:
    user = update.effective_user
    log.info("refused %s from user %s (not an operator)", what, user.id if user else None)
    _ = context.tr.gettext
    text = _("Only operators can do that.")
    if update.callback_query is not None:
        await update.callback_query.answer(text, show_alert=True)
    else:
        await answer(update, context, Reply(esc(text)))


async def allowed(update: Update, context: BotContext, what: str) -> bool:
    """Whether an operator asks, in a private chat; answers everyone else."""
    if not is_operator(update, context):
        await refuse(update, context, what)
        return False
    chat = update.effective_chat
    if chat is None or chat.type != TelegramChatType.PRIVATE:
        _ = context.tr.gettext
        text = _("Operator commands work only in a private chat with me.")
        await answer(update, context, Reply(esc(text)))
        return False
    return True


# --- pending operations -----------------------------------------------------------------


async def ask_to_save(
    update: Update, context: BotContext, text: str, row: Row, before: Row | None
) -> None:
    """Show ``text`` with Save and Cancel; the change waits under a fresh token (the
    operator's oldest waiting changes go beyond ``MAX_PENDING``)."""
    chat, user = update.effective_chat, update.effective_user
    assert chat is not None and user is not None
    now = context.clock.now()
    operation = PendingOperation(row, before, text)
    async with context.services.database.transaction() as session:
        token = await add_pending_operation(
            session, user.id, chat.id, operation.to_json(), now, now + OPERATION_TTL, MAX_PENDING
        )
    _ = context.tr.gettext
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    _("✅ Save"), callback_data=callbacks.operation_answer(token, True)
                ),
                InlineKeyboardButton(
                    _("✖ Cancel"), callback_data=callbacks.operation_answer(token, False)
                ),
            ]
        ]
    )
    await answer(update, context, Reply(text, keyboard))


async def button(update: Update, context: BotContext, action: callbacks.OperationAnswer) -> None:
    """Save or Cancel under a preview (the router in ``handlers.buttons`` sends them here)."""
    query = update.callback_query
    if query is None:
        return
    _ = context.tr.gettext
    if not is_operator(update, context):
        await refuse(update, context, "an operation button")
        return
    chat = update.effective_chat
    claimed = None
    if chat is not None:
        async with context.services.database.transaction() as session:
            claimed = await claim_pending_operation(
                session, action.token, query.from_user.id, chat.id, context.clock.now()
            )
    if claimed is None:
        log.info("operation button %s from user %s: expired", action.token, query.from_user.id)
        await query.answer(_("This button has expired."), show_alert=True)
        return
    operation = PendingOperation.from_json(claimed)
    await query.answer()
    if not action.confirmed:
        done = "✖ " + esc(_("Cancelled; nothing was changed."))
        await edit(update, context, Reply(_marked(operation.preview, done)))
        return
    outcome = await _save(context, operation, query.from_user.id)
    await edit(update, context, Reply(_marked(operation.preview, outcome)))


def _marked(preview: str, outcome: str) -> str:
    """The preview with what became of it; only the outcome if both would not fit."""
    text = f"{preview}\n\n{outcome}"
    return text if len(text) <= render.MAX_MESSAGE - 200 else outcome


async def _save(context: BotContext, operation: PendingOperation, user_id: int) -> str:
    """Write the operation; what to tell the operator (HTML)."""
    _ = context.tr.gettext
    if not isinstance(operation.row, EventRow):
        return await _save_fact(context, operation, user_id)
    services = context.services
    changed_by = f"operator {user_id}"
    now = context.clock.now()
    planner = services.dispatcher.planner
    try:
        async with services.database.transaction() as session:
            if operation.before is None:
                row, report = await add_event(
                    session, operation.row, changed_by=changed_by, now=now, planner=planner
                )
            else:
                assert isinstance(operation.before, EventRow)
                row = operation.row
                report = await save_event(
                    session,
                    row,
                    before=operation.before,
                    changed_by=changed_by,
                    now=now,
                    planner=planner,
                )
    except (EventConflict, IntegrityError):  # IntegrityError: the same new id, saved twice
        return "⚠️ " + esc(
            _(
                "The event was changed or removed since this preview, so nothing was saved. "
                "Send the command again to start from the event as it is now."
            )
        )
    except DatasetError as exc:
        return _not_saved(exc, context.tr)
    log.info("user %s saved event %s: %s", user_id, row.id, report.summary())
    await services.dispatcher.poke()
    if operation.before is None:
        command = f"<code>/event {esc(row.id)}</code>"
        return "✅ " + _("Saved as {command}.", command=command)
    return "✅ " + esc(_("Saved."))


async def _save_fact(context: BotContext, operation: PendingOperation, user_id: int) -> str:
    """Write a chairmanship or an organisation; what to tell the operator (HTML)."""
    _ = context.tr.gettext
    row, before = operation.row, operation.before
    assert isinstance(row, ChairmanshipRow | OrganisationRow)
    assert before is None or isinstance(before, ChairmanshipRow | OrganisationRow)
    services = context.services
    try:
        async with services.database.transaction() as session:
            report = await save_fact(
                session,
                row,
                before=before,
                changed_by=f"operator {user_id}",
                now=context.clock.now(),
                planner=services.dispatcher.planner,
            )
    except (FactConflict, IntegrityError):  # IntegrityError: the same new row, saved twice
        return "⚠️ " + esc(
            _(
                "This was changed since the preview, so nothing was saved. "
                "Open /review again to start from the data as they are now."
            )
        )
    except DatasetError as exc:
        return _not_saved(exc, context.tr)
    log.info("user %s saved %s: %s", user_id, _section(row), report.summary())
    return "✅ " + esc(_("Saved."))


def _not_saved(exc: DatasetError, tr: Translator) -> str:
    problems = "; ".join(problem.message for problem in exc.problems)
    return "⚠️ " + tr.gettext("Nothing was saved: {problems}", problems=esc(problems))


# --- reading what operators type --------------------------------------------------------


def _arguments(update: Update, count: int) -> list[str]:
    """Up to ``count`` words after the command, the last one with the rest of the text."""
    message = update.effective_message
    text = message.text if message is not None and message.text else ""
    return text.split(None, count)[1:]


def _none_words(tr: Translator) -> set[str]:
    return {"none", "-", "—", normalise(tr.gettext("none"))}


def _is_none(text: str, tr: Translator) -> bool:
    return normalise(text) in _none_words(tr)


def _parse_date(text: str, tr: Translator) -> PartialDate:
    try:
        return PartialDate.parse(text)
    except InvalidDate as exc:
        _ = tr.gettext
        raise _Invalid(
            _(
                "“{value}” is not a date; write 2026-10-12, 2026-10, 2026 or 2026-10-12T10:00.",
                value=esc(text[:40]),
            )
        ) from exc


def _parse_dates(text: str, tr: Translator) -> tuple[PartialDate, PartialDate | None]:
    """A start and an optional end: ``2026-10-12 2026-10-14``, ``2026-10-12 – 2026-10-14``."""
    _ = tr.gettext
    words = [w for w in _DATE_SEPARATORS.split(text.strip()) if w and w not in ("-", "to")]
    if not 1 <= len(words) <= 2:
        raise _Invalid(esc(_("Send one date, or a start and an end separated by a space.")))
    start = _parse_date(words[0], tr)
    end = _parse_date(words[1], tr) if len(words) == 2 else None
    _check_span(start, end, tr)
    return start, end


def _check_span(start: PartialDate, end: PartialDate | None, tr: Translator) -> None:
    try:
        Span(start, end, None).check()
    except InvalidDate as exc:
        raise _Invalid(esc(tr.gettext("The end comes before the start."))) from exc


def _parse_status(text: str, tr: Translator) -> EventStatus:
    wanted = normalise(text)
    for status in EventStatus:
        if wanted in (status.value, normalise(render.status_label(status, tr))):
            return status
    _ = tr.gettext
    names = ", ".join(status.value for status in EventStatus)
    raise _Invalid(esc(_("Choose a status: {statuses}.", statuses=names)))


def _parse_kind(text: str, tr: Translator) -> str:
    wanted = normalise(text)
    for kind in EVENT_KINDS:
        if wanted in (kind, kind.replace("_", " "), normalise(render.kind_label(kind, tr))):
            return kind
    _ = tr.gettext
    raise _Invalid(esc(_("Choose a kind: {kinds}.", kinds=", ".join(EVENT_KINDS))))


def _parse_text(text: str, limit: int, tr: Translator, *, one_line: bool = True) -> str:
    """Text of 1 to ``limit`` characters; titles and sources on one line."""
    text = " ".join(text.split()) if one_line else text.strip()
    if not 1 <= len(text) <= limit:
        _ = tr.gettext
        raise _Invalid(
            esc(
                _(
                    "Send 1 to {limit} characters; this has {count}.",
                    limit=limit,
                    count=len(text),
                )
            )
        )
    return text


def _parse_country(text: str, tr: Translator) -> str:
    code = text.strip().upper()
    english = Locale("en").territories
    if len(code) == 2 and code.isalpha() and code in english:
        return code
    wanted = normalise(text)
    for names in (tr.locale.territories, english):
        for candidate, name in names.items():
            if len(candidate) == 2 and candidate.isalpha() and normalise(str(name)) == wanted:
                return str(candidate)
    _ = tr.gettext
    raise _Invalid(
        esc(_("“{value}” is not a country I know; send an ISO code such as KZ.", value=text[:40]))
    )


async def _parse_place(context: BotContext, text: str) -> PlaceView | None:
    """A known place by key or name; None for "none"."""
    tr = context.tr
    if _is_none(text, tr):
        return None
    async with context.services.database.sessions() as session:
        place = await find_place(session, text)
        if place is not None:
            return place
        suggestions = await place_suggestions(session, text, tr.language)
    _ = tr.gettext
    message = _("I don't know the city “{name}”.", name=esc(text[:100]))
    if suggestions:
        names = ", ".join(f"<b>{esc(name)}</b>" for name in suggestions)
        message += "\n" + _("Did you mean: {names}?", names=names)
    message += "\n" + esc(_("A new city comes with a data file (its places section)."))
    raise _Invalid(message)


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


# --- /addevent --------------------------------------------------------------------------


def _keyboard(options: Sequence[str], columns: int = 3) -> ReplyKeyboardMarkup:
    buttons = [KeyboardButton(option) for option in options]
    rows = [buttons[i : i + columns] for i in range(0, len(buttons), columns)]
    return ReplyKeyboardMarkup(rows, resize_keyboard=True, one_time_keyboard=True)


async def _prompt(
    update: Update, context: BotContext, state: Question, draft: Draft, error: str | None = None
) -> None:
    """Ask the question of ``state`` (after what was wrong with the last answer)."""
    tr = context.tr
    _ = tr.gettext
    none = _("none")
    options: list[str] = []
    if state == Question.ORGANISATION:
        text = _(
            "Which organisation holds it? Send its key or name (sco, ШОС), or “{none}”.",
            none=none,
        )
        orgs = await context.catalogue.organisations()
        options = [render.organisation_short(org, tr) for org in orgs] + [none]
    elif state == Question.KIND:
        text = _("What kind of event is it?")
        options = [render.kind_label(kind, tr) for kind in EVENT_KINDS]
    elif state == Question.TITLE:
        text = _("Its title in English (up to {limit} characters)?", limit=MAX_TITLE)
    elif state == Question.PLACE:
        text = _(
            "In which city? Send a city I know (Astana, Baku) or its key, or “{none}” "
            "when there is no city (online, or not known yet).",
            none=none,
        )
        options = [none]
    elif state == Question.COUNTRY:
        text = _("Which country? Send its ISO code (KZ) or its name, or “{none}”.", none=none)
        options = [none]
    elif state == Question.DATES:
        text = _(
            "When? Send the start, and the end after a space if it lasts longer: "
            "2026-10-12 2026-10-14. A month (2026-10), a year (2026) or a time of day "
            "at the venue (2026-10-12T10:00) work too."
        )
    elif state == Question.ZONE:
        if draft.start is not None and draft.start.precision is Precision.TIME:
            text = _("Which time zone is the venue in? Send a zone (Asia/Almaty) or a city.")
        else:
            text = _(
                "Which time zone is the venue in? Send a zone (Asia/Almaty) or a city, or "
                "“{none}” for a date that is the same day everywhere.",
                none=none,
            )
            options = [none]
    elif state == Question.STATUS:
        text = _("What is its status?")
        options = [render.status_label(status, tr) for status in EventStatus]
    else:  # Question.SOURCE
        text = _(
            "Where is this from? Send a source (a link or a short reference, up to "
            "{limit} characters), or “{none}”.",
            limit=MAX_SOURCE,
            none=none,
        )
        options = [none]
    body = esc(text)
    if error:
        body = f"{error}\n\n{body}"
    keyboard = _keyboard(options) if options else ReplyKeyboardRemove()
    await answer(update, context, Reply(body, keyboard))


async def addevent(update: Update, context: BotContext) -> None:
    """/addevent: start the dialogue that adds an event (again, if one was under way)."""
    if not await allowed(update, context, "/addevent"):
        return
    chat, user = update.effective_chat, update.effective_user
    assert chat is not None and user is not None
    draft, now = Draft(), context.clock.now()
    async with context.services.database.transaction() as session:
        await start_dialogue(
            session,
            user.id,
            chat.id,
            DialogueKind.ADD_EVENT,
            Question.ORGANISATION,
            draft.to_json(),
            now + DIALOGUE_TIMEOUT,
            now,
        )
    _ = context.tr.gettext
    intro = "➕ " + bold(_("New event")) + "\n" + esc(_("Answer a few questions; /cancel stops."))
    await answer(update, context, Reply(intro))
    await _prompt(update, context, Question.ORGANISATION, draft)


async def _organisation_step(context: BotContext, draft: Draft, text: str) -> Question:
    tr = context.tr
    if _is_none(text, tr):
        draft.organisation = None
        return Question.KIND
    org = await context.catalogue.find_organisation(text)
    if org is None:
        _ = tr.gettext
        message = _("I don't know the organisation “{name}”.", name=esc(text[:100]))
        suggestions = await context.catalogue.suggestions(text, "organisation")
        if suggestions:
            names = ", ".join(render.suggestion_label(s, tr) for s in suggestions)
            message += "\n" + _("Did you mean: {names}?", names=names)
        raise _Invalid(message)
    draft.organisation = org.key
    return Question.KIND


async def _kind_step(context: BotContext, draft: Draft, text: str) -> Question:
    draft.kind = _parse_kind(text, context.tr)
    return Question.TITLE


async def _title_step(context: BotContext, draft: Draft, text: str) -> Question:
    draft.title = _parse_text(text, MAX_TITLE, context.tr)
    return Question.PLACE


async def _place_step(context: BotContext, draft: Draft, text: str) -> Question:
    place = await _parse_place(context, text)
    if place is None:
        draft.place = None
        return Question.COUNTRY
    draft.place, draft.country, draft.timezone = place.key, place.country, place.timezone
    return Question.DATES


async def _country_step(context: BotContext, draft: Draft, text: str) -> Question:
    draft.country = None if _is_none(text, context.tr) else _parse_country(text, context.tr)
    return Question.DATES


async def _dates_step(context: BotContext, draft: Draft, text: str) -> Question:
    draft.start, draft.end = _parse_dates(text, context.tr)
    return Question.ZONE if draft.place is None else Question.STATUS


async def _zone_step(context: BotContext, draft: Draft, text: str) -> Question:
    tr = context.tr
    _ = tr.gettext
    timed = draft.start is not None and draft.start.precision is Precision.TIME
    if _is_none(text, tr):
        if timed:
            raise _Invalid(esc(_("An event with a time of day needs a time zone.")))
        draft.timezone = None
        return Question.STATUS
    choice = resolve_timezone(text, context.clock.now())
    if choice is None:
        suggestions = city_suggestions(text, tr.language)
        raise _Invalid(render.timezone_unknown(text, suggestions, tr).text)
    draft.timezone = choice.zone
    return Question.STATUS


async def _status_step(context: BotContext, draft: Draft, text: str) -> Question:
    draft.status = _parse_status(text, context.tr)
    return Question.SOURCE


async def _source_step(context: BotContext, draft: Draft, text: str) -> Question:
    tr = context.tr
    draft.sources = [] if _is_none(text, tr) else [_parse_text(text, MAX_SOURCE, tr)]
    return Question.DONE


Step = Callable[[BotContext, Draft, str], Awaitable[Question]]
_STEPS: dict[Question, Step] = {
    Question.ORGANISATION: _organisation_step,
    Question.KIND: _kind_step,
    Question.TITLE: _title_step,
    Question.PLACE: _place_step,
    Question.COUNTRY: _country_step,
    Question.DATES: _dates_step,
    Question.ZONE: _zone_step,
    Question.STATUS: _status_step,
    Question.SOURCE: _source_step,
}
_ANSWERS = filters.TEXT & ~filters.COMMAND


async def _answer_question(update: Update, context: BotContext, dialogue: DialogueState) -> None:
    """An answer to the question the dialogue is at: check it, then ask the next (or this
    one again, after what was wrong)."""
    message, chat, user = update.effective_message, update.effective_chat, update.effective_user
    assert message is not None and chat is not None and user is not None
    asked, error = Question(dialogue.step), None
    draft = Draft.from_json(dialogue.data)
    try:
        following = await _STEPS[asked](context, draft, (message.text or "").strip())
    except _Invalid as exc:
        following, error = asked, exc.text
        draft = Draft.from_json(dialogue.data)  # as it was before the wrong answer
    now = context.clock.now()
    async with context.services.database.transaction() as session:
        if following is Question.DONE:
            ended = await end_dialogue(session, user.id, chat.id, now, DialogueKind.ADD_EVENT)
            going_on = ended is not None
        else:
            going_on = await advance_dialogue(
                session,
                user.id,
                chat.id,
                DialogueKind.ADD_EVENT,
                following,
                draft.to_json(),
                now + DIALOGUE_TIMEOUT,
            )
    if not going_on:  # left or started afresh meanwhile, through another process
        return
    if following is Question.DONE:
        await _show_new_event(update, context, draft)
    else:
        await _prompt(update, context, following, draft, error=error)


async def _show_new_event(update: Update, context: BotContext, draft: Draft) -> None:
    """The would-be card under Save and Cancel (the dialogue has ended)."""
    _ = context.tr.gettext
    assert draft.start is not None
    values = {
        "id": proposed_event_id(
            draft.organisation, draft.start, draft.place, draft.title, draft.kind
        ),
        "organisation": draft.organisation,
        "kind": draft.kind,
        "title": {"en": draft.title},
        "place": draft.place,
        "country": None if draft.place else draft.country,
        "timezone": None if draft.place else draft.timezone,
        "start": draft.start,
        "end": draft.end,
        "status": draft.status,
        "sources": draft.sources,
    }
    try:
        row = EventRow.model_validate(values)
    except ValidationError as exc:
        problems = [str(error["msg"]) for error in exc.errors()]
        await _cannot_save(update, context, problems)
        return
    async with context.services.database.sessions() as session:
        row = row.model_copy(update={"id": await free_event_id(session, row.id)})
        problems = await check_event(session, row)
        view = await preview(session, row, context.clock.now())
    if problems:
        await _cannot_save(update, context, problems)
        return
    heading = "🆕 " + bold(_("New event: check it, then save it"))
    await ask_to_save(update, context, f"{heading}\n\n{_card_text(view, context)}", row, None)


async def _cannot_save(update: Update, context: BotContext, problems: Sequence[str]) -> None:
    _ = context.tr.gettext
    text = _("This cannot be saved: {problems}", problems=esc("; ".join(problems)))
    await answer(update, context, Reply("⚠️ " + text, ReplyKeyboardRemove()))


async def cancel_dialogue(update: Update, context: BotContext) -> None:
    """/cancel inside the /addevent dialogue: leave it, nothing saved."""
    chat, user = update.effective_chat, update.effective_user
    assert chat is not None and user is not None
    async with context.services.database.transaction() as session:
        await end_dialogue(session, user.id, chat.id, context.clock.now(), DialogueKind.ADD_EVENT)
    _ = context.tr.gettext
    text = esc(_("The new event is discarded; nothing was saved."))
    await answer(update, context, Reply(text, ReplyKeyboardRemove()))


_CANCEL = CommandHandler("cancel", cancel_dialogue)


async def _continue_addevent(update: Update, context: BotContext, dialogue: DialogueState) -> bool:
    """/cancel, or the answer to the question asked; False for anything else (another
    command, a sticker), which is handled as usual while the dialogue waits."""
    if _CANCEL.check_update(update):
        await cancel_dialogue(update, context)
        return True
    if not _ANSWERS.check_update(update):
        return False
    await _answer_question(update, context, dialogue)
    return True


async def continue_dialogue(update: Update, context: BotContext) -> None:
    """A person's new message in a private chat while they are in a dialogue: the answer to
    its question, whichever process asked it (the dialogue is kept in the database). An
    operator's /addevent is continued here, linking a channel in ``handlers.channels``; an
    answer goes no further (it is not taken for a search, or /cancel for the command).

    Registered by ``bot.app`` in a group of its own, after the chat is remembered.
    """
    message, chat, user = update.message, update.effective_chat, update.effective_user
    if message is None or chat is None or user is None or chat.type != TelegramChatType.PRIVATE:
        return  # an edit is no answer; dialogues are private
    if message.text is None and message.forward_origin is None:
        return
    if message.text and message.text.startswith("/") and not message.forward_origin:
        command = message.text.split()[0][1:].split("@")[0].casefold()
        if command != "cancel":
            return  # no dialogue takes another command as its answer: no lookup needed
    async with context.services.database.sessions() as session:
        dialogue = await current_dialogue(session, user.id, chat.id, context.clock.now())
    if dialogue is None:
        return
    if dialogue.kind is DialogueKind.ADD_EVENT:
        answered = await _continue_addevent(update, context, dialogue)
    else:
        answered = await channels.continue_dialogue(update, context, dialogue)
    if answered:
        raise ApplicationHandlerStop


# --- /editevent, /postpone, /cancel, /setstatus -----------------------------------------


async def _current(update: Update, context: BotContext, key: str) -> EventRow | None:
    """The event ``key`` as a row; answers "not found" (with suggestions) when there is none."""
    async with context.services.database.sessions() as session:
        row = await load_event_row(session, key.casefold())
    if row is None:
        suggestions = await context.catalogue.suggestions(key, "event")
        await answer(update, context, render.not_found(key, suggestions, context.tr))
    return row


async def show_change(update: Update, context: BotContext, old: EventRow, new: EventRow) -> None:
    """Old → new and the card as it would be, under Save and Cancel."""
    _ = context.tr.gettext
    if new == old:
        await answer(update, context, Reply(esc(_("That is already so; nothing to change."))))
        return
    now = context.clock.now()
    async with context.services.database.sessions() as session:
        problems = await check_event(session, new)
        old_view = await preview(session, old, now)
        new_view = await preview(session, new, now) if not problems else old_view
    if problems:
        await _cannot_save(update, context, problems)
        return
    lines = ["✏️ " + bold(_("Check the change, then save it"))]
    lines.append(f"{esc(render.event_title(old_view, context.tr))} · <code>{esc(old.id)}</code>")
    lines += _change_lines(old, new, old_view, new_view, context.tr)
    lines += ["", _card_text(new_view, context)]
    await ask_to_save(update, context, "\n".join(lines), new, old)


async def _propose(
    update: Update, context: BotContext, old: EventRow, make: Callable[[], Awaitable[EventRow]]
) -> None:
    """Build the changed row (answering what is wrong with the input), then show it."""
    try:
        new = await make()
    except _Invalid as exc:
        await answer(update, context, Reply(exc.text))
        return
    except ValidationError as exc:
        await _cannot_save(update, context, [str(error["msg"]) for error in exc.errors()])
        return
    await show_change(update, context, old, new)


async def _edited(context: BotContext, old: EventRow, name: str, value: str) -> EventRow:
    """``old`` with the field ``name`` set from what the operator typed."""
    tr = context.tr
    match name:
        case "title":
            title = _parse_text(value, MAX_TITLE, tr)
            return changed(old, title={**old.title, "en": title})
        case "start":
            start = _parse_date(value, tr)
            return changed(old, start=start)
        case "end":
            return changed(old, end=None if _is_none(value, tr) else _parse_date(value, tr))
        case "place":
            place = await _parse_place(context, value)
            async with context.services.database.sessions() as session:
                old_place = await find_place(session, old.place) if old.place else None
            return with_place(old, place, old_place)
        case "status":
            return changed(old, status=_parse_status(value, tr))
        case "note":
            if _is_none(value, tr):
                return changed(old, note={})
            return changed(old, note={"en": _parse_text(value, MAX_NOTE, tr, one_line=False)})
        case _:  # source: several separated by ";", as cards show them
            if _is_none(value, tr):
                return changed(old, sources=[])
            text = _parse_text(value, MAX_SOURCE, tr)
            return changed(old, sources=[s.strip() for s in text.split(";") if s.strip()])


async def editevent(update: Update, context: BotContext) -> None:
    """/editevent ID FIELD VALUE"""
    if not await allowed(update, context, "/editevent"):
        return
    _ = context.tr.gettext
    words = _arguments(update, 3)
    name = words[1].casefold() if len(words) > 1 else ""
    if len(words) < 3 or name not in EDITABLE_FIELDS:
        text = _(
            "Write /editevent EVENT_ID FIELD VALUE. Fields: {fields}.",
            fields=", ".join(EDITABLE_FIELDS),
        )
        await answer(update, context, Reply(esc(text)))
        return
    old = await _current(update, context, words[0])
    if old is not None:
        await _propose(update, context, old, lambda: _edited(context, old, name, words[2]))


async def postpone(update: Update, context: BotContext) -> None:
    """/postpone ID NEW_START [NEW_END]"""
    if not await allowed(update, context, "/postpone"):
        return
    _ = context.tr.gettext
    words = _arguments(update, 3)
    if len(words) < 2:
        text = _(
            "Write /postpone EVENT_ID NEW_START [NEW_END], e.g. /postpone sco-2026-bishkek 2026-09."
        )
        await answer(update, context, Reply(esc(text)))
        return
    old = await _current(update, context, words[0])
    if old is None:
        return

    async def make() -> EventRow:
        start = _parse_date(words[1], context.tr)
        end = _parse_date(words[2], context.tr) if len(words) > 2 else None
        if end is not None:
            _check_span(start, end, context.tr)
        return postponed(old, start, end)

    await _propose(update, context, old, make)


async def cancel_event(update: Update, context: BotContext) -> None:
    """/cancel ID [reason] (outside the /addevent dialogue, where /cancel leaves it)."""
    _ = context.tr.gettext
    words = _arguments(update, 2)
    if not words:
        text = esc(_("There is nothing to cancel."))
        if is_operator(update, context):
            text += "\n" + esc(_("To cancel an event: /cancel EVENT_ID [reason]."))
        await answer(update, context, Reply(text))
        return
    if not await allowed(update, context, "/cancel"):
        return
    old = await _current(update, context, words[0])
    if old is None:
        return
    reason = words[1] if len(words) > 1 else None

    async def make() -> EventRow:
        text = _parse_text(reason, MAX_NOTE, context.tr, one_line=False) if reason else None
        return cancelled(old, text)

    await _propose(update, context, old, make)


async def setstatus(update: Update, context: BotContext) -> None:
    """/setstatus ID STATUS"""
    if not await allowed(update, context, "/setstatus"):
        return
    _ = context.tr.gettext
    words = _arguments(update, 2)
    if len(words) < 2:
        statuses = ", ".join(status.value for status in EventStatus)
        text = _("Write /setstatus EVENT_ID STATUS. Statuses: {statuses}.", statuses=statuses)
        await answer(update, context, Reply(esc(text)))
        return
    old = await _current(update, context, words[0])
    if old is not None:

        async def make() -> EventRow:
            return changed(old, status=_parse_status(words[1], context.tr))

        await _propose(update, context, old, make)


# --- data files -------------------------------------------------------------------------


async def data_file(update: Update, context: BotContext) -> None:
    """A YAML data file sent by an operator: imported like ``summitbot import``."""
    message = update.effective_message
    document = message.document if message is not None else None
    if document is None:
        return
    _ = context.tr.gettext
    if not is_operator(update, context):
        user = update.effective_user
        log.info("refused a data file from user %s (not an operator)", user.id if user else None)
        await answer(update, context, Reply(esc(_("Only operators can import data files."))))
        return
    name = document.file_name or "data.yaml"
    if not name.casefold().endswith((".yaml", ".yml")):
        text = _("Send a data file in YAML (.yaml or .yml).")
        await answer(update, context, Reply(esc(text)))
        return
    too_large = _(
        "The file is larger than {size} MB; nothing was imported.",
        size=MAX_FILE_BYTES // (1024 * 1024),
    )
    if document.file_size is not None and document.file_size > MAX_FILE_BYTES:
        await answer(update, context, Reply(esc(too_large)))
        return
    data = await (await context.bot.get_file(document.file_id)).download_as_bytearray()
    if len(data) > MAX_FILE_BYTES:
        await answer(update, context, Reply(esc(too_large)))
        return
    try:
        text = bytes(data).decode("utf-8-sig")  # editors on Windows write a BOM
    except UnicodeDecodeError:
        await answer(
            update, context, Reply(esc(_("The file is not UTF-8 text; nothing was imported.")))
        )
        return
    user_id = update.effective_user.id if update.effective_user else 0
    services = context.services
    try:
        async with services.database.transaction() as session:
            report = await import_document(
                session,
                text,
                name,
                changed_by=f"operator {user_id}",
                now=context.clock.now(),
                planner=services.dispatcher.planner,
            )
    except DatasetError as exc:
        log.info("data file %s from user %s refused: %d problems", name, user_id, len(exc.problems))
        await answer(update, context, Reply(_problems_text(exc.problems, context.tr)))
        return
    log.info("user %s imported %s: %s", user_id, name, report.summary())
    await services.dispatcher.poke()
    await answer(update, context, Reply(_import_text(name, report, context.tr)))


# --- /stats -----------------------------------------------------------------------------


async def stats(update: Update, context: BotContext) -> None:
    """/stats: chats, subscriptions, recent deliveries and the next ones due."""
    if not await allowed(update, context, "/stats"):
        return
    now = context.clock.now()
    async with context.services.database.sessions() as session:
        found = await operator_stats(session, now, catalogue=context.catalogue)
    if found.review_queue is not None:
        context.services.metrics.review_queue.set(found.review_queue)
    text = _stats_text(found, context.chat_view.timezone, now, context.tr)
    await answer(update, context, Reply(text))


# --- registration -----------------------------------------------------------------------


def register(application: BotApplication) -> None:
    """Add the operator handlers to ``application`` (group 0, before plain-text search).

    Answers within the /addevent dialogue, and /cancel there, are taken earlier, by
    :func:`continue_dialogue`; otherwise /cancel is the command that cancels an event.
    """
    commands: list[tuple[str, Callable[[Update, BotContext], Coroutine[Any, Any, None]]]] = [
        ("addevent", addevent),
        ("editevent", editevent),
        ("postpone", postpone),
        ("cancel", cancel_event),
        ("setstatus", setstatus),
        ("stats", stats),
    ]
    for name, callback in commands:
        application.add_handler(CommandHandler(name, callback))
    # Forwarded posts are how channels are linked (handlers.channels), not data files.
    documents = filters.ChatType.PRIVATE & filters.Document.ALL & ~filters.FORWARDED
    application.add_handler(MessageHandler(documents, data_file))
