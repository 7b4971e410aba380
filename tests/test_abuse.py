"""Floods, repeated requests and /forgetme, end to end."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from bot.abuse import FloodGuard, ReplyCache, cache_key
from bot.clock import FixedClock
from bot.presentation.text import Reply
from storage.database import Database
from storage.models import Chat, Delivery, Subscription
from storage.queries import EventFilter
from storage.views import EventPage
from tests.botapi import LocalBotApi
from tests.conftest import StartBot
from tests.factories import QUIET, START, TEST_EVENT, load, plain
from tests.test_reminders import dispatcher


def test_the_flood_guard_is_a_sliding_window_per_user() -> None:
    guard = FloodGuard(limit=3, window=60)
    assert [guard.allow(1, now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert guard.allow(2, now=3)  # someone else is not slowed
    assert guard.allow(1, now=60.5)  # the first hit left the window
    assert guard.should_warn(1, now=3) and not guard.should_warn(1, now=4)


def test_the_reply_cache_keeps_read_only_replies_briefly() -> None:
    cache = ReplyCache(ttl=30)
    key = cache_key(5, "/upcoming")
    assert key is not None
    cache.put(key, Reply("x"), now=0)
    assert cache.get(key, now=29) == Reply("x")
    assert cache.get(key, now=31) is None
    assert cache_key(5, "/subscribe sco") is None  # changes state
    assert cache_key(5, "sco") is None  # plain text may answer a dialogue's question


async def test_a_flood_from_one_user_is_cut_off_and_others_are_served(
    bot_api: LocalBotApi, start_bot: StartBot
) -> None:
    async with start_bot(**QUIET, requests_per_minute=5):
        for number in range(12):
            bot_api.message(f"/chairs 20{10 + number}", chat_id=7100)
        other = await bot_api.reply_to(bot_api.message("/chairs 2024", chat_id=7101))
        await bot_api.wait_for(
            lambda c: c.method == "sendMessage" and c.chat_id == 7100 and "Too many" in c.text
        )
        await asyncio.sleep(0.3)
    answered = [c for c in bot_api.sent_to(7100) if "Who chaired" in c.text]
    warnings = [c for c in bot_api.sent_to(7100) if "Too many" in c.text]
    assert len(answered) == 5
    assert len(warnings) == 1
    assert "Who chaired what in 2024" in plain(other.text)


async def test_a_repeated_request_is_answered_from_the_cache(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    async with start_bot(**QUIET) as app:
        first = await bot_api.reply_to(bot_api.message("/upcoming", chat_id=7200))
        catalogue = app.bot_data.services.catalogue
        calls = 0
        original = catalogue.events

        async def counting(
            query: EventFilter, now: dt.datetime, *args: int, **kwargs: int
        ) -> EventPage:
            nonlocal calls
            calls += 1
            return await original(query, now, *args, **kwargs)

        catalogue.events = counting  # type: ignore[method-assign]  # a stand-in counting reads
        second = await bot_api.reply_to(bot_api.message("/upcoming", chat_id=7200))
    assert second.text == first.text
    assert calls == 0


@pytest.mark.usefixtures("bot")
async def test_forgetme_really_deletes_the_chats_data(
    bot_api: LocalBotApi, database_url: str
) -> None:
    await bot_api.reply_to(bot_api.message("/subscribe sco", chat_id=7300))
    await bot_api.reply_to(bot_api.message("/tz Berlin", chat_id=7300))
    asked = await bot_api.reply_to(bot_api.message("/forgetme", chat_id=7300))
    kept = await bot_api.reply_to(
        bot_api.press(asked, asked.button("Keep")["callback_data"]), method="editMessageText"
    )
    assert "Nothing was deleted" in plain(kept.text)
    asked = await bot_api.reply_to(bot_api.message("/forgetme", chat_id=7300))
    done = await bot_api.reply_to(
        bot_api.press(asked, asked.button("Delete")["callback_data"]), method="editMessageText"
    )
    assert "everything about this chat is deleted" in plain(done.text)
    database = Database(database_url)
    async with database.sessions() as session:
        chat = await session.get(Chat, 7300)
        subscriptions = await session.scalar(
            select(func.count()).where(Subscription.chat_id == 7300)
        )
        deliveries = await session.scalar(select(func.count()).where(Delivery.chat_id == 7300))
    await database.dispose()
    assert chat is None
    assert subscriptions == 0 and deliveries == 0


async def test_a_forgotten_chat_gets_no_more_reminders(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    await load(database_url, TEST_EVENT, clock.now())
    async with start_bot(**QUIET) as app:
        await bot_api.reply_to(bot_api.message("/subscribe test-summit", chat_id=7400))
        asked = await bot_api.reply_to(bot_api.message("/forgetme", chat_id=7400))
        await bot_api.reply_to(
            bot_api.press(asked, asked.button("Delete")["callback_data"]),
            method="editMessageText",
        )
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        await dispatcher(app).sweep()
    assert [c for c in bot_api.sent_to(7400) if "⏰" in c.text] == []
