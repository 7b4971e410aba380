"""/org NAME: an organisation's card; /org alone lists them."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext
from bot.handlers.arguments import joined
from bot.presentation import render
from bot.presentation.messaging import answer


async def organisation_reply(context: BotContext, key: str) -> render.Reply:
    """The card of the organisation ``key``, or "not found"."""
    card = await context.catalogue.organisation_card(key, context.clock.now(), context.today)
    if card is None:
        return render.not_found(key, [], context.tr)
    return render.organisation_card(card, context.chat_view, context.clock.now(), context.tr)


async def show_organisation(update: Update, context: BotContext, key: str) -> None:
    """Send the card of the organisation ``key`` (also used by buttons and search)."""
    await answer(update, context, await organisation_reply(context, key))


async def org(update: Update, context: BotContext) -> None:
    name = joined(context.args)
    if not name:
        orgs = await context.catalogue.organisations()
        await answer(update, context, render.organisation_list(orgs, context.tr))
        return
    found = await context.catalogue.find_organisation(name)
    if found is None:
        suggestions = await context.catalogue.suggestions(name, "organisation")
        await answer(update, context, render.not_found(name, suggestions, context.tr))
        return
    await show_organisation(update, context, found.key)
