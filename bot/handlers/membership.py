"""Keeps chats' state true: the bot added, removed, blocked, unblocked; groups upgraded.

In a channel the bot must be an administrator allowed to post; when it loses that
(or is removed), the channel is marked inactive and whoever linked it is told.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError

from bot.context import BotContext
from bot.presentation import render
from bot.presentation.i18n import translator
from storage.models import Chat

log = logging.getLogger(__name__)

GONE = {ChatMemberStatus.LEFT, ChatMemberStatus.BANNED}


async def my_chat_member(update: Update, context: BotContext) -> None:
    """The bot's own membership changed: blocked in private, removed from a group, …"""
    change = update.my_chat_member
    if change is None:
        return
    member = change.new_chat_member
    status = member.status
    active = status not in GONE
    if change.chat.type == ChatType.CHANNEL:
        active = status == ChatMemberStatus.ADMINISTRATOR and bool(
            getattr(member, "can_post_messages", False)
        )
    now = context.clock.now()
    services = context.services
    async with services.database.sessions() as session:
        chat = await session.get(Chat, change.chat.id)
        was_active, owner = (chat.is_active, chat.linked_by) if chat else (False, None)
    await services.chats.set_active(change.chat.id, active, f"bot is {status} here", now)
    log.info("chat %s: bot is now %s", change.chat.id, status)
    if active:
        await services.dispatcher.poke()
    elif was_active and owner is not None:
        await _tell_owner(context, owner, change.chat.title or str(change.chat.id))


async def _tell_owner(context: BotContext, owner: int, title: str) -> None:
    async with context.services.database.sessions() as session:
        owner_chat = await session.get(Chat, owner)
    tr = translator(
        owner_chat.language if owner_chat else context.services.settings.default_language
    )
    text = tr.gettext(
        "I can no longer post in {channel}. Its reminders are paused until you make me an "
        "administrator there again, with the right to post messages.",
        channel=render.esc(title),
    )
    try:
        await context.bot.send_message(owner, text)
    except TelegramError:
        log.info("could not tell user %s that channel %s was lost", owner, title)


async def migrated(update: Update, context: BotContext) -> None:
    """A group became a supergroup: its subscriptions move to the new chat id."""
    message = update.effective_message
    if message is None or message.migrate_to_chat_id is None:
        return
    await context.services.chats.migrate(
        message.chat.id, message.migrate_to_chat_id, context.clock.now()
    )
    log.info("chat %s migrated to %s", message.chat.id, message.migrate_to_chat_id)
