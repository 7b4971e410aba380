"""Updates processed side by side, each chat's one at a time and in the order they came.

python-telegram-bot hands every update to its update processor; by default one update
runs at a time, so a burst of new users (a channel post's "Remind me", tapped by
hundreds within a minute) queued behind each other's database writes. Here up to
``max_running`` updates run at once. Updates of one chat (of one user, where there is
no chat: inline queries) still run one after another, in arrival order, so everything
that holds today for one chat still holds: a dialogue's answers are taken in turn, a
double-tapped button acts once and then finds its work done, two Saves run one after
the other.

Order is kept with a lock per chat, taken before a running slot: a chat whose updates
wait for its previous one holds no slot, so one busy chat cannot stall the others. A
task reaches its chat's lock in the order PTB started it (every wait before it is
first come, first served), and locks hand over in request order.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor

# Updates PTB accepts into processing beyond those running: waiting for their chat's
# earlier update or for a slot. Past that, PTB's own queue holds them.
WAITING_PER_RUNNING = 8


def ordering_key(update: object) -> int | None:
    """The chat whose updates ``update`` must follow (the user's own, outside a chat);
    None for updates that concern nobody in particular (a poll's results)."""
    if not isinstance(update, Update):
        return None
    chat = update.effective_chat
    if chat is not None:
        return chat.id
    user = update.effective_user
    return user.id if user is not None else None


class _ChatTurn:
    __slots__ = ("holders", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.holders = 0  # running or waiting; the turn is dropped at zero


class ChatOrderedUpdateProcessor(BaseUpdateProcessor):
    """Up to ``max_running`` updates at once, one at a time per chat, in arrival order."""

    __slots__ = ("_max_running", "_running", "_turns")

    def __init__(self, max_running: int) -> None:
        if max_running < 1:
            raise ValueError("max_running must be at least 1")
        super().__init__(max_running * (1 + WAITING_PER_RUNNING))
        self._max_running = max_running
        self._running = asyncio.Semaphore(max_running)
        self._turns: dict[int, _ChatTurn] = {}

    @property
    def max_running(self) -> int:
        return self._max_running

    @property
    def chats_in_progress(self) -> int:
        """Chats with an update running or waiting (for tests and /metrics)."""
        return len(self._turns)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = ordering_key(update)
        if key is None:
            await self._run(coroutine)
            return
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = _ChatTurn()
        turn.holders += 1
        try:
            async with turn.lock:
                await self._run(coroutine)
        except BaseException:
            _discard(coroutine)  # cancelled before it ran: no "never awaited" warning
            raise
        finally:
            turn.holders -= 1
            if turn.holders == 0:
                del self._turns[key]

    async def _run(self, coroutine: Awaitable[Any]) -> None:
        async with self._running:
            await coroutine

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


def _discard(coroutine: Awaitable[Any]) -> None:
    if inspect.iscoroutine(coroutine) and (
        inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED
    ):
        coroutine.close()
