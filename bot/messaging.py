"""Sending rendered replies: split under Telegram's limit, buttons on the last part."""

from __future__ import annotations

from telegram import Message, Update

from bot.context import BotContext
from bot.render import Reply, split_message


async def send_reply(context: BotContext, chat_id: int, reply: Reply) -> Message:
    """Send ``reply`` to a chat; returns the last message sent."""
    parts = split_message(reply.text)
    message: Message | None = None
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        message = await context.bot.send_message(
            chat_id, part, reply_markup=reply.keyboard if last else None
        )
    assert message is not None
    return message


async def answer(update: Update, context: BotContext, reply: Reply) -> Message | None:
    """Reply in the chat the update came from (in its forum topic, if any)."""
    chat = update.effective_chat
    if chat is None:
        return None
    message = update.effective_message
    if message is not None and message.is_topic_message and message.message_thread_id:
        parts = split_message(reply.text)
        sent: Message | None = None
        for index, part in enumerate(parts):
            sent = await message.reply_html(
                part,
                reply_markup=reply.keyboard if index == len(parts) - 1 else None,
                do_quote=False,
            )
        return sent
    return await send_reply(context, chat.id, reply)
