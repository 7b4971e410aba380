"""The delivery rate limiter: Telegram's overall limit holds from a broadcast's first
second, however many messages are in flight."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from bot.delivery.dispatcher import delivery_rate, messages_in_flight
from bot.delivery.ratelimit import DeliveryRateLimiter
from tests.conftest import make_settings


async def sent_in_first_second(paid: bool, round_trip: float) -> list[float]:
    """When each message went, with every sender the dispatcher would run sending one
    message a round trip to Telegram for a second and a half."""
    settings = make_settings("sqlite://", "http://x/bot", allow_paid_broadcast=paid)
    limiter = DeliveryRateLimiter(overall_per_second=delivery_rate(settings))
    chats = itertools.count(1)
    start = time.monotonic()
    sent: list[float] = []

    async def sender() -> None:
        while time.monotonic() - start < 1.5:
            await limiter.acquire(next(chats))
            sent.append(time.monotonic() - start)
            await asyncio.sleep(round_trip)

    senders = messages_in_flight(settings)
    await asyncio.wait_for(asyncio.gather(*(sender() for _ in range(senders))), timeout=10)
    return sent


@pytest.mark.parametrize(("paid", "telegram_limit"), [(True, 1000), (False, 30)])
async def test_no_second_of_a_broadcast_goes_over_telegrams_overall_limit(
    paid: bool, telegram_limit: int
) -> None:
    """With a second's worth let through at once, the first second of a paid broadcast
    (238 in flight, answers in 100 ms) carried 1,898 messages."""
    sent = await sent_in_first_second(paid, round_trip=0.1 if paid else 0.01)
    busiest = max(
        sum(1 for moment in sent if begin <= moment < begin + 1.0) for begin in (0.0, 0.25, 0.5)
    )
    assert busiest <= telegram_limit
    assert busiest >= 0.9 * telegram_limit * 0.95  # and still close to the rate


async def test_a_rate_under_twenty_a_second_still_lets_one_message_through_at_a_time() -> None:
    """A twentieth of a second's worth of 2 a second is less than a message: the burst is
    one, and the rate still holds."""
    limiter = DeliveryRateLimiter(overall_per_second=2.0)
    start = time.monotonic()
    for chat_id in (1, 2, 3):
        await limiter.acquire(chat_id)
    assert 0.9 <= time.monotonic() - start < 1.5
