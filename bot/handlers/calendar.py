"""Calendar files: "Add to calendar" on an event card, and /calendar for all a chat follows."""

from __future__ import annotations

import io

from telegram import InputFile, Update

from bot import ics, render
from bot.context import BotContext
from bot.messaging import answer


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
        return
    leads = await context.services.subscriptions.default_lead_times(chat_id)
    data = ics.calendar_file(events, leads, context.tr, context.clock.now())
    caption = context.tr.ngettext("{count} event", "{count} events", len(events))
    await _send(update, context, data, "summitbot.ics", caption)
