"""Claiming a batch costs the same whatever the size of the ledger, and replicas claiming
at once each get their own rows, never more than they asked for.

SQLite plans without statistics: beside "id IN (…)" it once chose the index on status,
and for the superseded-reminder check the index on event id, so every batch read every
pending row and every reminder of the event, and a fan-out grew with the square of its
audience. These tests read SQLite's plan for each statement a claim runs."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import event

from storage.database import Database
from storage.deliveries import claim_due
from storage.models import Chat, ChatType, Delivery, DeliveryKind, DeliveryStatus, Event
from tests.conftest import NOW
from tests.factories import TEST_EVENT, load


async def test_a_claim_looks_rows_up_by_key_not_by_status_or_event(
    database: Database, database_url: str
) -> None:
    if not database.is_sqlite:
        pytest.skip("SQLite's planner (PostgreSQL plans by its statistics)")
    await load(database_url, TEST_EVENT, NOW)
    async with database.transaction() as session:
        summit = (await session.execute(Event.__table__.select())).first()
        assert summit is not None
        session.add_all(
            Chat(id=9000 + n, type=ChatType.PRIVATE, language="en", timezone="UTC")
            for n in range(300)
        )
        await session.flush()
        session.add_all(
            Delivery(
                chat_id=9000 + n,
                event_id=summit.id,
                kind=DeliveryKind.REMINDER,
                occurrence_at=NOW + dt.timedelta(days=9),
                slot=slot,
                due_at=NOW - dt.timedelta(minutes=slot),
                expires_at=NOW + dt.timedelta(days=9),
                status=DeliveryStatus.PENDING,
            )
            for n in range(300)
            for slot in (60, 1440)
        )
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH")):
            planned = statement.split("RETURNING")[0]  # with the parameters it takes
            statements.append((planned, parameters[: planned.count("?")]))

    event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with database.transaction() as session:
            batch = await claim_due(session, NOW, "worker", 200)
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
    assert batch.candidates == 200
    plans = []
    async with database.engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        for statement, parameters in statements:
            rows = await raw.execute_fetchall(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans.append(" / ".join(str(row[3]) for row in rows))
    claim, superseded = plans[0], plans[1]
    assert "INTEGER PRIMARY KEY" in claim, claim
    assert "uq_deliveries_key" in superseded, superseded
    # No step of any plan reads a whole table or index (a CTE's own rows aside).
    steps = [step for plan in plans for step in plan.split(" / ")]
    assert not any(step.startswith("SCAN") and step != "SCAN due" for step in steps), plans


ROWS, LIMIT, REPLICAS = 600, 7, 4


async def test_replicas_claiming_at_once_keep_to_the_limit_and_never_share_a_row(
    database: Database, database_url: str
) -> None:
    async with database.transaction() as session:
        session.add_all(
            Chat(id=8000 + n, type=ChatType.PRIVATE, language="en", timezone="UTC")
            for n in range(ROWS)
        )
        await session.flush()
        session.add_all(
            Delivery(
                chat_id=8000 + n,
                kind=DeliveryKind.DIGEST,
                occurrence_at=NOW + dt.timedelta(days=1),
                slot=7,
                due_at=NOW - dt.timedelta(seconds=n),
                expires_at=NOW + dt.timedelta(days=1) if n % 10 else NOW,  # a tenth stale
                status=DeliveryStatus.PENDING,
            )
            for n in range(ROWS)
        )
    claimed: dict[int, list[str]] = collections.defaultdict(list)
    sizes: list[int] = []
    skipped = 0

    async def replica(name: str) -> None:
        nonlocal skipped
        own = Database(database_url)
        try:
            while True:
                async with own.transaction() as session:
                    batch = await claim_due(session, NOW, name, LIMIT)
                if not batch.candidates:
                    return
                sizes.append(batch.candidates)
                skipped += batch.skipped
                assert batch.candidates == len(batch.deliveries) + batch.skipped
                for delivery in batch.deliveries:
                    claimed[delivery.id].append(name)
        finally:
            await own.dispose()

    await asyncio.gather(*(replica(f"replica-{n}") for n in range(REPLICAS)))
    assert max(sizes) <= LIMIT, sizes
    assert all(len(names) == 1 for names in claimed.values())
    assert (len(claimed), skipped) == (ROWS - ROWS // 10, ROWS // 10)
