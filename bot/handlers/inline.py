"""Inline mode: "@bot sco" in any chat lists matching events and organisations."""

from __future__ import annotations

from telegram import InlineQueryResultArticle, InputTextMessageContent, Update

from bot import render
from bot.context import BotContext
from bot.i18n import directional
from storage.queries import EventFilter, When
from storage.views import EventView, OrganisationRef

MAX_RESULTS = 20
CACHE_SECONDS = 30


async def inline_query(update: Update, context: BotContext) -> None:
    query = update.inline_query
    if query is None:
        return
    tr, chat, now = context.tr, context.chat_view, context.clock.now()
    text = query.query.strip()[:100]
    results: list[InlineQueryResultArticle] = []
    found: list[OrganisationRef | EventView]
    if text:
        found = list((await context.catalogue.search(text, now, limit=MAX_RESULTS)).ranked)
    else:  # an empty query offers what comes next
        page = await context.catalogue.events(EventFilter(when=When.UPCOMING), now, 0, 10)
        found = list(page.events)
    for item in found:
        if isinstance(item, OrganisationRef):
            card = await context.catalogue.organisation_card(item.key, now)
            if card is None:
                continue
            reply = render.organisation_card(card, chat, now, tr)
            results.append(
                InlineQueryResultArticle(
                    id=f"o:{item.key}",
                    title=render.organisation_title(item, tr),
                    description=render.organisation_name(item, tr),
                    input_message_content=InputTextMessageContent(
                        directional(reply.text, tr)[:4096]
                    ),
                    reply_markup=reply.inline_keyboard,
                )
            )
            continue
        event = item
        shown = event.next_occurrence(now) or event
        reply = render.event_card(shown, chat, now, tr)
        results.append(
            InlineQueryResultArticle(
                id=f"e:{event.key}",
                title=render.event_title(shown, tr),
                description=render.event_line(shown, tr),
                input_message_content=InputTextMessageContent(directional(reply.text, tr)),
                reply_markup=reply.inline_keyboard,
            )
        )
    await query.answer(results[:MAX_RESULTS], cache_time=CACHE_SECONDS, is_personal=True)
