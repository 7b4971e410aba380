"""/upcoming, /past, /summits [NAME] [YEAR], /next [NAME], /event ID."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext
from bot.handlers.arguments import BadArgument, joined, parse_name_and_year
from bot.presentation import render
from bot.presentation.messaging import answer
from bot.presentation.webapp import calendar_button
from storage.queries import EventFilter, When
from storage.views import OrganisationRef


async def _organisation_or_reply(
    update: Update, context: BotContext, name: str
) -> tuple[bool, OrganisationRef | None]:
    """(found, organisation); replies "not found" with suggestions and returns (False, None)."""
    if not name:
        return True, None
    found = await context.catalogue.find_organisation(name)
    if found is None:
        suggestions = await context.catalogue.suggestions(name, "organisation")
        await answer(update, context, render.not_found(name, suggestions, context.tr))
        return False, None
    return True, found


async def list_page(
    query: EventFilter, page: int, context: BotContext, update: Update | None = None
) -> render.Reply:
    """One page of a list of events, rendered (also used by the ◀ ▶ buttons); the
    upcoming ones in a chat (``update``'s) with "🗓 Open calendar"."""
    now = context.clock.now()
    found = await context.catalogue.events(query, now, page)
    org = (
        await context.catalogue.find_organisation(query.organisation)
        if query.organisation
        else None
    )
    app = calendar_button(update, context) if query.when is When.UPCOMING else None
    return render.event_list(found, query, org, now, context.tr, app_button=app)


async def _send_list(update: Update, context: BotContext, when: When) -> None:
    _ = context.tr.gettext
    try:
        parsed = parse_name_and_year(joined(context.args))
    except BadArgument as exc:
        text = _("“{value}” is not a year I know about.", value=render.esc(exc.what))
        await answer(update, context, render.Reply(text))
        return
    found, org = await _organisation_or_reply(update, context, parsed.name)
    if not found:
        return
    query = EventFilter(organisation=org.key if org else None, year=parsed.year, when=when)
    await answer(update, context, await list_page(query, 0, context, update))


async def upcoming(update: Update, context: BotContext) -> None:
    await _send_list(update, context, When.UPCOMING)


async def past(update: Update, context: BotContext) -> None:
    await _send_list(update, context, When.PAST)


async def summits(update: Update, context: BotContext) -> None:
    await _send_list(update, context, When.ALL)


async def next_event(update: Update, context: BotContext) -> None:
    found, org = await _organisation_or_reply(update, context, joined(context.args))
    if not found:
        return
    await answer(update, context, await next_reply(context, org, update))


async def next_reply(
    context: BotContext, org: OrganisationRef | None, update: Update | None = None
) -> render.Reply:
    """/next [NAME]: the next event; with none, what became of the last one."""
    now = context.clock.now()
    key = org.key if org else None
    found = await context.catalogue.next_events(key, now)
    last = None
    if found.next is None:
        past = await context.catalogue.events(
            EventFilter(organisation=key, when=When.PAST), now, 0, 1
        )
        last = past.events[0] if past.events else None
    app = calendar_button(update, context)
    return render.next_event(found, org, context.chat_view, now, context.tr, last, app_button=app)


async def event_reply(context: BotContext, key: str, update: Update | None = None) -> render.Reply:
    """The card of the event ``key``, or "not found" with suggestions; in a chat
    (``update``'s) with "🗓 Open calendar"."""
    event = await context.catalogue.event(key)
    if event is None:
        suggestions = await context.catalogue.suggestions(key, "event")
        return render.not_found(key, suggestions, context.tr)
    shown = event.next_occurrence(context.clock.now()) or event
    app = calendar_button(update, context)
    return render.event_card(
        shown, context.chat_view, context.clock.now(), context.tr, app_button=app
    )


async def show_event(update: Update, context: BotContext, key: str) -> None:
    """Send the card of the event ``key`` (also used by buttons and search)."""
    await answer(update, context, await event_reply(context, key, update))


async def event(update: Update, context: BotContext) -> None:
    key = joined(context.args)
    if not key:
        _ = context.tr.gettext
        text = _("Which event? Write /event ID, e.g. /event sco-2024-astana, or use /upcoming.")
        await answer(update, context, render.Reply(render.esc(text)))
        return
    await show_event(update, context, key.casefold())
