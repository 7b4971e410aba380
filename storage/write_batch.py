"""SQLite's writes in this process: taken in turn, committed together.

SQLite has one writer at a time per file. Left to itself, a writer that finds the file
locked sleeps in SQLite's busy handler (1, 2, 5 … 100 ms at a time) and tries again, so
a burst of small interactive writes (first contacts, subscriptions, settings) queued
behind each other in ever longer sleeps, and each paid its own commit. Here every write
of the process queues in the event loop instead, first come first served, and writes
that queue together share one transaction:

- a caller of ``transaction()`` takes its turn on the batch's session, inside a
  SAVEPOINT of its own: when its block raises, only its own changes are rolled back
  and it gets the error at once;
- when a block ends, the commit is queued behind the callers waiting at that moment:
  they join the same transaction; who comes later starts the next one;
- a caller returns only once the transaction holding its changes is committed (SQLite
  in WAL mode with ``synchronous=FULL``: on disk), so "done" means what it did before:
  the change survives a crash or a power cut. A failed commit is every member's error;
- a batch is closed early once it holds ``max_members`` blocks, has held the file for
  ``max_hold_seconds``, or another writer of this process (the send ledger) waits for
  the file: a broadcast's "sent" marks never wait behind a long burst, and they are
  handed the file before a batch that waits for it (``FileWriteGate``).

Other processes (a CLI command beside the bot) still meet SQLite's busy timeout.
PostgreSQL needs none of this: its writers run side by side, each in its own
transaction.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

MAX_MEMBERS = 32
MAX_HOLD_SECONDS = 0.015

# Set while a task runs inside a batch member: a second ``transaction()`` from the same
# task would wait for its own turn forever.
_inside_member: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "summitbot_inside_sqlite_write", default=False
)


class NestedWriteError(RuntimeError):
    """A write transaction was opened inside another one (on SQLite this would wait for
    itself)."""


class FileWriteGate:
    """The right to write to the SQLite file, for one holder at a time.

    The batch of ``transaction()`` blocks holds it from BEGIN to COMMIT; the send
    ledger holds it for each of its one-statement writes, and asks to go ``first``:
    a waiting ledger write is handed the file before any waiting batch, so the marks
    of a fan-out take turns with a burst's batches one for one instead of queuing
    behind the next one (each batch is closed early while anyone waits). Among
    waiters of one kind, arrival order.
    """

    def __init__(self) -> None:
        self._held = False
        self._first: collections.deque[asyncio.Future[None]] = collections.deque()
        self._others: collections.deque[asyncio.Future[None]] = collections.deque()
        self.waiting = 0

    @asynccontextmanager
    async def held(self, *, first: bool = False) -> AsyncIterator[None]:
        await self.acquire(first=first)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, *, first: bool = False) -> None:
        if not self._held and not self._first and not self._others:
            self._held = True
            return
        turn = asyncio.get_running_loop().create_future()
        queue = self._first if first else self._others
        queue.append(turn)
        self.waiting += 1
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                # Handed the file just as the waiter was cancelled: hand it on.
                self.release()
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(turn)
            raise
        finally:
            self.waiting -= 1

    def release(self) -> None:
        """Hand the file to the next waiter (ledger writes first), or free it."""
        for queue in (self._first, self._others):
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._held = False


@dataclass(eq=False)
class _Batch:
    session: AsyncSession
    opened: float
    members: int = 0
    full: bool = False
    committed: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class BatchedWriter:
    """``transaction()`` for a SQLite file: blocks taking turns on shared transactions."""

    def __init__(
        self,
        new_session: Callable[[], AsyncSession],
        gate: FileWriteGate,
        *,
        max_members: int = MAX_MEMBERS,
        max_hold_seconds: float = MAX_HOLD_SECONDS,
    ) -> None:
        self._new_session = new_session
        self.loop = asyncio.get_running_loop()
        self.gate = gate
        self.max_members = max_members
        self.max_hold_seconds = max_hold_seconds
        self._turn = asyncio.Lock()
        self._batch: _Batch | None = None
        self._closers: set[asyncio.Task[None]] = set()
        # Figures for tests and benchmarks: transactions committed, blocks in them.
        self.commits = 0
        self.blocks_committed = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        if _inside_member.get():
            raise NestedWriteError("a write transaction inside another one")
        async with self._turn:
            batch = self._batch
            if batch is not None and (batch.full or self._should_close(batch)):
                # Shielded: the commit is everybody's, whatever becomes of this caller.
                await asyncio.shield(self._commit(batch))
                batch = None
            if batch is None:
                batch = self._batch = await self._open()
            token = _inside_member.set(True)
            try:
                async with batch.session.begin_nested():
                    yield batch.session
            finally:
                _inside_member.reset(token)
                batch.members += 1
                if self._should_close(batch):
                    batch.full = True
                # The commit waits behind whoever is queued now: they join this batch.
                if batch.members == 1:
                    self._close_later(batch)
        await asyncio.shield(batch.committed)

    def _should_close(self, batch: _Batch) -> bool:
        return (
            batch.members >= self.max_members
            or time.monotonic() - batch.opened >= self.max_hold_seconds
            or self.gate.waiting > 0
        )

    async def _open(self) -> _Batch:
        await self.gate.acquire()
        try:
            session = self._new_session()
            await session.begin()
            # BEGIN IMMEDIATE (storage/database.py) runs with the first statement; run it
            # now, so the file is ours before any block's statement.
            await session.connection()
        except BaseException:
            self.gate.release()
            raise
        return _Batch(session, time.monotonic())

    def _close_later(self, batch: _Batch) -> None:
        closer = asyncio.get_running_loop().create_task(self._close_in_turn(batch))
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)

    async def _close_in_turn(self, batch: _Batch) -> None:
        async with self._turn:
            await self._commit(batch)

    async def _commit(self, batch: _Batch) -> None:
        """Commit ``batch`` unless done already; every member learns the outcome."""
        if batch.committed.done():
            return
        if self._batch is batch:
            self._batch = None
        try:
            await batch.session.commit()
        except BaseException as exc:
            batch.committed.set_exception(exc)
            batch.committed.exception()  # members may all have gone: not "never retrieved"
            await _close_quietly(batch.session)
            if not isinstance(exc, Exception):
                raise
        else:
            self.commits += 1
            self.blocks_committed += batch.members
            batch.committed.set_result(None)
            await batch.session.close()
        finally:
            self.gate.release()

    async def settled(self) -> None:
        """Return once every batch begun is committed (or failed)."""
        while self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)


async def _close_quietly(session: AsyncSession) -> None:
    with contextlib.suppress(Exception):  # the connection is gone: nothing more to undo
        await session.close()
