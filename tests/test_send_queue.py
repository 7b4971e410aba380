"""The dispatcher's send queue: each delivery's renewal begun as it is taken (with the
sender's last mark, when taken then), the next batch claimed while this one is sent
(PostgreSQL at half a batch, SQLite as its last delivery is taken)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Literal

import pytest

from bot.delivery.send_queue import SendQueue
from storage.claims import ClaimedDelivery
from storage.models import DeliveryKind

WHEN = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)

# What the ledger logs: each claim (the ids of its batch, or None when there was none
# left), each renewal and each send (a delivery's id).
LogEntry = tuple[Literal["claim"], list[int] | None] | tuple[Literal["renew", "send"], int]


def deliveries(first: int, count: int) -> list[ClaimedDelivery]:
    return [
        ClaimedDelivery(i, 1000 + i, "sco-summit", DeliveryKind.REMINDER, 60, WHEN, 0, None)
        for i in range(first, first + count)
    ]


class Ledger:
    """Stand-in claims and renewals, with a log of what happened in what order."""

    def __init__(self, batches: list[int], *, taken_over: frozenset[int] = frozenset()) -> None:
        self.batches = list(batches)
        self.next_id = 1
        self.taken_over = taken_over
        self.log: list[LogEntry] = []
        self.done: list[str] = []
        self.claim_error: Exception | None = None
        self.renew_error: Exception | None = None

    async def claim(self) -> tuple[list[ClaimedDelivery], str] | None:
        await asyncio.sleep(0.001)
        if self.claim_error is not None:
            raise self.claim_error
        if not self.batches:
            self.log.append(("claim", None))
            return None
        count = self.batches.pop(0)
        batch = deliveries(self.next_id, count)
        self.next_id += count
        name = f"batch of {batch[0].id}"
        self.log.append(("claim", [d.id for d in batch]))
        return batch, name

    def renew(self, delivery_id: int) -> asyncio.Future[bool]:
        self.log.append(("renew", delivery_id))
        return asyncio.ensure_future(self._renewed(delivery_id))

    async def _renewed(self, delivery_id: int) -> bool:
        await asyncio.sleep(0.001)
        if self.renew_error is not None:
            raise self.renew_error
        return delivery_id not in self.taken_over

    def queue(self, *, claim_ahead: int = 1, fresh_for: float = 60.0) -> SendQueue[str]:
        return SendQueue(
            self.claim,
            self.renew,
            fresh_for=fresh_for,
            claim_ahead=claim_ahead,
            claiming=lambda: True,
            batch_done=self.done.append,
        )


async def send_all(
    queue: SendQueue[str], ledger: Ledger, senders: int, sent: list[int] | None = None
) -> list[int]:
    """Senders as the dispatcher runs them: take (the next one as the last is marked),
    renew unless renewed with the last mark, 'send', 'mark', finish."""
    sent = [] if sent is None else sent

    async def sender() -> None:
        upcoming = None
        while True:
            taken, upcoming = upcoming, None
            if taken is None and (taken := await queue.take()) is None:
                return
            delivery, batch = taken
            renewed = queue.renewed(delivery.id) or ledger.renew(delivery.id)
            if await renewed:
                ledger.log.append(("send", delivery.id))
                await asyncio.sleep(0.002)
                sent.append(delivery.id)
                upcoming = queue.take_now()  # as the mark is submitted
                await asyncio.sleep(0.001)  # the mark
            queue.finished(delivery, batch)

    await asyncio.wait_for(asyncio.gather(*(sender() for _ in range(senders))), timeout=5)
    await queue.close()
    return sent


async def test_each_claim_is_renewed_once_and_never_before_a_sender_takes_it_up() -> None:
    ledger = Ledger([6])
    sent = await send_all(ledger.queue(), ledger, senders=2)
    assert sorted(sent) == list(range(1, 7))
    renewals = [entry[1] for entry in ledger.log if entry[0] == "renew"]
    assert sorted(renewals) == list(range(1, 7))
    # With two senders, at most two renewals are ever ahead of the sends.
    ahead = 0
    for kind, _ in ledger.log:
        ahead += {"renew": 1, "send": -1}.get(kind, 0)
        assert ahead <= 2


async def test_take_now_takes_only_what_is_waiting_and_begins_its_renewal() -> None:
    ledger = Ledger([2])
    queue = ledger.queue()
    assert queue.take_now() is None  # nothing claimed yet: take() claims
    first = await queue.take()
    second = queue.take_now()
    assert first is not None and second is not None
    assert queue.take_now() is None
    assert [first[0].id, second[0].id] == [1, 2]
    assert queue.renewed(1) is None  # taken by take(): renewed right before its send
    assert ledger.log[-1] == ("renew", 2)
    renewal = queue.renewed(2)
    assert renewal is not None and await renewal is True


async def test_a_claim_no_longer_ours_is_not_sent() -> None:
    ledger = Ledger([6], taken_over=frozenset({3}))
    sent = await send_all(ledger.queue(), ledger, senders=3)
    assert sorted(sent) == [1, 2, 4, 5, 6]


async def test_a_renewal_older_than_fresh_for_or_failed_must_be_made_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = Ledger([4])
    queue = ledger.queue(fresh_for=0.05)
    assert await queue.take() is not None
    taken = [queue.take_now(), queue.take_now()]
    first, second = (t[0] for t in taken if t is not None)
    renewed = queue.renewed(first.id)
    assert renewed is not None and await renewed
    assert queue.renewed(first.id) is None  # each renewal is used once
    await asyncio.sleep(0.01)  # the second's renewal has ended too
    # The second waited (a rate limiter, a 429) longer than fresh_for after its renewal.
    later = time.monotonic() + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert queue.renewed(second.id) is None
    monkeypatch.undo()
    ledger.renew_error = ConnectionError("database went away")
    third = queue.take_now()
    assert third is not None
    await asyncio.sleep(0.01)  # the renewal failed
    assert queue.renewed(third[0].id) is None  # renewed again, alone, when sent


async def test_with_claim_ahead_the_next_batch_is_claimed_while_this_one_is_sent() -> None:
    ledger = Ledger([5, 5, 2])
    sent = await send_all(ledger.queue(claim_ahead=5), ledger, senders=2)
    assert sorted(sent) == list(range(1, 13))
    claims = [i for i, (kind, _) in enumerate(ledger.log) if kind == "claim"]
    # The second batch was claimed before the first was out.
    assert claims[1] < ledger.log.index(("send", 5))
    assert ledger.done == ["batch of 1", "batch of 6", "batch of 11"]  # each once, once sent


async def test_claiming_ahead_of_one_claims_as_the_last_delivery_is_taken() -> None:
    """SQLite: a claim beside the ledger's writes waits for the lock, so the next batch is
    claimed only once nothing of this one waits, while its last sends are on their way
    (not after they are all back, which left the senders idle for a round trip)."""
    ledger = Ledger([5, 5])
    sent: list[int] = []
    claimed_with: list[tuple[int, int]] = []  # (deliveries taken, sent) at each claim
    claim = ledger.claim

    async def claim_recording() -> tuple[list[ClaimedDelivery], str] | None:
        # Each delivery's renewal is logged in the turn it is taken.
        taken = sum(1 for kind, _ in ledger.log if kind == "renew")
        claimed_with.append((taken, len(sent)))
        return await claim()

    ledger.claim = claim_recording  # type: ignore[method-assign]
    await send_all(ledger.queue(claim_ahead=1), ledger, senders=3, sent=sent)
    assert sorted(sent) == list(range(1, 11))
    # Each claim came as the last delivery before it was taken, before it was sent.
    assert [at_taken for at_taken, _ in claimed_with] == [0, 5, 10]
    assert all(at_sent < at_taken for at_taken, at_sent in claimed_with[1:])
    with pytest.raises(ValueError):
        ledger.queue(claim_ahead=0)


async def test_a_failed_claim_ends_the_queue_and_is_kept_for_the_sweep() -> None:
    ledger = Ledger([4, 4])
    sent: list[int] = []

    async def fail_after_first_batch() -> tuple[list[ClaimedDelivery], str] | None:
        if ledger.next_id > 1:
            raise ConnectionError("database went away")
        return await Ledger.claim(ledger)

    ledger.claim = fail_after_first_batch  # type: ignore[method-assign]
    queue = ledger.queue(claim_ahead=4)
    await send_all(queue, ledger, senders=2, sent=sent)
    assert sorted(sent) == [1, 2, 3, 4]  # what was claimed is still sent
    assert isinstance(queue.error, ConnectionError)


async def test_nothing_more_is_taken_once_claiming_stops() -> None:
    """Stopping, or the database gone: what still waits goes back with the worker's
    other claims, and its batch is reported done when the queue closes."""
    ledger = Ledger([3, 3])
    stopping = False

    def claiming() -> bool:
        return not stopping

    queue: SendQueue[str] = SendQueue(
        ledger.claim,
        ledger.renew,
        fresh_for=60.0,
        claim_ahead=1,
        claiming=claiming,
        batch_done=ledger.done.append,
    )
    first = await queue.take()
    assert first is not None
    stopping = True  # asked to stop while the first batch is out
    assert queue.take_now() is None
    assert await asyncio.wait_for(queue.take(), timeout=1) is None
    queue.finished(*first)
    assert ledger.done == []  # two of its deliveries were never taken
    await queue.close()
    assert ledger.done == ["batch of 1"]
    assert [kind for kind, _ in ledger.log].count("claim") == 1
