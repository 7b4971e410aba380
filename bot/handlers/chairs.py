"""/chairs [YEAR|MONTH|DATE]: who chairs each organisation now, on a day, or over a period."""

from __future__ import annotations

from telegram import Update

from bot.context import BotContext
from bot.handlers.arguments import BadArgument, joined, parse_when
from bot.presentation import render
from bot.presentation.messaging import answer
from bot.presentation.webapp import calendar_button
from storage.dates import Precision


async def chairs(update: Update, context: BotContext) -> None:
    tr = context.tr
    _ = tr.gettext
    try:
        when = parse_when(joined(context.args))
    except BadArgument as exc:
        text = _(
            "I can't read “{value}” as a date. Write a year (2024), a month (2024-07) "
            "or a day (2024-07-03).",
            value=render.esc(exc.what[:50]),
        )
        await answer(update, context, render.Reply(text))
        return
    today = context.today
    app = calendar_button(update, context)
    if when is None or when.precision is Precision.DAY:
        day = when.first_day if when else today
        found = await context.catalogue.chairs_on(day)
        reply = render.chairs_on(day, found, today, tr, context.clock.now(), app_button=app)
        await answer(update, context, reply)
        return
    found = await context.catalogue.chairs_during(when.first_day, when.last_day)
    label = render.format_partial(when, tr)
    reply = render.chairs_during(
        label, when.last_day, found, today, tr, context.clock.now(), app_button=app
    )
    await answer(update, context, reply)
