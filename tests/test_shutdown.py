"""Stopping a bot in the middle of a broadcast: within its grace period, marking nothing
sent that was not, and handing back what it did not send."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time

from sqlalchemy import func, select

from bot.clock import FixedClock
from storage.database import Database
from storage.models import Delivery, DeliveryKind, DeliveryStatus
from tests.botapi import LocalBotApi
from tests.conftest import StartBot
from tests.factories import QUIET, START, TEST_EVENT, load

CHATS = range(8401, 8441)


async def reminder_statuses(database_url: str) -> dict[DeliveryStatus, int]:
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            rows = await session.execute(
                select(Delivery.status, func.count())
                .where(Delivery.kind == DeliveryKind.REMINDER)
                .where(Delivery.status != DeliveryStatus.SKIPPED)  # superseded leads
                .group_by(Delivery.status)
            )
            return {DeliveryStatus(status): count for status, count in rows.all()}
    finally:
        await database.dispose()


async def test_a_stop_mid_broadcast_ends_in_time_and_hands_back_the_rest(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    await load(database_url, TEST_EVENT, clock.now())
    # Four messages a second: forty reminders would take ten seconds.
    async with start_bot(**QUIET, delivery_rate_per_second=4) as app:
        for chat_id in CHATS:
            await bot_api.reply_to(bot_api.message("/subscribe test-summit", chat_id=chat_id))
        dispatcher = app.bot_data.services.dispatcher
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        sweeping = asyncio.create_task(dispatcher.sweep())
        await bot_api.wait_for(lambda call: "⏰" in call.text)  # the broadcast has begun
        asked = time.monotonic()
        await dispatcher.stop(2.0)
        took = time.monotonic() - asked
        await asyncio.wait_for(sweeping, 1)  # the sweep had ended too
    received = sum("⏰" in call.text for chat in CHATS for call in bot_api.sent_to(chat))
    statuses = await reminder_statuses(database_url)
    assert took < 2.5
    assert 0 < received < len(CHATS)
    # Exactly what Telegram accepted is marked sent; the rest is back in the queue.
    assert statuses == {
        DeliveryStatus.SENT: received,
        DeliveryStatus.PENDING: len(CHATS) - received,
    }


async def test_a_sweep_cancelled_while_senders_wait_for_the_rate_limiter_leaves_no_task(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    """Cancelled inside the wait for the rate limiter's turn (from the second engineer's
    review): the waits for the turn and for a stop go with it, none is left pending."""
    await load(database_url, TEST_EVENT, clock.now())
    async with start_bot(**QUIET, delivery_rate_per_second=4) as app:
        for chat_id in CHATS:
            await bot_api.reply_to(bot_api.message("/subscribe test-summit", chat_id=chat_id))
        dispatcher = app.bot_data.services.dispatcher
        before = asyncio.all_tasks()
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        sweeping = asyncio.create_task(dispatcher.sweep())
        await bot_api.wait_for(lambda call: "⏰" in call.text)  # senders are being paced
        sweeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeping
        for _ in range(3):
            await asyncio.sleep(0)
        left = [
            task
            for task in asyncio.all_tasks() - before
            if not task.done() and task is not asyncio.current_task()
        ]
        assert [task.get_coro() for task in left] == []
