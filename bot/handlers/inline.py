"""Inline mode: "@bot sco" in any chat lists matching events and organisations.

Results come ten at a time: Telegram asks for the next ten (with the ``next_offset`` we
gave) as the person scrolls, up to fifty. A first answer of ten is what the panel shows
at once, and it costs half the work of twenty: rendering and encoding the cards are
most of an inline query's time.

The results go to Telegram as the JSON the Bot API defines, built here from the card's
text and buttons, skipping python-telegram-bot's general encoding (which copies each
result to put the defaults in, then walks every attribute of every object). The JSON
is the same as PTB's (a test compares them); a button with anything but text, a link
or callback data is still encoded by PTB.
"""

from __future__ import annotations

from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Defaults

from bot.context import BotContext
from bot.presentation import render
from bot.presentation.i18n import Translator, directional
from storage.queries import EventFilter, When
from storage.views import EventView, OrganisationRef

PAGE_SIZE = 10
MAX_RESULTS = 50  # reachable by scrolling
CACHE_SECONDS = 30


def _offset(value: str) -> int:
    """Where this page starts: the ``next_offset`` we gave, or 0 (a new query, or an
    offset a modified client made up)."""
    if value.isdecimal() and int(value) < MAX_RESULTS:
        return int(value) - int(value) % PAGE_SIZE
    return 0


# What this bot's buttons carry; a button with any other field set is left to PTB.
_PLAIN_BUTTON_FIELDS = ("text", "url", "callback_data")
# A button's own fields (api_kwargs, a TelegramObject's, is looked at separately).
_OTHER_BUTTON_FIELDS = tuple(
    sorted(set(InlineKeyboardButton.__slots__) - set(_PLAIN_BUTTON_FIELDS))
)


def _button_json(button: InlineKeyboardButton) -> dict[str, Any]:
    if button.api_kwargs or any(getattr(button, name) is not None for name in _OTHER_BUTTON_FIELDS):
        return button.to_dict()
    return {
        name: value for name in _PLAIN_BUTTON_FIELDS if (value := getattr(button, name)) is not None
    }


def _keyboard_json(keyboard: InlineKeyboardMarkup) -> dict[str, Any]:
    if keyboard.api_kwargs:
        return keyboard.to_dict()
    return {"inline_keyboard": [[_button_json(b) for b in row] for row in keyboard.inline_keyboard]}


def _message_defaults(defaults: Defaults | None) -> dict[str, Any]:
    """The parse mode and link preview options the bot's defaults give every message."""
    if defaults is None:
        return {}
    found: dict[str, Any] = {}
    if defaults.parse_mode is not None:
        found["parse_mode"] = defaults.parse_mode
    if defaults.link_preview_options is not None:
        found["link_preview_options"] = defaults.link_preview_options.to_dict()
    return found


def _article(
    result_id: str,
    title: str,
    description: str,
    reply: render.Reply,
    tr: Translator,
    message_defaults: dict[str, Any],
) -> dict[str, Any]:
    """One result (an InlineQueryResultArticle): choosing it posts ``reply`` (a card)
    with its buttons."""
    content = {"message_text": directional(reply.text, tr)[:4096], **message_defaults}
    article: dict[str, Any] = {
        "type": "article",
        "id": result_id,
        "title": title,
        "description": description,
        "input_message_content": content,
    }
    if reply.inline_keyboard is not None:
        article["reply_markup"] = _keyboard_json(reply.inline_keyboard)
    return article


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
        [item.key for item in found if isinstance(item, OrganisationRef)], now, context.today
    )
    results: list[dict[str, Any]] = []
    defaults = _message_defaults(context.bot.defaults)
    for item in found:
        if isinstance(item, OrganisationRef):
            card = cards.get(item.key)
            if card is not None:
                reply = render.organisation_card(card, chat, now, tr)
                title = render.organisation_title(item, tr)
                name = render.organisation_name(item, tr)
                results.append(_article(f"o:{item.key}", title, name, reply, tr, defaults))
            continue
        shown = item.next_occurrence(now) or item
        reply = render.event_card(shown, chat, now, tr)
        title, line = render.event_title(shown, tr), render.event_line(shown, tr, now)
        results.append(_article(f"e:{item.key}", title, line, reply, tr, defaults))
    await query.answer(
        [],  # the results as JSON instead (see the module's docstring)
        cache_time=CACHE_SECONDS,
        is_personal=True,
        next_offset=str(offset + PAGE_SIZE) if more else None,
        api_kwargs={"results": results},
    )
