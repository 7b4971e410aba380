"""Group commit: writes that arrive while one runs go together in the next, nobody waits
for a timer, and each caller gets its own result (or the error of its own write)."""

from __future__ import annotations

import asyncio
import random
from typing import cast

import pytest

from bot.delivery.group_commit import GroupCommit


class Ledger:
    """A stand-in database: each write is one 'transaction' that takes a little while."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.transactions: list[list[int]] = []
        self.fail_on = fail_on

    async def write(self, items: list[int]) -> list[str]:
        self.transactions.append(items)
        await asyncio.sleep(0.01)
        if self.fail_on in items:
            raise ConnectionError("database went away")
        return [f"row {item}" for item in items]


async def test_one_write_alone_is_made_at_once() -> None:
    ledger = Ledger()
    commits = GroupCommit(ledger.write)
    assert await asyncio.wait_for(commits.submit(1), timeout=0.5) == "row 1"
    assert ledger.transactions == [[1]]


async def test_writes_made_ready_together_go_in_one_transaction() -> None:
    """The second caller submits one turn of the loop after the first (as the answers to
    two sends read from one poll do): they still share the first transaction."""
    ledger = Ledger()
    commits = GroupCommit(ledger.write)

    async def a_turn_later(item: int) -> str:
        await asyncio.sleep(0)
        return await commits.submit(item)

    # typeshed gives a gather of two awaitables a tuple; asyncio's gather returns a list.
    together = cast(list[str], await asyncio.gather(commits.submit(1), a_turn_later(2)))
    assert together == ["row 1", "row 2"]
    assert ledger.transactions == [[1, 2]]


async def test_writes_arriving_during_a_write_go_together_in_the_next() -> None:
    ledger = Ledger()
    commits = GroupCommit(ledger.write)
    first = asyncio.create_task(commits.submit(1))
    await asyncio.sleep(0.001)  # the first write is under way
    rest = [asyncio.create_task(commits.submit(n)) for n in range(2, 12)]
    results = await asyncio.gather(first, *rest)
    assert results == [f"row {n}" for n in range(1, 12)]
    assert ledger.transactions == [[1], list(range(2, 12))]


async def test_a_failed_write_fails_its_callers_only() -> None:
    ledger = Ledger(fail_on=3)
    commits = GroupCommit(ledger.write)
    first = asyncio.create_task(commits.submit(1))
    await asyncio.sleep(0.001)
    failing = [asyncio.create_task(commits.submit(n)) for n in (2, 3)]
    assert await first == "row 1"
    for task in failing:
        with pytest.raises(ConnectionError):
            await task
    assert await commits.submit(4) == "row 4"  # the next write goes ahead


async def test_settled_waits_for_writes_whose_callers_were_cancelled() -> None:
    ledger = Ledger()
    commits = GroupCommit(ledger.write)
    first = asyncio.create_task(commits.submit(1))
    await asyncio.sleep(0.001)  # the first write is under way
    second = asyncio.create_task(commits.submit(2))
    await asyncio.sleep(0)
    second.cancel()  # as a sweep cut short by a stop cancels its deliveries
    await commits.settled()
    assert ledger.transactions == [[1], [2]]  # written all the same
    assert await first == "row 1"


class TimedLedger(Ledger):
    """Records when each write began and ended."""

    def __init__(self, seconds: float = 0.01) -> None:
        super().__init__()
        self.seconds = seconds
        self.spans: list[tuple[float, float]] = []

    async def write(self, items: list[int]) -> list[str]:
        began = asyncio.get_running_loop().time()
        rows = await super().write(items) if self.seconds else [f"row {i}" for i in items]
        self.spans.append((began, asyncio.get_running_loop().time()))
        return rows


async def test_with_two_writers_a_write_arriving_during_another_begins_at_once() -> None:
    """(PostgreSQL) a mark does not wait for the write before it to end; a third waits
    for the first to end and takes along everything that arrived meanwhile."""
    ledger = TimedLedger()
    commits = GroupCommit(ledger.write, writers=2)
    first = asyncio.create_task(commits.submit(1))
    await asyncio.sleep(0.001)
    second = asyncio.create_task(commits.submit(2))
    await asyncio.sleep(0.001)
    rest = [asyncio.create_task(commits.submit(n)) for n in (3, 4, 5)]
    assert await asyncio.gather(first, second, *rest) == [f"row {n}" for n in range(1, 6)]
    assert ledger.transactions == [[1], [2], [3, 4, 5]]
    (_, first_ended), (second_began, _), (third_began, _) = sorted(ledger.spans)
    assert second_began < first_ended <= third_began


async def test_no_write_is_left_waiting_however_they_arrive() -> None:
    """Writers that end just as another write arrives must not leave it behind."""
    rng = random.Random(7)
    for writers in (1, 2, 3):
        ledger = TimedLedger(seconds=0)
        commits = GroupCommit(ledger.write, writers=writers)

        for round_ in range(50):
            items = range(round_ * 10, round_ * 10 + rng.randrange(1, 10))
            written = asyncio.gather(*(submit_later(commits, n, rng) for n in items))
            assert await asyncio.wait_for(written, timeout=2) == [f"row {n}" for n in items]
        await commits.settled()


async def submit_later(commits: GroupCommit[int, str], item: int, rng: random.Random) -> str:
    for _ in range(rng.randrange(4)):
        await asyncio.sleep(0)
    return await commits.submit(item)
