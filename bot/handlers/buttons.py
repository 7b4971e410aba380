"""Inline buttons: open an event or organisation, turn the pages of a list."""

from __future__ import annotations

import contextlib
import logging

from telegram import Update
from telegram.error import BadRequest

from bot import callbacks
from bot.context import BotContext
from bot.handlers import subscriptions
from bot.handlers.events import list_page, show_event
from bot.handlers.organisations import show_organisation

log = logging.getLogger(__name__)


async def button(update: Update, context: BotContext) -> None:
    query = update.callback_query
    if query is None:
        return
    _ = context.tr.gettext
    try:
        action = callbacks.parse(query.data)
    except callbacks.ExpiredButton:
        log.info("refused unknown callback data from user %s", query.from_user.id)
        await query.answer(_("This button has expired."), show_alert=True)
        return
    if isinstance(
        action,
        callbacks.Follow
        | callbacks.Unfollow
        | callbacks.LeadMenu
        | callbacks.ToggleLead
        | callbacks.LeadDone
        | callbacks.SubscribeMenu,
    ):
        await subscriptions.button(update, context, action)
        return
    await query.answer()
    match action:
        case callbacks.OpenEvent(key):
            await show_event(update, context, key)
        case callbacks.OpenOrganisation(key):
            await show_organisation(update, context, key)
        case callbacks.OpenList(filter_, page):
            reply = await list_page(filter_, page, context)
            # Pressing a page button twice yields "message is not modified": nothing to do.
            with contextlib.suppress(BadRequest):
                await query.edit_message_text(reply.text, reply_markup=reply.keyboard)
