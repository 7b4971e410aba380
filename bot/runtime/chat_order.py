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

While the dispatcher sends a fan-out (batch after full batch of due reminders), fewer
updates run at once (:meth:`ChatOrderedUpdateProcessor.limit_running`): one event loop
runs both, and sixty-four busy updates would take most of its turns from the senders,
so deliveries would fall behind their pace. A few at a time still answer a steady
stream of users at once; only a burst waits a little longer.
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
# Tasks that wake waiting updates after the limit changed (kept until they ran).
_pending_wakeups: set[asyncio.Task[None]] = set()


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

    __slots__ = ("_active", "_limit", "_max_running", "_slot_freed", "_turns")

    def __init__(self, max_running: int) -> None:
        if max_running < 1:
            raise ValueError("max_running must be at least 1")
        super().__init__(max_running * (1 + WAITING_PER_RUNNING))
        self._max_running = max_running
        self._limit = max_running  # lower while a fan-out is sent
        self._active = 0
        self._slot_freed = asyncio.Condition()
        self._turns: dict[int, _ChatTurn] = {}

    @property
    def max_running(self) -> int:
        return self._max_running

    @property
    def running_limit(self) -> int:
        """How many updates may run at once now."""
        return self._limit

    @property
    def chats_in_progress(self) -> int:
        """Chats with an update running or waiting (for tests and /metrics)."""
        return len(self._turns)

    def limit_running(self, limit: int | None) -> None:
        """Let at most ``limit`` updates run at once from now on (those running go on);
        None: back to ``max_running``."""
        self._limit = self._max_running if limit is None else max(1, min(limit, self._max_running))
        task = asyncio.get_running_loop().create_task(self._wake_waiters())
        _pending_wakeups.add(task)
        task.add_done_callback(_pending_wakeups.discard)

    async def _wake_waiters(self) -> None:
        async with self._slot_freed:
            self._slot_freed.notify_all()

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
        async with self._slot_freed:  # first come, first served
            await self._slot_freed.wait_for(lambda: self._active < self._limit)
            self._active += 1
        try:
            await coroutine
        finally:
            async with self._slot_freed:
                self._active -= 1
                self._slot_freed.notify()

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


def _discard(coroutine: Awaitable[Any]) -> None:
    if inspect.iscoroutine(coroutine) and (
        inspect.getcoroutinestate(coroutine) == inspect.CORO_CREATED
    ):
        coroutine.close()
