"""Claimed deliveries on their way to the dispatcher's senders.

A sender takes the next delivery, renders it, renews its claim, sends it and waits for
its "sent" mark: the mark bounds what a crash can send twice, but the other database
trips need not stand between a sender and its next send. Here they happen ahead of it:

- **the next batch is claimed while the senders work through this one**, so no sender
  waits for a claim at each batch's end. That holds on PostgreSQL. SQLite has one
  writer at a time, and a claim beside the ledger's writes would only make each of them
  wait for the lock (in sleeps of a millisecond and more), so there a batch is claimed
  when the last one is done, as before;
- **claims are renewed a chunk ahead**: when fewer than ``ahead`` of the deliveries
  waiting have their renewal on the way, the next ``ahead`` are renewed in one write.
  A renewal is what keeps a claim from being sent by two replicas (another takes it
  over only once it is older than the lease) and a row deleted meanwhile (``/forgetme``)
  from being sent at all; renewing a few deliveries before the send instead of right
  before it keeps both, and a renewal older than ``fresh_for`` by the time its delivery
  is sent (a sender held back by the rate limiter or a 429) is made again, alone.

In the PostgreSQL fan-out benchmark the senders had spent two thirds of their time on
these trips (claims, renewals and marks at about 2 ms each, against 2.3 ms for a send).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from storage.deliveries import ClaimedDelivery

BatchT = TypeVar("BatchT")


@dataclass(eq=False)
class _ChunkRenewal:
    """One write renewing the claims of a chunk of deliveries."""

    ours: asyncio.Future[frozenset[int]]
    finished_at: float | None = None


class SendQueue(Generic[BatchT]):
    """Deliveries claimed batch by batch, handed to the senders in order.

    ``claim`` returns the next batch's deliveries and what they share, or None once
    nothing is due; ``renew`` renews the given claims and returns those still this
    worker's; ``claiming`` says whether another batch may be claimed now (not while
    stopping or with the database away); ``batch_done`` is told when every delivery of
    a batch is finished.
    """

    def __init__(
        self,
        claim: Callable[[], Awaitable[tuple[list[ClaimedDelivery], BatchT] | None]],
        renew: Callable[[tuple[int, ...]], Awaitable[frozenset[int]]],
        *,
        ahead: int,
        fresh_for: float,
        claim_ahead: int | None,
        claiming: Callable[[], bool],
        batch_done: Callable[[BatchT], None],
    ) -> None:
        self._claim = claim
        self._renew = renew
        self._ahead = max(ahead, 1)
        self._fresh_for = fresh_for
        # Claim the next batch once fewer deliveries than this wait; None: once all of
        # the last batch are finished.
        self._claim_ahead = claim_ahead
        self._claiming = claiming
        self._batch_done = batch_done
        self._waiting: collections.deque[tuple[ClaimedDelivery, BatchT]] = collections.deque()
        self._renewal_requested = 0  # of the waiting deliveries, from the front
        self._renewals: dict[int, _ChunkRenewal] = {}
        self._unfinished: dict[int, int] = {}  # id(batch) → its deliveries not finished
        self._in_progress = 0
        self._claim_task: asyncio.Task[None] | None = None
        self._claim_ended: asyncio.Future[None] | None = None  # for senders waiting on it
        self._exhausted = False
        self.error: BaseException | None = None  # a claim's, raised after the senders end

    async def take(self) -> tuple[ClaimedDelivery, BatchT] | None:
        """The next delivery and its batch; None once nothing more is to be sent."""
        while not self._waiting:
            if self._exhausted:
                return None
            if self._claim_task is None and (
                self._in_progress == 0 or self._claim_ahead is not None
            ):
                self._start_claim()
                continue
            # A claim is on the way, or (SQLite) begins when the last delivery is finished.
            if self._claim_ended is None:
                self._claim_ended = asyncio.get_running_loop().create_future()
            await asyncio.wait({self._claim_ended})  # (a waiter cancelled cancels no other)
        self._renew_ahead()
        delivery, batch = self._waiting.popleft()
        self._renewal_requested -= 1
        self._in_progress += 1
        if (
            self._claim_ahead is not None
            and self._claim_task is None
            and len(self._waiting) < self._claim_ahead
        ):
            self._start_claim()
        return delivery, batch

    def finished(self, delivery: ClaimedDelivery, batch: BatchT) -> None:
        """``delivery`` is done with (sent and recorded, or not to be sent)."""
        self._in_progress -= 1
        self._renewals.pop(delivery.id, None)
        left = self._unfinished[id(batch)] - 1
        if left:
            self._unfinished[id(batch)] = left
        else:
            del self._unfinished[id(batch)]
            self._batch_done(batch)
        if self._in_progress == 0 and not self._waiting and self._claim_task is None:
            self._start_claim()  # (SQLite) the senders waiting in take() go on with it

    def renewed_ahead(self, delivery_id: int) -> Awaitable[frozenset[int]] | None:
        """The renewal made ahead for ``delivery_id``, if one is on the way or younger than
        ``fresh_for``; None: it must be renewed now. Each is used once."""
        renewal = self._renewals.pop(delivery_id, None)
        if renewal is None:
            return None
        if renewal.finished_at is not None and (
            time.monotonic() - renewal.finished_at > self._fresh_for
        ):
            return None
        return renewal.ours

    def _renew_ahead(self) -> None:
        if self._renewal_requested >= min(self._ahead, len(self._waiting)):
            return
        start = self._renewal_requested
        end = min(start + self._ahead, len(self._waiting))
        chunk = tuple(self._waiting[i][0].id for i in range(start, end))
        renewal = _ChunkRenewal(asyncio.ensure_future(self._renew(chunk)))
        renewal.ours.add_done_callback(lambda done: _finished(renewal, done))
        for delivery_id in chunk:
            self._renewals[delivery_id] = renewal
        self._renewal_requested += len(chunk)

    def _start_claim(self) -> None:
        if self._exhausted:
            return
        if not self._claiming():
            self._exhausted = True
            self._wake_waiting()
            return
        self._claim_task = asyncio.create_task(self._claim_next())

    def _wake_waiting(self) -> None:
        ended, self._claim_ended = self._claim_ended, None
        if ended is not None:
            ended.set_result(None)

    async def _claim_next(self) -> None:
        try:
            claimed = await self._claim()
        except Exception as exc:
            self.error = exc
            self._exhausted = True
        except BaseException:
            self._exhausted = True
            raise
        else:
            if claimed is None:
                self._exhausted = True
            else:
                deliveries, batch = claimed
                if deliveries:
                    self._unfinished[id(batch)] = len(deliveries)
                    self._waiting.extend((delivery, batch) for delivery in deliveries)
                else:
                    self._batch_done(batch)
        finally:
            self._claim_task = None
            self._wake_waiting()

    async def close(self) -> None:
        """Stop a claim still on the way (the sweep cut short): what it claimed, if it
        commits, goes back at the next sweep with this worker's other claims."""
        task = self._claim_task
        if task is not None:
            task.cancel()
            await asyncio.wait({task})


def _finished(renewal: _ChunkRenewal, done: asyncio.Future[frozenset[int]]) -> None:
    renewal.finished_at = time.monotonic()
    if not done.cancelled():
        done.exception()  # retrieved: each delivery waiting for it gets it from ``ours``
