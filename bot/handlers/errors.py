"""The one error handler: log with the traceback, tell the user something went wrong.

A database that cannot be reached is not a bug: one warning line, and the person is
told the bot is temporarily unavailable (nothing they sent was half-done: every change
is one transaction).
"""

from __future__ import annotations

import contextlib
import logging

from telegram import Update
from telegram.error import Forbidden, TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.context import BotContext
from bot.metrics import update_type
from bot.presentation.i18n import translator
from config.languages import normalise_language
from storage.database import is_unavailable

log = logging.getLogger(__name__)


async def error_handler(update: object, context: BotContext) -> None:
    metrics = context.services.metrics
    metrics.update_errors.labels(update_type(update)).inc()
    unavailable = context.error is not None and is_unavailable(context.error)
    if unavailable:
        # Not a bug: the database is down or restarting. One line, no traceback.
        metrics.database_up.set(0)
        log.warning("database unavailable while handling an update: %r", context.error)
    else:
        log.error("error while handling an update", exc_info=context.error)
    if not isinstance(update, Update):
        return
    if isinstance(context.error, Forbidden):
        return  # the bot was blocked or removed: nobody to tell
    language: str | None = None
    with contextlib.suppress(RuntimeError):  # the failure came before the chat was known
        language = context.chat_view.language
    if language is None:
        user = update.effective_user
        language = normalise_language(
            user.language_code if user else None, context.services.settings.default_language
        )
    _ = translator(language).gettext
    text = (
        _("The bot is temporarily unavailable. Please try again in a minute.")
        if unavailable
        else _("Sorry, something went wrong. Please try again in a moment.")
    )
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(text, show_alert=True)
        elif update.inline_query is not None:
            await update.inline_query.answer([], cache_time=5)
        elif update.effective_chat is not None:
            await context.bot.send_message(update.effective_chat.id, text)
    except TelegramError:
        log.warning("could not tell update %s about the error", update.update_id)
    # Later handler groups would run on half-prepared state (e.g. no chat remembered).
    raise ApplicationHandlerStop
