"""Calendar files: "Add to calendar" on an event card, and /calendar for all a chat follows.

In webhook mode /calendar also gives the chat's feed address (``/calendar/<token>.ics``
on the bot's public host, served by ``bot.runtime.webhook``): a calendar app subscribed to it
stays up to date; "New link" replaces the address.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit

from telegram import InputFile, Update

from bot.context import BotContext
from bot.permissions import allowed_or_refused
from bot.presentation import ics, render
from bot.presentation.messaging import answer, edit
from storage.feeds import feed_token

# Feeds live at <public origin>/calendar/<token>.ics (bot.runtime.webhook serves them).
FEED_PATH_PREFIX = "/calendar/"


async def _send(
    update: Update, context: BotContext, data: bytes, filename: str, caption: str
) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    document = InputFile(io.BytesIO(data), filename=filename, attach=True)
    await context.bot.send_document(chat.id, document, caption=render.esc(caption))


async def event_file(update: Update, context: BotContext, key: str) -> None:
    """The .ics of one event (the card's "Add to calendar" button)."""
    _ = context.tr.gettext
    event = await context.catalogue.event(key)
    query = update.callback_query
    if event is None or not ics.can_export(event):
        text = _("Its dates are not announced yet, so there is nothing to add to a calendar.")
        if event is None:
            text = _("That no longer exists.")
        if query is not None:
            await query.answer(text, show_alert=True)
        else:
            await answer(update, context, render.Reply(render.esc(text)))
        return
    if query is not None:
        await query.answer()
    now = context.clock.now()
    leads = await context.services.subscriptions.default_lead_times(context.chat_view.id)
    data = ics.calendar_file([event], leads, context.tr, now)
    await _send(update, context, data, f"{event.key}.ics", render.event_title(event, context.tr))


async def calendar(update: Update, context: BotContext) -> None:
    """/calendar: one .ics with every event this chat follows."""
    _ = context.tr.gettext
    chat_id = context.chat_view.id
    events = [e for e in await context.catalogue.followed_events(chat_id) if ics.can_export(e)]
    if not events:
        text = _("This chat follows no event with known dates yet. Use /subscribe first.")
        await answer(update, context, render.Reply(render.esc(text)))
    else:
        leads = await context.services.subscriptions.default_lead_times(chat_id)
        data = ics.calendar_file(events, leads, context.tr, context.clock.now())
        caption = context.tr.ngettext("{count} event", "{count} events", len(events))
        await _send(update, context, data, "summitbot.ics", caption)
    base = feed_base_url(context)
    if base is not None:
        async with context.services.database.transaction() as session:
            token = await feed_token(session, chat_id, context.clock.now())
        await answer(update, context, render.calendar_feed(feed_url(base, token), context.tr))


def feed_base_url(context: BotContext) -> str | None:
    """Where feeds are served: the public origin of the webhook, when there is one."""
    webhook_url = context.services.settings.webhook_url
    if not webhook_url:
        return None
    parts = urlsplit(webhook_url)
    return f"{parts.scheme}://{parts.netloc}"


def feed_url(base: str, token: str) -> str:
    return f"{base}{FEED_PATH_PREFIX}{token}.ics"


async def new_feed_address(update: Update, context: BotContext) -> None:
    """The "New link" button: a new feed address; the old one stops working."""
    query = update.callback_query
    base = feed_base_url(context)
    _ = context.tr.gettext
    if query is None:
        return
    if base is None:
        await query.answer(_("This button has expired."), show_alert=True)
        return
    if not await allowed_or_refused(
        update, context, _("Only the admins of this group can change its settings.")
    ):
        return
    async with context.services.database.transaction() as session:
        token = await feed_token(session, context.chat_view.id, context.clock.now(), replace=True)
    await query.answer(_("The old link no longer works."))
    await edit(update, context, render.calendar_feed(feed_url(base, token), context.tr, new=True))
