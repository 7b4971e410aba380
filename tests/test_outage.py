"""The database going away and coming back (PostgreSQL behind a proxy the test cuts).

People are told the bot is temporarily unavailable; the dispatcher pauses and resumes
by itself; nothing is marked sent that was not, and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.clock import FixedClock
from storage.database import Database
from storage.models import Delivery, DeliveryStatus
from tests.botapi import ApiCall, LocalBotApi
from tests.conftest import StartBot
from tests.factories import QUIET, START, TEST_EVENT, load, plain
from tests.tcpproxy import TcpProxy

UNAVAILABLE = "The bot is temporarily unavailable. Please try again in a minute."


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    if not database_url.startswith("postgresql"):
        pytest.skip("a database outage is a network event: tested on PostgreSQL")
    url = make_url(database_url)
    server = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await server.start()
    yield server
    await server.stop()


async def test_people_are_told_the_bot_is_temporarily_unavailable_and_it_recovers(
    bot_api: LocalBotApi, start_bot: StartBot, proxy: TcpProxy, database_url: str
) -> None:
    async with start_bot(database_url=proxy.url_for(database_url), **QUIET):
        before = bot_api.message("/upcoming", chat_id=8201)
        assert "Upcoming" in plain((await bot_api.reply_to(before)).text)
        proxy.cut()
        during = bot_api.message("/upcoming", chat_id=8202)
        told = plain((await bot_api.reply_to(during, timeout=20)).text)
        pressed = bot_api.message("/subscribe sco", chat_id=8203)
        told_too = plain((await bot_api.reply_to(pressed, timeout=20)).text)
        proxy.restore()
        after = bot_api.message("/subscribe sco", chat_id=8203)
        subscribed = plain((await bot_api.reply_to(after, timeout=20)).text)
    assert told == UNAVAILABLE
    assert told_too == UNAVAILABLE
    assert "You now follow" in subscribed


async def test_an_outage_mid_batch_loses_no_reminder_and_sends_none_twice(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    proxy: TcpProxy,
    database_url: str,
    clock: FixedClock,
) -> None:
    await load(database_url, TEST_EVENT, clock.now())
    chats = list(range(8301, 8341))
    async with start_bot(database_url=proxy.url_for(database_url), **QUIET) as app:
        for chat_id in chats:
            update = bot_api.message("/subscribe test-summit", chat_id=chat_id)
            await bot_api.reply_to(update)
        dispatcher = app.bot_data.services.dispatcher
        dispatcher.batch_size = 10
        loop = asyncio.get_running_loop()
        sent_before_cut = 5

        def cut_after_some_reminders(call: ApiCall) -> None:
            reminders = sum("⏰" in c.text for c in bot_api.calls)
            if "⏰" in call.text and not proxy.cut_off and reminders == sent_before_cut:
                proxy.cut()  # Telegram has these; the database cannot record them yet
                loop.call_later(2.0, proxy.restore)

        bot_api.on_call = cut_after_some_reminders
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        first = await dispatcher.sweep()  # paused by the outage, not crashed
        bot_api.on_call = None
        assert not proxy.cut_off
        second = await dispatcher.sweep()  # resumed
        assert dispatcher.database_available
        metrics = app.bot_data.services.metrics.exposition().decode()
    per_chat = {chat_id: sum("⏰" in c.text for c in bot_api.sent_to(chat_id)) for chat_id in chats}
    assert set(per_chat.values()) == {1}, per_chat
    assert first.sent + second.sent == len(chats)
    assert first.sent >= sent_before_cut  # those were recorded once the database was back
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            statuses = dict(
                (
                    await session.execute(
                        select(Delivery.status, func.count()).group_by(Delivery.status)
                    )
                ).all()
            )
    finally:
        await database.dispose()
    # The 7-day and 1-day reminders were superseded (skipped); none is left claimed.
    assert statuses == {DeliveryStatus.SENT: len(chats), DeliveryStatus.SKIPPED: 2 * len(chats)}
    assert "summitbot_database_up 1.0" in metrics
