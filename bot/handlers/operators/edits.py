"""/editevent, /postpone, /cancel and /setstatus: one line each, a preview of the
change, then Save or Cancel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from telegram import (
    Update,
)

from bot.context import BotContext
from bot.handlers.operators.dialogue import _cannot_save
from bot.handlers.operators.pending import allowed, ask_to_save
from bot.handlers.operators.previews import _card_text, _change_lines
from bot.handlers.operators.reading import (
    _arguments,
    _check_span,
    _Invalid,
    _is_none,
    _parse_date,
    _parse_place,
    _parse_status,
    _parse_text,
)
from bot.permissions import is_operator
from bot.presentation import render
from bot.presentation.messaging import answer
from bot.presentation.text import Reply, bold, esc
from storage.datafile import (
    EventRow,
)
from storage.models import EventStatus
from storage.operations import (
    MAX_NOTE,
    MAX_SOURCE,
    MAX_TITLE,
    cancelled,
    changed,
    check_event,
    find_place,
    load_event_row,
    postponed,
    preview,
    with_place,
)

EDITABLE_FIELDS = ("title", "start", "end", "place", "status", "note", "source")


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
