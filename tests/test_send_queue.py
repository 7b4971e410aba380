"""The dispatcher's send queue: claims renewed a chunk ahead of the senders, the next
batch claimed while this one is sent (PostgreSQL) or once it is done (SQLite)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from bot.send_queue import SendQueue
from storage.deliveries import ClaimedDelivery
from storage.models import DeliveryKind

WHEN = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)


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
        self.log: list[tuple[str, object]] = []
        self.done: list[str] = []
        self.claim_error: Exception | None = None

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

    async def renew(self, ids: tuple[int, ...]) -> frozenset[int]:
        self.log.append(("renew", ids))
        await asyncio.sleep(0.001)
        return frozenset(ids) - self.taken_over

    def queue(self, *, ahead: int = 4, claim_ahead: int | None = None) -> SendQueue[str]:
        return SendQueue(
            self.claim,
            self.renew,
            ahead=ahead,
            fresh_for=60.0,
            claim_ahead=claim_ahead,
            claiming=lambda: True,
            batch_done=self.done.append,
        )


async def send_all(
    queue: SendQueue[str], ledger: Ledger, senders: int, sent: list[int] | None = None
) -> list[int]:
    """Senders as the dispatcher runs them: take, check the renewal, 'send', finish."""
    sent = [] if sent is None else sent

    async def sender() -> None:
        while (taken := await queue.take()) is not None:
            delivery, batch = taken
            renewed = queue.renewed_ahead(delivery.id)
            assert renewed is not None, f"delivery {delivery.id} had no renewal ahead"
            if delivery.id in await renewed:
                ledger.log.append(("send", delivery.id))
                await asyncio.sleep(0.002)
                sent.append(delivery.id)
            queue.finished(delivery, batch)

    await asyncio.wait_for(asyncio.gather(*(sender() for _ in range(senders))), timeout=5)
    await queue.close()
    return sent


async def test_claims_are_renewed_a_chunk_ahead_of_the_senders_each_once() -> None:
    ledger = Ledger([10])
    sent = await send_all(ledger.queue(ahead=4), ledger, senders=2)
    assert sorted(sent) == list(range(1, 11))
    renewals = [ids for kind, ids in ledger.log if kind == "renew"]
    assert renewals == [(1, 2, 3, 4), (5, 6, 7, 8), (9, 10)]
    # Each chunk is asked for before the senders reach it: chunk 2 while chunk 1 is sent.
    order = [(kind, value) for kind, value in ledger.log if kind in ("renew", "send")]
    assert order.index(("renew", (5, 6, 7, 8))) < order.index(("send", 4))


async def test_a_claim_no_longer_ours_is_not_sent() -> None:
    ledger = Ledger([6], taken_over=frozenset({3}))
    sent = await send_all(ledger.queue(ahead=4), ledger, senders=3)
    assert sorted(sent) == [1, 2, 4, 5, 6]


async def test_a_renewal_older_than_fresh_for_must_be_made_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = Ledger([3])
    queue = ledger.queue(ahead=4)
    taken = await queue.take()
    assert taken is not None
    first, _ = taken
    second_taken = await queue.take()
    assert second_taken is not None
    second, _ = second_taken
    renewed = queue.renewed_ahead(first.id)
    assert renewed is not None and first.id in await renewed
    # The second waited (a rate limiter, a 429) longer than fresh_for after its renewal.
    later = time.monotonic() + 61
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert queue.renewed_ahead(second.id) is None
    assert queue.renewed_ahead(first.id) is None  # each renewal ahead is used once


async def test_with_claim_ahead_the_next_batch_is_claimed_while_this_one_is_sent() -> None:
    ledger = Ledger([5, 5, 2])
    sent = await send_all(ledger.queue(ahead=2, claim_ahead=5), ledger, senders=2)
    assert sorted(sent) == list(range(1, 13))
    claims = [i for i, (kind, _) in enumerate(ledger.log) if kind == "claim"]
    # The second batch was claimed before the first was out.
    assert claims[1] < ledger.log.index(("send", 5))
    assert ledger.done == ["batch of 1", "batch of 6", "batch of 11"]  # each once, once sent


async def test_without_claim_ahead_the_next_batch_waits_for_this_one_to_be_done() -> None:
    """SQLite: a claim beside the ledger's writes would only wait for the lock."""
    ledger = Ledger([5, 5])
    sent: list[int] = []
    claimed_with_sent: list[int] = []
    claim = ledger.claim

    async def claim_recording() -> tuple[list[ClaimedDelivery], str] | None:
        claimed_with_sent.append(len(sent))
        return await claim()

    ledger.claim = claim_recording  # type: ignore[method-assign]
    await send_all(ledger.queue(ahead=2), ledger, senders=3, sent=sent)
    assert sorted(sent) == list(range(1, 11))
    assert claimed_with_sent == [0, 5, 10]  # each claim once all before it were sent


async def test_a_failed_claim_ends_the_queue_and_is_kept_for_the_sweep() -> None:
    ledger = Ledger([4, 4])
    sent: list[int] = []

    async def fail_after_first_batch() -> tuple[list[ClaimedDelivery], str] | None:
        if ledger.next_id > 1:
            raise ConnectionError("database went away")
        return await Ledger.claim(ledger)

    ledger.claim = fail_after_first_batch  # type: ignore[method-assign]
    queue = ledger.queue(ahead=2, claim_ahead=4)
    await send_all(queue, ledger, senders=2, sent=sent)
    assert sorted(sent) == [1, 2, 3, 4]  # what was claimed is still sent
    assert isinstance(queue.error, ConnectionError)


async def test_nothing_more_is_claimed_once_claiming_stops() -> None:
    ledger = Ledger([3, 3, 3])
    stopping = False

    def claiming() -> bool:
        return not stopping

    queue: SendQueue[str] = SendQueue(
        ledger.claim,
        ledger.renew,
        ahead=2,
        fresh_for=60.0,
        claim_ahead=None,
        claiming=claiming,
        batch_done=ledger.done.append,
    )
    first = await queue.take()
    assert first is not None
    stopping = True  # asked to stop while the first batch is out
    rest = [await queue.take(), await queue.take()]
    queue.finished(*first)
    for taken in rest:
        assert taken is not None
        queue.finished(*taken)
    assert await asyncio.wait_for(queue.take(), timeout=1) is None
    assert [kind for kind, _ in ledger.log].count("claim") == 1
    assert ledger.done == ["batch of 1"]
