"""The SQLite write gate: one holder at a time, the send ledger's marks before waiting
batches, arrival order otherwise, and a cancelled waiter neither holds nor blocks it."""

from __future__ import annotations

import asyncio

from storage.write_batch import FileWriteGate


async def _take(gate: FileWriteGate, name: str, order: list[str], *, first: bool) -> None:
    async with gate.held(first=first):
        order.append(name)
        await asyncio.sleep(0)


async def test_a_ledger_write_goes_before_batches_that_waited_longer() -> None:
    gate, order = FileWriteGate(), list[str]()
    await gate.acquire()
    waiters = [
        asyncio.create_task(_take(gate, "batch 1", order, first=False)),
        asyncio.create_task(_take(gate, "batch 2", order, first=False)),
    ]
    await asyncio.sleep(0)
    waiters.append(asyncio.create_task(_take(gate, "mark 1", order, first=True)))
    waiters.append(asyncio.create_task(_take(gate, "mark 2", order, first=True)))
    await asyncio.sleep(0)
    assert gate.waiting == 4
    gate.release()
    await asyncio.gather(*waiters)
    assert order == ["mark 1", "mark 2", "batch 1", "batch 2"]
    assert gate.waiting == 0


async def test_only_one_holder_at_a_time() -> None:
    gate = FileWriteGate()
    holders = 0
    most = 0

    async def hold(first: bool) -> None:
        nonlocal holders, most
        async with gate.held(first=first):
            holders += 1
            most = max(most, holders)
            await asyncio.sleep(0.001)
            holders -= 1

    await asyncio.gather(*(hold(first=n % 3 == 0) for n in range(30)))
    assert most == 1
    # Free again: the next one takes it at once.
    await asyncio.wait_for(gate.acquire(), 0.1)


async def test_a_cancelled_waiter_leaves_the_gate_to_the_others() -> None:
    gate, order = FileWriteGate(), list[str]()
    await gate.acquire()
    cancelled = asyncio.create_task(_take(gate, "gone", order, first=True))
    later = asyncio.create_task(_take(gate, "batch", order, first=False))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.release()
    await asyncio.wait_for(later, 0.1)
    assert order == ["batch"]
    assert cancelled.cancelled()


async def test_a_waiter_cancelled_as_it_is_handed_the_file_hands_it_on() -> None:
    gate, order = FileWriteGate(), list[str]()
    await gate.acquire()
    handed = asyncio.create_task(_take(gate, "gone", order, first=False))
    later = asyncio.create_task(_take(gate, "next", order, first=False))
    await asyncio.sleep(0)
    gate.release()  # the file is handed to the first waiter…
    handed.cancel()  # …which is cancelled before it runs
    await asyncio.wait_for(later, 0.1)
    assert order == ["next"]
    await asyncio.wait_for(gate.acquire(), 0.1)
