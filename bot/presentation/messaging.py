"""Sending rendered replies: split under Telegram's limit, laid out for the reader's
script, buttons on the last part. Every reply to a person goes through here."""

from __future__ import annotations

import contextlib

from telegram import Message, Update
from telegram.error import BadRequest

from bot.context import BotContext
from bot.presentation.i18n import directional
from bot.presentation.text import Reply, split_message


async def send_reply(context: BotContext, chat_id: int, reply: Reply) -> Message:
    """Send ``reply`` to a chat; returns the last message sent."""
    parts = split_message(directional(reply.text, context.tr))
    message: Message | None = None
    thread_id = context.message_thread_id
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        message = await context.bot.send_message(
            chat_id,
            part,
            reply_markup=reply.keyboard if last else None,
            message_thread_id=thread_id,
        )
    assert message is not None
    return message


async def answer(update: Update, context: BotContext, reply: Reply) -> Message | None:
    """Reply in the chat the update came from (in its forum topic, if any)."""
    chat = update.effective_chat
    if chat is None:
        return None
    message = update.effective_message
    context.message_thread_id = (
        message.message_thread_id if message is not None and message.is_topic_message else None
    )
    sent = await send_reply(context, chat.id, reply)
    if context.cache_key is not None and context.cache_key[0] == chat.id:
        context.services.reply_cache.put(context.cache_key, reply)
        context.cache_key = None  # one reply per request is cached
    return sent


async def edit(update: Update, context: BotContext, reply: Reply) -> None:
    """Replace the message a button was pressed under (pages, menus, inline messages)."""
    query = update.callback_query
    if query is None:
        return
    # Pressing the same button twice gives "message is not modified": nothing to do.
    with contextlib.suppress(BadRequest):
        await query.edit_message_text(
            directional(reply.text, context.tr)[:4096], reply_markup=reply.inline_keyboard
        )
