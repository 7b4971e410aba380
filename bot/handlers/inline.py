"""Inline mode: "@bot sco" in any chat lists matching events and organisations."""

from __future__ import annotations

from telegram import InlineQueryResultArticle, InputTextMessageContent, Update

from bot import render
from bot.context import BotContext
from bot.i18n import Translator, directional
from storage.queries import EventFilter, When
from storage.views import EventView, OrganisationRef

MAX_RESULTS = 20
CACHE_SECONDS = 30


def _article(
    result_id: str, title: str, description: str, reply: render.Reply, tr: Translator
) -> InlineQueryResultArticle:
    """One result: choosing it posts ``reply`` (a card) with its buttons."""
    return InlineQueryResultArticle(
        id=result_id,
        title=title,
        description=description,
        input_message_content=InputTextMessageContent(directional(reply.text, tr)[:4096]),
        reply_markup=reply.inline_keyboard,
    )


async def inline_query(update: Update, context: BotContext) -> None:
    query = update.inline_query
    if query is None:
        return
    tr, chat, now = context.tr, context.chat_view, context.clock.now()
    text = query.query.strip()[:100]
    found: list[OrganisationRef | EventView]
    if text:
        # Inline results have no "did you mean": nothing found is an empty list.
        matches = await context.catalogue.search(text, now, limit=MAX_RESULTS, suggest=False)
        found = list(matches.ranked)
    else:  # an empty query offers what comes next
        page = await context.catalogue.events(EventFilter(when=When.UPCOMING), now, 0, 10)
        found = list(page.events)
    # Every organisation's card at once: one query for all of them, not several per card.
    cards = await context.catalogue.organisation_cards(
        [item.key for item in found if isinstance(item, OrganisationRef)], now
    )
    results: list[InlineQueryResultArticle] = []
    for item in found:
        if isinstance(item, OrganisationRef):
            card = cards.get(item.key)
            if card is not None:
                reply = render.organisation_card(card, chat, now, tr)
                title = render.organisation_title(item, tr)
                name = render.organisation_name(item, tr)
                results.append(_article(f"o:{item.key}", title, name, reply, tr))
            continue
        shown = item.next_occurrence(now) or item
        reply = render.event_card(shown, chat, now, tr)
        title, line = render.event_title(shown, tr), render.event_line(shown, tr)
        results.append(_article(f"e:{item.key}", title, line, reply, tr))
    await query.answer(results[:MAX_RESULTS], cache_time=CACHE_SECONDS, is_personal=True)
