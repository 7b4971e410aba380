"""Channels (being written): registration hook and button entry point."""

from __future__ import annotations

from telegram import Update

from bot import callbacks
from bot.context import BotApplication, BotContext


def register(application: BotApplication) -> None:
    """Add the channel handlers to ``application``."""


async def button(update: Update, context: BotContext, action: callbacks.ChannelAction) -> None:
    query = update.callback_query
    if query is not None:
        await query.answer(context.tr.gettext("This button has expired."), show_alert=True)
