"""Claimed deliveries on their way to the dispatcher's senders.

A sender takes the next delivery, renders it, has its claim renewed, sends it and waits
for its "sent" mark. The mark bounds what a crash can send twice; the renewal, right
before the send, keeps a claim another replica has taken over (its lease ran out), a
row deleted meanwhile (``/forgetme``) and every send while the database is unreachable
from going out. Two more database trips would stand between a sender and its next
send; neither does:

- **the renewal rides with the last mark.** A sender takes its next delivery
  (``take_now``) as it records the last one, and the renewal goes to the group commit
  in the same turn as the mark: one write, one wait, and the send follows at once. A
  renewal counts only if the send follows within ``fresh_for`` of it; after a wait for
  the rate limiter or a 429 it is made again, alone, right before the send;
- **the next batch is claimed ahead.** On PostgreSQL it is claimed while the senders
  work through this one. SQLite has one writer at a time, and a claim beside the
  ledger's writes makes each of them wait for the lock (in sleeps of a millisecond and
  more), so there the next batch is claimed only as the last delivery of this one is
  taken: the claim runs while that batch's last messages are on their way, and the
  senders do not sit idle for a round trip at each batch's end.

Once claiming stops (stopping, or the database gone), what is still waiting is left to
go back with this worker's other claims.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from storage.claims import ClaimedDelivery
from storage.database import is_unavailable

BatchT = TypeVar("BatchT")

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Renewal:
    """The write renewing a delivery's claim, and when it ended."""

    ours: asyncio.Future[bool]
    finished_at: float | None = None


@dataclass(eq=False)
class _Unfinished(Generic[BatchT]):
    batch: BatchT
    left: int


class SendQueue(Generic[BatchT]):
    """Deliveries claimed batch by batch, handed to the senders in order.

    ``claim`` returns the next batch's deliveries and what they share, or None once
    nothing is due; ``renew`` puts a renewal of a delivery's claim in the next ledger
    write (at once, without waiting) and returns whether it will be found still this
    worker's;
    ``claim_ahead``: the next batch is claimed once fewer deliveries than this wait;
    ``claiming`` says whether to go on (not while stopping or with the database away);
    ``batch_done`` is told when a batch is done with: every delivery finished, or the
    queue closed.
    """

    def __init__(
        self,
        claim: Callable[[], Awaitable[tuple[list[ClaimedDelivery], BatchT] | None]],
        renew: Callable[[int], asyncio.Future[bool]],
        *,
        fresh_for: float,
        claim_ahead: int,
        claiming: Callable[[], bool],
        batch_done: Callable[[BatchT], None],
    ) -> None:
        self._claim = claim
        self._renew = renew
        self._fresh_for = fresh_for
        # Claim the next batch once fewer deliveries than this wait (1: as the last is
        # taken).
        if claim_ahead < 1:
            raise ValueError("claim_ahead must be at least 1")
        self._claim_ahead = claim_ahead
        self._claiming = claiming
        self._batch_done = batch_done
        self._waiting: collections.deque[tuple[ClaimedDelivery, BatchT]] = collections.deque()
        self._renewals: dict[int, _Renewal] = {}
        self._unfinished: dict[int, _Unfinished[BatchT]] = {}  # by id(batch)
        self._in_progress = 0
        self._claim_task: asyncio.Task[None] | None = None
        self._claim_ended: asyncio.Future[None] | None = None  # for senders waiting on it
        self._exhausted = False
        self.error: BaseException | None = None  # a claim's, raised after the senders end

    async def take(self) -> tuple[ClaimedDelivery, BatchT] | None:
        """The next delivery and its batch (to be renewed right before its send); None
        once nothing more is to be sent."""
        while not self._waiting:
            if self._exhausted:
                return None
            if self._claim_task is None:
                self._start_claim()
                continue
            if self._claim_ended is None:  # a claim is on the way
                self._claim_ended = asyncio.get_running_loop().create_future()
            await asyncio.wait({self._claim_ended})  # (a waiter cancelled cancels no other)
        return self._pop()

    def take_now(self) -> tuple[ClaimedDelivery, BatchT] | None:
        """The next delivery if one is waiting (None if not: ``take`` waits), its renewal
        put in the ledger's next write: called as the sender's last mark is submitted,
        the two are one write."""
        taken = self._pop()
        if taken is not None:
            delivery_id = taken[0].id
            renewal = _Renewal(self._renew(delivery_id))
            renewal.ours.add_done_callback(lambda done: _finished(renewal, done))
            self._renewals[delivery_id] = renewal
        return taken

    def _pop(self) -> tuple[ClaimedDelivery, BatchT] | None:
        if not self._waiting:
            return None
        if not self._claiming():
            self._exhausted = True
            return None
        delivery, batch = self._waiting.popleft()
        self._in_progress += 1
        if self._claim_task is None and len(self._waiting) < self._claim_ahead:
            self._start_claim()
        return delivery, batch

    def finished(self, delivery: ClaimedDelivery, batch: BatchT) -> None:
        """``delivery`` is done with (sent and recorded, or not to be sent)."""
        self._in_progress -= 1
        self._renewals.pop(delivery.id, None)
        unfinished = self._unfinished[id(batch)]
        unfinished.left -= 1
        if not unfinished.left:
            del self._unfinished[id(batch)]
            self._batch_done(batch)

    def renewed(self, delivery_id: int) -> Awaitable[bool] | None:
        """The renewal begun when ``take_now`` took ``delivery_id``, if it is still on the
        way or ended within ``fresh_for`` (and did not fail); None: it must be renewed
        now. Each is used once."""
        renewal = self._renewals.pop(delivery_id, None)
        if renewal is None:
            return None
        if renewal.finished_at is not None and (
            renewal.ours.cancelled()
            or renewal.ours.exception() is not None
            or time.monotonic() - renewal.finished_at > self._fresh_for
        ):
            return None
        return renewal.ours

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
                    self._unfinished[id(batch)] = _Unfinished(batch, len(deliveries))
                    self._waiting.extend((delivery, batch) for delivery in deliveries)
                else:
                    self._batch_done(batch)
        finally:
            self._claim_task = None
            self._wake_waiting()

    async def close(self) -> None:
        """The senders have ended: stop a claim still on the way (the sweep cut short;
        what it claimed, if it commits, goes back at the next sweep with this worker's
        other claims), and report the batches left unfinished as done."""
        task = self._claim_task
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        self._waiting.clear()
        unfinished, self._unfinished = self._unfinished, {}
        for left in unfinished.values():
            self._batch_done(left.batch)


def _finished(renewal: _Renewal, done: asyncio.Future[bool]) -> None:
    renewal.finished_at = time.monotonic()
    if done.cancelled():
        return
    error = done.exception()  # retrieved: a delivery waiting for it gets it from ``ours``
    if error is not None and not is_unavailable(error):
        log.error("renewing a claim failed", exc_info=error)
