"""Inline mode: "@bot sco" in any chat lists matching events and organisations.

Results come ten at a time: Telegram asks for the next ten (with the ``next_offset`` we
gave) as the person scrolls, up to fifty. A first answer of ten is what the panel shows
at once, and it costs half the work of twenty: rendering the cards and encoding them
were most of an inline query's time in the latency benchmark.
"""

from __future__ import annotations

from telegram import InlineQueryResultArticle, InputTextMessageContent, Update

from bot import render
from bot.context import BotContext
from bot.i18n import Translator, directional
from storage.queries import EventFilter, When
from storage.views import EventView, OrganisationRef

PAGE_SIZE = 10
MAX_RESULTS = 50  # reachable by scrolling
CACHE_SECONDS = 30


def _offset(value: str) -> int:
    """Where this page starts: the ``next_offset`` we gave, or 0 (a new query, or an
    offset a modified client made up)."""
    if value.isdigit() and int(value) < MAX_RESULTS:
        return int(value) - int(value) % PAGE_SIZE
    return 0


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
    offset = _offset(query.offset)
    found: list[OrganisationRef | EventView]
    if text:
        # Inline results have no "did you mean": nothing found is an empty list.
        matches = await context.catalogue.search(
            text, now, limit=offset + PAGE_SIZE + 1, suggest=False
        )
        found = list(matches.ranked[offset : offset + PAGE_SIZE])
        has_next = len(matches.ranked) > offset + PAGE_SIZE
    else:  # an empty query offers what comes next
        upcoming = EventFilter(when=When.UPCOMING)
        page = await context.catalogue.events(upcoming, now, offset // PAGE_SIZE, PAGE_SIZE)
        found = list(page.events)
        offset = page.page * PAGE_SIZE  # the catalogue keeps a page within the list
        has_next = page.page + 1 < page.pages
    more = has_next and offset + PAGE_SIZE < MAX_RESULTS
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
    await query.answer(
        results,
        cache_time=CACHE_SECONDS,
        is_personal=True,
        next_offset=str(offset + PAGE_SIZE) if more else None,
    )
