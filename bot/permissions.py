"""Who may change a chat's settings: anyone in a private chat, only admins in a group."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError

from bot.context import BotContext
from bot.presentation.messaging import answer
from bot.presentation.text import Reply, esc

log = logging.getLogger(__name__)

ADMIN_STATUSES = frozenset({ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR})


def is_operator(update: Update, context: BotContext) -> bool:
    """Whether the sender is one of the operators named in ``OPERATOR_IDS``."""
    user = update.effective_user
    return user is not None and user.id in context.services.settings.operator_ids


async def may_change_settings(update: Update, context: BotContext) -> bool:
    """Whether the sender may change this chat's subscriptions and settings.

    Anonymous admins write "as the group" (``sender_chat`` is the chat itself);
    everyone else is checked with getChatMember, so it is never stale.
    """
    chat = update.effective_chat
    if chat is None:
        return False
    if chat.type == ChatType.PRIVATE:
        return True
    message = update.effective_message
    if update.callback_query is None and message is not None and message.sender_chat is not None:
        return message.sender_chat.id == chat.id
    user = update.effective_user
    if user is None:
        return False
    try:
        member = await context.bot.get_chat_member(chat.id, user.id)
    except TelegramError:
        return False
    return member.status in ADMIN_STATUSES


async def allowed_or_refused(update: Update, context: BotContext, refusal: str) -> bool:
    """Whether the sender may change this chat's settings; if not, ``refusal`` is shown
    (as an alert under a button) and the attempt is logged."""
    if await may_change_settings(update, context):
        return True
    user, chat = update.effective_user, update.effective_chat
    log.info(
        "refused a settings change in chat %s from user %s",
        chat.id if chat else None,
        user.id if user else None,
    )
    if update.callback_query is not None:
        await update.callback_query.answer(refusal, show_alert=True)
    else:
        await answer(update, context, Reply(esc(refusal)))
    return False
