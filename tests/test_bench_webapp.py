"""The latency benchmark's Mini App requests: every kind is answered 200 by the real
routes over a small seeded catalogue (the benchmark itself is not run in the tests)."""

from __future__ import annotations

import random

from bench import webapp
from bench.catalogue import BENCH_NOW, Scale, seed
from bench.inprocess import InProcessBot, bench_settings
from bot.clock import FixedClock
from storage.database import Database


async def test_every_kind_of_mini_app_request_the_benchmark_times_is_answered(
    empty_database_url: str,
) -> None:
    database = Database(empty_database_url)
    try:
        seeded = await seed(database, Scale(organisations=4, events=120, chats=40))
    finally:
        await database.dispose()
    bot = InProcessBot(bench_settings(empty_database_url), FixedClock(BENCH_NOW))
    async with bot.running():
        app = webapp.InProcessApp(bot.application, bot.clock)
        workload = webapp.AppWorkload(seeded, [seeded.followed_event_key], random.Random(1))
        for request in workload.warm_up()[:3]:
            assert await app.timed(request) > 0
        for kind, build in workload.builders().items():
            status, body = await app.call(build())
            assert status == 200, (kind, body[:200])
