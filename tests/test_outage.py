"""The database going away and coming back (PostgreSQL behind a proxy the test cuts).

People are told the bot is temporarily unavailable; the dispatcher pauses and resumes
by itself; nothing is marked sent that was not, and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from telegram import Bot

from bot.clock import FixedClock
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.prepared_message import PreparedMessage
from storage.database import Database
from storage.models import Delivery, DeliveryStatus
from tests.botapi import ApiCall, LocalBotApi
from tests.conftest import StartBot
from tests.factories import QUIET, START, TEST_EVENT, load, plain, track_taken
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
        sent_before_cut = 5
        cut_after_reminders(bot_api, proxy, sent_before_cut, restore_after=2.0)
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
    # The 7-day and 1-day reminders were superseded (skipped); none is left claimed.
    assert await statuses(database_url) == {
        DeliveryStatus.SENT: len(chats),
        DeliveryStatus.SKIPPED: 2 * len(chats),
    }
    assert "summitbot_database_up 1.0" in metrics


def cut_after_reminders(
    bot_api: LocalBotApi, proxy: TcpProxy, reminders: int, *, restore_after: float
) -> None:
    """Cut the database once Telegram has ``reminders`` reminders (their marks cannot be
    written yet); restore it ``restore_after`` seconds later."""
    loop = asyncio.get_running_loop()

    def cut_after(call: ApiCall) -> None:
        received = sum("⏰" in c.text for c in bot_api.calls)
        if "⏰" in call.text and not proxy.cut_off and received == reminders:
            proxy.cut()
            loop.call_later(restore_after, proxy.restore)

    bot_api.on_call = cut_after


def cut_before_the_first_send(
    dispatcher: Dispatcher, proxy: TcpProxy, *, restore_after: float | None = None
) -> None:
    """Cut the database once, when the dispatcher is about to send its first message (a
    batch claimed and rendered a moment ago); restore it ``restore_after`` seconds later."""
    paced = dispatcher._paced
    cut: list[bool] = []

    async def cut_then_pace(*args: Any, **kwargs: Any) -> bool:
        if not cut:
            cut.append(True)
            proxy.cut()
            if restore_after is not None:
                asyncio.get_running_loop().call_later(restore_after, proxy.restore)
        return await paced(*args, **kwargs)

    dispatcher._paced = cut_then_pace  # type: ignore[method-assign]


async def statuses(database_url: str) -> dict[DeliveryStatus, int]:
    """How many deliveries are in each status."""
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            counted = await session.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)
            )
            return {DeliveryStatus(status): count for status, count in counted.all()}
    finally:
        await database.dispose()


async def subscribed(bot_api: LocalBotApi, chats: list[int]) -> None:
    for chat_id in chats:
        await bot_api.reply_to(bot_api.message("/subscribe test-summit", chat_id=chat_id))


def reminders_per_chat(bot_api: LocalBotApi, chats: list[int]) -> dict[int, int]:
    return {chat_id: sum("⏰" in c.text for c in bot_api.sent_to(chat_id)) for chat_id in chats}


async def test_nothing_new_is_sent_while_the_database_is_unreachable(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    proxy: TcpProxy,
    database_url: str,
    clock: FixedClock,
) -> None:
    """The database goes away right after a batch is claimed and rendered, before any
    send: nothing may go out until it is back (no claim can be renewed), then each chat
    gets its reminder once."""
    await load(database_url, TEST_EVENT, clock.now())
    chats = list(range(8401, 8411))
    async with start_bot(database_url=proxy.url_for(database_url), **QUIET) as app:
        await subscribed(bot_api, chats)
        dispatcher = app.bot_data.services.dispatcher
        sent_while_cut: list[int | None] = []

        def count(call: ApiCall) -> None:
            if "⏰" in call.text and proxy.cut_off:
                sent_while_cut.append(call.chat_id)

        cut_before_the_first_send(dispatcher, proxy, restore_after=2.0)
        bot_api.on_call = count
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        await dispatcher.sweep()
        bot_api.on_call = None
        # The sweep ended with the database still away, and says so (it once said it was
        # back, in the log and the metrics, as any sweep that did not raise).
        metrics = app.bot_data.services.metrics.exposition().decode()
        assert proxy.cut_off
        assert not dispatcher.database_available
        assert "summitbot_database_up 0.0" in metrics
        await asyncio.sleep(2.5)  # the database is back
        await dispatcher.sweep()
    per_chat = reminders_per_chat(bot_api, chats)
    assert set(per_chat.values()) == {1}, per_chat
    assert sent_while_cut == [], f"{len(sent_while_cut)} reminders sent with the database cut"


async def test_a_replica_stopped_during_an_outage_leaves_nothing_to_send_twice(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    proxy: TcpProxy,
    database_url: str,
    clock: FixedClock,
) -> None:
    """As above, but the outage outlasts the replica (a deploy stops it first): its claims
    return after the lease and another replica sends them, each chat once."""
    await load(database_url, TEST_EVENT, clock.now())
    chats = list(range(8501, 8511))
    async with start_bot(database_url=proxy.url_for(database_url), **QUIET) as app:
        await subscribed(bot_api, chats)
        dispatcher = app.bot_data.services.dispatcher
        cut_before_the_first_send(dispatcher, proxy)
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        sweep = asyncio.create_task(dispatcher.sweep())
        await asyncio.sleep(1.0)
        await dispatcher.stop(2.0)  # still no database: claims stay until the lease ends
        await asyncio.wait_for(sweep, 10)
    proxy.restore()
    lease = dt.timedelta(seconds=300)
    clock.set(START - dt.timedelta(hours=1) + lease + dt.timedelta(seconds=5))
    async with start_bot(**QUIET) as replica:
        await replica.bot_data.services.dispatcher.sweep()
    per_chat = reminders_per_chat(bot_api, chats)
    assert set(per_chat.values()) == {1}, per_chat


async def test_a_restart_while_a_message_is_with_telegram_does_not_send_it_twice(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    proxy: TcpProxy,
    database_url: str,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database restarts while Telegram takes its time to accept a message (the
    dispatcher's ledger connection idle meanwhile): its "sent" mark waits for the
    database, so when the lease has long passed nobody sends it again."""
    loop = asyncio.get_running_loop()
    send = PreparedMessage.send

    async def slow_send(self: PreparedMessage, bot: Bot, chat_id: int) -> int:
        if not proxy.cut_off:
            proxy.cut()  # the claim was renewed; now the database restarts
            loop.call_later(2.0, proxy.restore)
        await asyncio.sleep(0.3)  # Telegram's round trip
        return await send(self, bot, chat_id)

    await load(database_url, TEST_EVENT, clock.now())
    chat = 8601
    async with start_bot(database_url=proxy.url_for(database_url), **QUIET) as app:
        await subscribed(bot_api, [chat])
        dispatcher: Dispatcher = app.bot_data.services.dispatcher
        monkeypatch.setattr(PreparedMessage, "send", slow_send)
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        await dispatcher.sweep()
        monkeypatch.setattr(PreparedMessage, "send", send)
        lease = dt.timedelta(seconds=app.bot_data.services.settings.delivery_lease_seconds)
        for later in (5, 6):  # any claim left behind would be taken back and sent
            clock.set(START - dt.timedelta(hours=1) + lease + dt.timedelta(seconds=later))
            await dispatcher.sweep()
    assert reminders_per_chat(bot_api, [chat]) == {chat: 1}
    # The week's and the day's reminders were superseded; the hour's was sent, once.
    assert await statuses(database_url) == {DeliveryStatus.SENT: 1, DeliveryStatus.SKIPPED: 2}


async def test_nothing_not_yet_taken_up_is_sent_while_the_database_is_away(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    proxy: TcpProxy,
    database_url: str,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database goes away right after a "sent" mark is committed. Sends already
    under way may land (Telegram has them; their marks wait), and so may a delivery
    whose renewal went in that same write; one a sender takes up afterwards cannot be
    renewed and must not go out: had the process been stopped before the database came
    back, another replica would send it again after the lease (from the second
    engineer's review: a renewal made a chunk ahead let those go out)."""
    await load(database_url, TEST_EVENT, clock.now())
    chats = list(range(8451, 8461))
    settings = {"delivery_max_in_flight": 2, "delivery_rate_limit": False}
    async with start_bot(database_url=proxy.url_for(database_url), **QUIET, **settings) as app:
        await subscribed(bot_api, chats)
        sender = app.bot_data.services.dispatcher
        bot_api.send_delay = 0.05
        loop = asyncio.get_running_loop()
        taken = track_taken(monkeypatch)  # chats whose delivery a sender has taken up
        taken_at_cut: set[int] = set()
        sent_while_cut: list[int | None] = []
        write = sender._send_ledger.write

        async def write_then_cut(renewals: Any, sent: Any, now: Any) -> set[int]:
            ours = await write(renewals, sent, now)
            if sent and not proxy.cut_off and not taken_at_cut:
                proxy.cut()  # committed; now the database restarts
                taken_at_cut.update(taken)
                loop.call_later(2.0, proxy.restore)
            return ours

        def count(call: ApiCall) -> None:
            if "⏰" in call.text and proxy.cut_off:
                sent_while_cut.append(call.chat_id)

        sender._send_ledger.write = write_then_cut  # type: ignore[method-assign]
        bot_api.on_call = count
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        await sender.sweep()
        bot_api.on_call = None
        await asyncio.sleep(2.5)  # the database is back
        await sender.sweep()
    assert taken_at_cut, "the database was never cut"
    assert set(sent_while_cut) <= taken_at_cut, (sent_while_cut, taken_at_cut)
    per_chat = {c: sum("⏰" in call.text for call in bot_api.sent_to(c)) for c in chats}
    assert set(per_chat.values()) == {1}, per_chat


async def test_a_sweep_that_records_its_sends_once_the_database_is_back_says_it_is_back(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    proxy: TcpProxy,
    database_url: str,
    clock: FixedClock,
) -> None:
    """The database goes away mid-broadcast and comes back while the sends Telegram has
    wait to be recorded: once they are, the sweep ends saying the database is back (from
    the second engineer's review: it said so only at the next sweep)."""
    await load(database_url, TEST_EVENT, clock.now())
    chats = list(range(8701, 8721))
    async with start_bot(database_url=proxy.url_for(database_url), **QUIET) as app:
        await subscribed(bot_api, chats)
        dispatcher = app.bot_data.services.dispatcher
        dispatcher.batch_size = 10
        cut_after_reminders(bot_api, proxy, 3, restore_after=1.0)
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        first = await dispatcher.sweep()
        bot_api.on_call = None
        metrics = app.bot_data.services.metrics.exposition().decode()
    assert not proxy.cut_off
    assert first.sent >= 3  # recorded once the database was back
    assert dispatcher.database_available
    assert "summitbot_database_up 1.0" in metrics
