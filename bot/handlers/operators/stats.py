"""/stats: chats, subscriptions, recent deliveries, the next due, the review queue, sources."""

from __future__ import annotations

from telegram import (
    Update,
)

from bot.context import BotContext
from bot.handlers.operators.pending import allowed
from bot.handlers.operators.previews import _stats_text
from bot.handlers.operators.sources import stats_line
from bot.presentation.messaging import answer
from bot.presentation.text import Reply, esc
from storage.operations import (
    operator_stats,
)
from storage.sources import source_counts

# --- /stats -----------------------------------------------------------------------------


async def stats(update: Update, context: BotContext) -> None:
    """/stats: chats, subscriptions, recent deliveries and the next ones due."""
    if not await allowed(update, context, "/stats"):
        return
    now = context.clock.now()
    async with context.services.database.sessions() as session:
        found = await operator_stats(session, now, catalogue=context.catalogue)
        counts = await source_counts(session)
    if found.review_queue is not None:
        context.services.metrics.review_queue.set(found.review_queue)
    text = _stats_text(found, context.chat_view.timezone, now, context.tr)
    text += "\n\n" + esc(stats_line(counts, context.tr))
    await answer(update, context, Reply(text))
