"""/search TEXT and plain text in private chats: find by any name in any language."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext
from bot.handlers.arguments import MAX_ARGUMENT_CHARS, joined
from bot.handlers.events import next_reply
from bot.handlers.organisations import show_organisation
from bot.presentation import render
from bot.presentation.messaging import answer
from storage.search import asks_for_next


async def _search(update: Update, context: BotContext, text: str) -> None:
    _ = context.tr.gettext
    if not text:
        await answer(update, context, render.Reply(render.esc(_("What should I look for?"))))
        return
    now = context.clock.now()
    results = await context.catalogue.search(text, now)
    org = results.exact_organisation or (
        results.organisations[0] if len(results.organisations) == 1 else None
    )
    if org is not None and asks_for_next(text):
        # "next CSTO summit": answer the question, not the list of matches.
        await answer(update, context, await next_reply(context, org, update))
        return
    if results.exact_organisation is not None:
        await show_organisation(update, context, results.exact_organisation.key)
        return
    await answer(update, context, render.search_results(text, results, context.tr, now))


async def search(update: Update, context: BotContext) -> None:
    await _search(update, context, joined(context.args))


async def plain_text(update: Update, context: BotContext) -> None:
    message = update.effective_message
    if message is None or not message.text:
        return
    await _search(update, context, message.text.strip()[:MAX_ARGUMENT_CHARS])
