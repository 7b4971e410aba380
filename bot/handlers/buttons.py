"""Inline buttons: open an event or organisation, turn the pages of a list."""

from __future__ import annotations

import logging

from telegram import Update

from bot.context import BotContext
from bot.handlers import calendar, channels, chat_settings, operators, review, subscriptions
from bot.handlers.events import event_reply, list_page, show_event
from bot.handlers.organisations import organisation_reply, show_organisation
from bot.presentation import callbacks
from bot.presentation.messaging import edit

log = logging.getLogger(__name__)


SUBSCRIPTION_ACTIONS = (
    callbacks.Follow,
    callbacks.Unfollow,
    callbacks.LeadMenu,
    callbacks.ToggleLead,
    callbacks.LeadDone,
    callbacks.SubscribeMenu,
)


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
    if query.message is None:
        await _inline_message_button(update, context, action)
        return
    match action:
        case callbacks.SetLanguage():
            await chat_settings.language_button(update, context, action)
        case callbacks.CalendarFile(key):
            await calendar.event_file(update, context, key)
        case callbacks.NewFeedAddress():
            await calendar.new_feed_address(update, context)
        case callbacks.OperationAnswer():
            await operators.button(update, context, action)
        case callbacks.ReviewPage() | callbacks.ReviewAction():
            await review.button(update, context, action)
        case callbacks.ChannelAction():
            await channels.button(update, context, action)
        case callbacks.ForgetMe(confirmed):
            await chat_settings.forget_me_button(update, context, confirmed)
        case _ if isinstance(action, SUBSCRIPTION_ACTIONS):
            await subscriptions.button(update, context, action)
        case callbacks.OpenEvent(key):
            await query.answer()
            await show_event(update, context, key)
        case callbacks.OpenOrganisation(key):
            await query.answer()
            await show_organisation(update, context, key)
        case callbacks.OpenList(filter_, page):
            await query.answer()
            await edit(update, context, await list_page(filter_, page, context, update))


async def _inline_message_button(
    update: Update, context: BotContext, action: callbacks.Action
) -> None:
    """Buttons under a message posted through inline mode: there is no chat to write to,
    so cards open in place, and what needs a chat points to the private chat."""
    query = update.callback_query
    assert query is not None
    match action:
        case callbacks.OpenEvent(key):
            reply = await event_reply(context, key)
        case callbacks.OpenOrganisation(key):
            reply = await organisation_reply(context, key)
        case callbacks.OpenList(filter_, page):
            reply = await list_page(filter_, page, context)
        case _:
            text = context.tr.gettext(
                "Open a private chat with me (@{bot}) for reminders and calendar files.",
                bot=context.bot.username,
            )
            await query.answer(text, show_alert=True)
            return
    await query.answer()
    await edit(update, context, reply)
