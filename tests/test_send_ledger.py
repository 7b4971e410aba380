"""The send ledger writes in the driver's own terms: what it writes must read exactly as
the ORM's rows do, on both databases, and a failed connection must not be used again."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import cast

import aiosqlite
import pytest
from sqlalchemy import select, text

from storage import send_ledger
from storage.claims import requeue_abandoned
from storage.database import Database, is_unavailable
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
    finished_at = after[first].finished_at
    assert finished_at == NOW and finished_at.tzinfo is not None
    assert after[second].status is DeliveryStatus.CLAIMED and after[second].claimed_at == NOW
    assert after[theirs].claimed_at == NOW - dt.timedelta(hours=1)
    # Instants compare as the ORM's do in SQL: a claim renewed at NOW is not abandoned
    # before NOW, and is once the cut-off passes it.
    async with database.transaction() as session:
        assert await requeue_abandoned(session, NOW) == 2  # the other one and the fifth
    async with database.transaction() as session:
        assert await requeue_abandoned(session, NOW + dt.timedelta(seconds=1)) == 2


async def test_a_group_looks_its_rows_up_by_key_however_many_are_claimed(
    database: Database, claimed: list[int]
) -> None:
    """SQLite plans without statistics: beside "id IN (…)" of four ids or more it chose
    the index on status, and every group read every claimed row of the fan-out."""
    if not database.is_sqlite:
        pytest.skip("SQLite's planner (PostgreSQL plans by its statistics)")
    statement = send_ledger._SQLITE_WRITE.format(rows=", ".join(["(?, ?, ?)"] * 6))
    parameters: list[str | int | None] = ["sent", "now", "now"]
    for n, delivery_id in enumerate(claimed):
        parameters += (delivery_id, int(n < 2), 900 + n if n < 2 else None)
    async with database.engine.connect() as connection:
        # SQLAlchemy types every driver's connection as Optional[Any]; a checked-out
        # connection of the aiosqlite dialect has the aiosqlite.Connection here.
        raw = cast(aiosqlite.Connection, (await connection.get_raw_connection()).driver_connection)
        rows = await raw.execute_fetchall(
            f"EXPLAIN QUERY PLAN {statement}", (*parameters, "claimed", WORKER)
        )
    plan = [str(row[3]) for row in rows]
    assert "SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan
    assert not any("ix_deliveries_status_due" in step for step in plan), plan


async def test_a_connection_closed_since_the_last_write_is_replaced(
    database: Database, claimed: list[int]
) -> None:
    first, second, *_ = claimed
    ledger = SendLedger(database, WORKER)
    try:
        assert await ledger.write([first], {}, NOW) == {first}
        [(broken, _)] = ledger._idle
        await broken.invalidate()  # closed under the ledger, as a server restart leaves it
        assert await ledger.write([second], {first: 5}, NOW) == {second}
        [(replaced, _)] = ledger._idle
        assert replaced is not broken
    finally:
        await ledger.release()
    after = await rows(database)
    assert after[first].status is DeliveryStatus.SENT and after[first].message_id == 5


async def test_a_connection_closed_under_a_write_reads_as_the_database_gone(
    database: Database, claimed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closed between the check and the write: the driver's own error ("connection is
    closed") must read as unavailable, so a mark is retried and a claim left alone, and
    the next write opens a new connection."""
    first, second, *_ = claimed
    ledger = SendLedger(database, WORKER)
    checks: list[object] = []

    def closed_after_the_check(driver: object) -> bool:
        checks.append(driver)
        return len(checks) > 1 and real_closed(driver)

    real_closed = send_ledger._closed
    try:
        assert await ledger.write([first], {}, NOW) == {first}
        [(connection, _)] = ledger._idle
        await connection.invalidate()
        monkeypatch.setattr(send_ledger, "_closed", closed_after_the_check)
        with pytest.raises(ConnectionError) as raised:
            await ledger.write([second], {}, NOW)
        assert is_unavailable(raised.value)
        assert ledger._idle == []  # discarded
        monkeypatch.setattr(send_ledger, "_closed", real_closed)
        assert await ledger.write([second], {}, NOW) == {second}
    finally:
        await ledger.release()


async def test_a_connection_the_server_ended_is_replaced(
    database: Database, claimed: list[int]
) -> None:
    if database.is_sqlite:
        pytest.skip("a server ending a connection: PostgreSQL")
    first, second, *_ = claimed
    ledger = SendLedger(database, WORKER)
    try:
        assert await ledger.write([first], {}, NOW) == {first}
        [(_, driver)] = ledger._idle
        backend = await driver.fetchval("SELECT pg_backend_pid()")
        async with database.engine.connect() as other:  # as a restart or failover would
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        await asyncio.sleep(0.2)  # the driver notices the connection closing
        assert await ledger.write([second], {}, NOW) == {second}
    finally:
        await ledger.release()
