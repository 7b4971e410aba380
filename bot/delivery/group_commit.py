"""Group commit: many small writes of the same kind, made as few transactions.

The dispatcher renews claims before their sends and records each outcome right
after it; with 16 messages in flight those are hundreds of one-row transactions a
second, and the database's per-transaction cost, not Telegram, set the pace. Here the
first write starts at once, after one turn of the event loop; writes that arrive while
it runs wait for it to end and then go together in the next transaction. Nobody waits
for a timer, and each caller returns only when its own write is committed, so the
guarantees are those of writing one by one.

The one turn lets in the writes of everything that became ready at the same moment
(the answers to several sends read from one poll of the sockets): groups are larger,
and a transaction fewer is CPU saved on both sides of aiosqlite's thread.

On PostgreSQL two writes run at once (``writers``), each on its own connection: with one,
a "sent" mark waited for the write before it to end as well as for its own, and its
sender waited with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class GroupCommit(Generic[ItemT, ResultT]):
    """``write`` takes the items waiting together and returns one result per item, in order.

    With ``writers`` above one, that many writes may run at once (each needs a connection
    of its own): a write arriving while all run waits for the first to end, as with one.
    """

    def __init__(
        self,
        write: Callable[[list[ItemT]], Awaitable[Sequence[ResultT]]],
        *,
        writers: int = 1,
    ) -> None:
        self._write = write
        self._max_writers = max(writers, 1)
        self._waiting: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._writers: set[asyncio.Task[None]] = set()
        self._running = 0  # writers not yet returned (a done task leaves the set later)
        # A writer is letting one turn pass and then takes everything waiting.
        self._gathering = False

    async def submit(self, item: ItemT) -> ResultT:
        """Write ``item`` with whatever else is waiting; its result once committed."""
        return await self.enqueue(item)

    def enqueue(self, item: ItemT) -> asyncio.Future[ResultT]:
        """``submit`` without waiting: items enqueued in the same turn of the event loop
        go in the same write."""
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if not self._gathering and self._running < self._max_writers:
            self._gathering = True
            self._running += 1
            writer = asyncio.create_task(self._write_waiting())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return future

    async def settled(self) -> None:
        """Return once nothing is waiting or being written (even if the callers that
        submitted it were cancelled meanwhile: what they submitted is still written)."""
        while writing := {writer for writer in self._writers if not writer.done()}:
            await asyncio.wait(writing)

    async def _write_waiting(self) -> None:
        try:
            await self._write_groups()
        finally:
            self._running -= 1

    async def _write_groups(self) -> None:
        while True:  # gathering (set by whoever started this writer or by itself below)
            try:
                await asyncio.sleep(0)  # one turn: what is ready now joins this group
            except BaseException:
                self._gathering = False  # (what waits stays for the next writer)
                raise
            group, self._waiting = self._waiting, []
            self._gathering = False
            try:
                results = await self._write([item for item, _ in group])
            except Exception as exc:  # every caller in this group gets the error
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)
            if not self._waiting or self._gathering:
                return  # nothing left, or another writer takes it
            self._gathering = True
