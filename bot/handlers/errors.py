"""The one error handler: log with the traceback, tell the user something went wrong."""

from __future__ import annotations

import contextlib
import logging

from telegram import Update
from telegram.error import Forbidden, TelegramError

from bot.context import BotContext
from bot.i18n import translator

log = logging.getLogger(__name__)


async def error_handler(update: object, context: BotContext) -> None:
    log.error("error while handling an update", exc_info=context.error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    if isinstance(context.error, Forbidden):
        return  # the bot was blocked or removed: nobody to tell
    language = context.services.settings.default_language
    with contextlib.suppress(RuntimeError):  # the failure came before the chat was known
        language = context.chat_view.language
    _ = translator(language).gettext
    try:
        await context.bot.send_message(
            update.effective_chat.id,
            _("Sorry, something went wrong. Please try again in a moment."),
        )
    except TelegramError:
        log.warning("could not tell chat %s about the error", update.effective_chat.id)
