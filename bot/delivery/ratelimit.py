"""Keeping deliveries within Telegram's flood limits.

Telegram allows about 30 messages a second overall, 20 a minute in one group or
channel, and about one a second in one private chat. Deliveries keep under
those (overall a little lower, leaving room for replies to people), and all
sending pauses when Telegram answers 429 with ``retry_after``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from aiolimiter import AsyncLimiter

MAX_TRACKED_CHATS = 10_000
# The overall limit lets this much of a second's worth go at once. A whole second's worth
# (aiolimiter's usual bucket) let a broadcast send twice its rate in its first second:
# with 238 paid messages in flight and Telegram answering in 100 ms, 1,898 messages.
# A twentieth keeps any one second within 1.05x
# the rate, under Telegram's 1,000 for paid broadcasts at 950 and its 30 at 25.
OVERALL_BURST_SECONDS = 0.05


class DeliveryRateLimiter:
    def __init__(
        self,
        overall_per_second: float = 25.0,
        private_per_second: float = 1.0,
        group_per_minute: float = 20.0,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self._overall = _smooth(overall_per_second)
        self._private_rate = private_per_second
        self._group_rate = group_per_minute
        self._chats: OrderedDict[int, AsyncLimiter] = OrderedDict()
        self._paused_until = 0.0

    def _chat_limiter(self, chat_id: int) -> AsyncLimiter:
        limiter = self._chats.get(chat_id)
        if limiter is None:
            # Negative ids are groups, supergroups and channels.
            limiter = (
                AsyncLimiter(self._group_rate, 60)
                if chat_id < 0
                else AsyncLimiter(self._private_rate, 1)
            )
            self._chats[chat_id] = limiter
            if len(self._chats) > MAX_TRACKED_CHATS:
                self._chats.popitem(last=False)
        else:
            self._chats.move_to_end(chat_id)
        return limiter

    def pause(self, seconds: float) -> None:
        """Telegram said 429: nobody sends for ``seconds``."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def acquire(self, chat_id: int) -> None:
        """Wait until a message to ``chat_id`` keeps within every limit."""
        # The deadline can move while waiting (another 429), hence the loop.
        while (wait := self._paused_until - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        if not self.enabled:
            return
        await self._chat_limiter(chat_id).acquire()
        await self._overall.acquire()


def _smooth(per_second: float) -> AsyncLimiter:
    """``per_second``, with a burst of ``OVERALL_BURST_SECONDS`` of it (at least one)."""
    burst = max(per_second * OVERALL_BURST_SECONDS, 1.0)
    return AsyncLimiter(burst, burst / per_second)
