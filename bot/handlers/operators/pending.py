"""Who may, and changes waiting for Save: a preview's change is stored under a
one-time token for 15 minutes; Save writes it through storage.operations, Cancel
drops it, and a forged or expired button changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.constants import ChatType as TelegramChatType

from bot.context import BotContext
from bot.permissions import is_operator
from bot.presentation import callbacks, render
from bot.presentation.i18n import Translator
from bot.presentation.messaging import answer, edit
from bot.presentation.text import Reply, esc
from storage.datafile import (
    ChairmanshipRow,
    DatasetError,
    EventRow,
    OrganisationRow,
)
from storage.dialogues import (
    add_pending_operation,
    claim_pending_operation,
)
from storage.operations import (
    EventConflict,
    FactConflict,
    add_event,
    save_event,
    save_fact,
)

log = logging.getLogger(__name__)

OPERATION_TTL = dt.timedelta(minutes=15)
MAX_PENDING = 20


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
