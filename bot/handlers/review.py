"""/review: what in the data needs a person (``storage.review``), most urgent first.

Operators only, in a private chat, like the other operator commands. Each item has
one-tap actions; every action that changes data opens the usual preview under Save and
Cancel (``handlers.operators``), so it is checked, logged and saved as any other edit.
A button names its item (``rv:VERB:e:ID``…); the queue is computed again when it is
pressed, and an item no longer in it (saved meanwhile, or a forged button) is refused.
A date cannot be tapped: "Postpone…" answers with the command to type.
"""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from telegram import Update
from telegram.ext import CommandHandler

from bot.context import BotApplication, BotContext
from bot.handlers import operators
from bot.handlers.operators.sources import review_text
from bot.presentation import callbacks, render
from bot.presentation.messaging import answer, edit
from storage.datafile import ChairmanshipRow, EventRow, OrganisationRow
from storage.models import Confidence, EventStatus
from storage.operations import (
    changed,
    load_chairmanship_row,
    load_event_row,
    load_organisation_row,
)
from storage.review import ReviewItem, ReviewKind, ReviewQueue, review_queue
from storage.sources import source_review
from storage.views import ChairView

log = logging.getLogger(__name__)

# /metrics' review queue gauge is computed this often (and on /review and /stats).
GAUGE_JOB = "review-queue-gauge"
GAUGE_SECONDS = 600

# What an item must have among its reasons for a verb to apply to it.
_NEEDS = {
    callbacks.ReviewVerb.HELD: (ReviewKind.LAPSED,),
    callbacks.ReviewVerb.DATES: (ReviewKind.LAPSED, ReviewKind.UNDATED),
    callbacks.ReviewVerb.SUCCESSOR: (ReviewKind.TERM_ENDED,),
}


async def _queue(context: BotContext) -> ReviewQueue:
    queue = await review_queue(context.catalogue, context.clock.now())
    context.services.metrics.review_queue.set(len(queue))
    return queue


async def review(update: Update, context: BotContext) -> None:
    """/review: the first page of the review queue."""
    if not await operators.allowed(update, context, "/review"):
        return
    queue = await _queue(context)
    await answer(update, context, render.review_page(queue, 0, context.tr))
    # Followed sources: failing ones, and their events gone or kept as an operator edited them.
    async with context.services.database.sessions() as session:
        flagged = await source_review(session, context.clock.now())
    if len(flagged):
        text = review_text(flagged, context.chat_view.timezone, context.tr)
        await answer(update, context, render.Reply(text))


def _today(context: BotContext) -> dt.date:
    """Today where the operator is: the day "checked today" records."""
    return context.clock.now().astimezone(ZoneInfo(context.chat_view.timezone)).date()


def _applies(item: ReviewItem | None, verb: callbacks.ReviewVerb) -> bool:
    if item is None:
        return False
    if verb is callbacks.ReviewVerb.SUCCESSOR and item.successor_start is None:
        return False
    needed = _NEEDS.get(verb)
    return needed is None or any(kind in item.kinds for kind in needed)


async def button(
    update: Update, context: BotContext, action: callbacks.ReviewPage | callbacks.ReviewAction
) -> None:
    """A page of the queue, or an action on one item (the router in ``handlers.buttons``)."""
    query = update.callback_query
    if query is None or not await operators.allowed(update, context, "a review button"):
        return
    _ = context.tr.gettext
    queue = await _queue(context)
    if isinstance(action, callbacks.ReviewPage):
        await query.answer()
        await edit(update, context, render.review_page(queue, action.page, context.tr))
        return
    item = queue.find(action.item_key)
    if item is None or not _applies(item, action.verb):
        log.info("review button %s from user %s: not in the queue", query.data, query.from_user.id)
        await query.answer(_("This is no longer in the review queue."), show_alert=True)
        return
    await query.answer()
    match action.verb:
        case callbacks.ReviewVerb.HELD:
            await _change_event(update, context, item, status=EventStatus.HELD)
        case callbacks.ReviewVerb.DATES:
            await answer(update, context, render.review_dates_hint(item, context.tr))
        case callbacks.ReviewVerb.CHECKED if item.event is not None:
            await _change_event(update, context, item, checked=_today(context))
        case callbacks.ReviewVerb.CHECKED:
            await _mark_fact_checked(update, context, item)
        case callbacks.ReviewVerb.SUCCESSOR:
            await _propose_successor(update, context, item)


async def _gone(update: Update, context: BotContext) -> None:
    text = context.tr.gettext("This is no longer in the review queue.")
    await answer(update, context, render.Reply(render.esc(text)))


async def _change_event(
    update: Update, context: BotContext, item: ReviewItem, **values: object
) -> None:
    """The event with ``values``, shown old → new under Save and Cancel."""
    assert item.event is not None
    async with context.services.database.sessions() as session:
        old = await load_event_row(session, item.event.key)
    if old is None:
        await _gone(update, context)
        return
    new: EventRow = changed(old, **values)
    await operators.show_change(update, context, old, new)


async def _mark_fact_checked(update: Update, context: BotContext, item: ReviewItem) -> None:
    """A chairmanship or an organisation with today as its checked day, under Save."""
    today = _today(context)
    old: ChairmanshipRow | OrganisationRow | None
    async with context.services.database.sessions() as session:
        if item.chair is not None:
            start = item.chair.start.literal if item.chair.start else ""
            org = item.chair.organisation.key
            old = await load_chairmanship_row(session, org, item.chair.country, start)
        else:
            assert item.organisation is not None
            old = await load_organisation_row(session, item.organisation.key)
    if old is None:
        await _gone(update, context)
        return
    new = type(old).model_validate({**dict(old), "checked": today})
    text = render.checked_preview(item, context.clock.now(), old.checked, today, context.tr)
    await operators.ask_to_save(update, context, text, new, old)


async def _propose_successor(update: Update, context: BotContext, item: ReviewItem) -> None:
    """A new chairmanship for the projected successor, from the day the record allows
    (``storage.review.successor_start``); low confidence until a source is added."""
    assert item.chair is not None and item.successor is not None
    assert item.successor_start is not None
    row = ChairmanshipRow(
        organisation=item.chair.organisation.key,
        country=item.successor.country,
        start=item.successor_start,
        confidence=Confidence.LOW,
        checked=_today(context),
    )
    view = ChairView(
        organisation=item.chair.organisation,
        country=row.country,
        start=row.start,
        end=None,
        end_note={},
        note={},
        confidence=row.confidence,
        sources=(),
        checked=row.checked,
    )
    text = render.successor_preview(item, view, context.clock.now(), context.tr)
    await operators.ask_to_save(update, context, text, row, None)


async def review_gauge_job(context: BotContext) -> None:
    """Keep /metrics' review queue gauge current (the queue changes with the day too)."""
    services = context.services
    queue = await review_queue(services.catalogue, services.clock.now())
    services.metrics.review_queue.set(len(queue))


def register(application: BotApplication) -> None:
    """Add /review to ``application`` (group 0, with the other operator commands)."""
    application.add_handler(CommandHandler("review", review))


def start(application: BotApplication) -> None:
    """Compute the gauge every ``GAUGE_SECONDS`` once the application runs (post_init)."""
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            review_gauge_job, interval=GAUGE_SECONDS, first=60, name=GAUGE_JOB
        )
