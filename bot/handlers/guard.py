"""The first handlers every update meets: the flood limit, then the reply cache."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop

from bot.abuse import cache_key
from bot.context import BotContext
from bot.presentation.i18n import translator
from bot.presentation.messaging import answer
from config.languages import normalise_language

log = logging.getLogger(__name__)


async def flood_guard(update: Update, context: BotContext) -> None:
    """Drop updates from a user over the limit (before any database work)."""
    user = update.effective_user
    if user is None:
        return
    guard = context.services.flood_guard
    if guard.allow(user.id):
        return
    if guard.should_warn(user.id):
        log.info("user %s is over the request limit; dropping updates", user.id)
        settings = context.services.settings
        tr = translator(normalise_language(user.language_code, settings.default_language))
        text = tr.gettext("⏳ Too many requests; please wait a minute.")
        if update.callback_query is not None:
            await update.callback_query.answer(text)
        elif update.inline_query is not None:
            await update.inline_query.answer([], cache_time=5)
        elif update.effective_chat is not None and update.effective_chat.type == ChatType.PRIVATE:
            await context.bot.send_message(update.effective_chat.id, text)
    raise ApplicationHandlerStop


async def cached_reply(update: Update, context: BotContext) -> None:
    """Answer a repeated read-only request from the cache (the chat is known by now).

    The key holds the catalogue's revision and the chat's settings, both as stored in
    the database: an edit or a /lang made through any replica retires cached replies
    everywhere at once.
    """
    message = update.message
    chat = update.effective_chat
    cache = context.services.reply_cache
    if cache.ttl <= 0 or message is None or chat is None or not message.text:
        return
    if message.forward_origin:
        return
    key = cache_key(chat.id, message.text)
    if key is None:
        return
    # The revision was read with the chat (``handlers.chats``): no round trip of its own.
    revision = await context.catalogue.revision()
    key = (key[0], f"{revision!r}\x1f{context.chat_view!r}\x1f{key[1]}")
    reply = cache.get(key)
    if reply is None:
        context.cache_key = key  # ``messaging.answer`` stores the reply under it
        return
    await answer(update, context, reply)
    raise ApplicationHandlerStop
