"""Keeps chats' state true: the bot added, removed, blocked, unblocked; groups upgraded."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatMemberStatus

from bot.context import BotContext

log = logging.getLogger(__name__)

GONE = {ChatMemberStatus.LEFT, ChatMemberStatus.BANNED}


async def my_chat_member(update: Update, context: BotContext) -> None:
    """The bot's own membership changed: blocked in private, removed from a group, …"""
    change = update.my_chat_member
    if change is None:
        return
    status = change.new_chat_member.status
    active = status not in GONE
    reason = f"bot is {status} in this chat"
    await context.services.chats.set_active(change.chat.id, active, reason, context.clock.now())
    if active:
        await context.services.dispatcher.poke()
    log.info("chat %s: bot is now %s", change.chat.id, status)


async def migrated(update: Update, context: BotContext) -> None:
    """A group became a supergroup: its subscriptions move to the new chat id."""
    message = update.effective_message
    if message is None or message.migrate_to_chat_id is None:
        return
    await context.services.chats.migrate(message.chat.id, message.migrate_to_chat_id)
    log.info("chat %s migrated to %s", message.chat.id, message.migrate_to_chat_id)
