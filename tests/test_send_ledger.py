"""The send ledger writes in the driver's own terms: what it writes must read exactly as
the ORM's rows do, on both databases, and a failed connection must not be used again."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from storage.database import Database
from storage.deliveries import requeue_abandoned
from storage.models import Chat, ChatType, Delivery, DeliveryKind, DeliveryStatus
from storage.send_ledger import SendLedger
from tests.conftest import NOW

WORKER = "host:1:abcdef"
CHAT_ID = 7001


@pytest.fixture
async def claimed(database: Database) -> AsyncIterator[list[int]]:
    """Five digests claimed by ``WORKER`` an hour ago, a sixth by another worker."""
    async with database.transaction() as session:
        session.add(Chat(id=CHAT_ID, type=ChatType.PRIVATE, language="en", timezone="UTC"))
        await session.flush()
        rows = [
            Delivery(
                chat_id=CHAT_ID,
                kind=DeliveryKind.DIGEST,
                occurrence_at=NOW + dt.timedelta(days=n),
                slot=7,
                due_at=NOW - dt.timedelta(hours=1),
                expires_at=NOW + dt.timedelta(days=1),
                status=DeliveryStatus.CLAIMED,
                claimed_by=WORKER if n < 5 else "another:2:fedcba",
                claimed_at=NOW - dt.timedelta(hours=1),
            )
            for n in range(6)
        ]
        session.add_all(rows)
        await session.flush()
        ids = [row.id for row in rows]
    yield ids


async def rows(database: Database) -> dict[int, Delivery]:
    async with database.sessions() as session:
        return {row.id: row for row in await session.scalars(select(Delivery))}


async def test_marks_and_renewals_read_as_the_orm_writes_them(
    database: Database, claimed: list[int]
) -> None:
    first, second, third, fourth, _, theirs = claimed
    ledger = SendLedger(database, WORKER)
    try:
        ours = await ledger.write([second, third, theirs, first], {first: 901, fourth: None}, NOW)
    finally:
        await ledger.release()
    # Ours are renewed; another worker's claim and one marked sent meanwhile are not.
    assert ours == {second, third}
    after = await rows(database)
    assert (after[first].status, after[first].message_id) == (DeliveryStatus.SENT, 901)
    assert (after[fourth].status, after[fourth].message_id) == (DeliveryStatus.SENT, None)
    assert after[first].finished_at == NOW and after[first].finished_at.tzinfo is not None
    assert after[second].status is DeliveryStatus.CLAIMED and after[second].claimed_at == NOW
    assert after[theirs].claimed_at == NOW - dt.timedelta(hours=1)
    # Instants compare as the ORM's do in SQL: a claim renewed at NOW is not abandoned
    # before NOW, and is once the cut-off passes it.
    async with database.transaction() as session:
        assert await requeue_abandoned(session, NOW) == 2  # the other one and the fifth
    async with database.transaction() as session:
        assert await requeue_abandoned(session, NOW + dt.timedelta(seconds=1)) == 2


async def test_a_failed_connection_is_replaced_by_the_next_write(
    database: Database, claimed: list[int]
) -> None:
    first, second, *_ = claimed
    ledger = SendLedger(database, WORKER)
    try:
        assert await ledger.write([first], {}, NOW) == {first}
        assert ledger._connection is not None
        broken = ledger._connection
        await broken.invalidate()  # as a lost server leaves it: unusable
        with pytest.raises(Exception):  # noqa: B017 - the driver's own error, per database
            await ledger.write([second], {}, NOW)
        assert ledger._connection is None
        assert await ledger.write([second], {first: 5}, NOW) == {second}
    finally:
        await ledger.release()
    after = await rows(database)
    assert after[first].status is DeliveryStatus.SENT and after[first].message_id == 5
