"""Claiming a batch costs the same whatever the size of the ledger, and replicas claiming
at once each get their own rows, never more than they asked for.

SQLite plans without statistics: beside "id IN (…)" it once chose the index on status,
and for the superseded-reminder check the index on event id, so every batch read every
pending row and every reminder of the event, and a fan-out grew with the square of its
audience. These tests read SQLite's plan for each statement a claim runs, subqueries in
its RETURNING included."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, cast

import aiosqlite
import pytest
from sqlalchemy import event, select

from storage.claims import claim_due
from storage.database import Database
from storage.models import Chat, ChatType, Delivery, DeliveryKind, DeliveryStatus, Event
from storage.planning import Planner
from tests.conftest import NOW
from tests.factories import TEST_EVENT, claimed_by_replicas, load


@contextlib.asynccontextmanager
async def sqlite_plans(database: Database) -> AsyncIterator[list[str]]:
    """SQLite's plan of each SELECT, UPDATE or WITH run inside, one string each (its
    steps joined by " / "), filled in when the block ends."""
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "WITH")):
            statements.append((statement, parameters))

    plans: list[str] = []
    event.listen(database.engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield plans
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", seen)
    async with database.engine.connect() as connection:
        # SQLAlchemy types every driver's connection as Optional[Any]; a checked-out
        # connection of the aiosqlite dialect has the aiosqlite.Connection here.
        raw = cast(aiosqlite.Connection, (await connection.get_raw_connection()).driver_connection)
        for statement, parameters in statements:
            rows = await raw.execute_fetchall(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans.append(" / ".join(str(row[3]) for row in rows))


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
    async with sqlite_plans(database) as plans, database.transaction() as session:
        batch = await claim_due(session, NOW, "worker", 200)
    # The day-ahead reminders come first, each superseded by its hour-ahead one.
    assert (batch.candidates, batch.skipped) == (200, 200)
    claim = plans[0]
    assert "SEARCH deliveries USING INTEGER PRIMARY KEY" in claim, claim
    assert "SEARCH events USING INTEGER PRIMARY KEY" in claim, claim  # the event's id
    # The superseded-reminder check, row by row: all four leading columns of the key.
    superseded = "USING INDEX uq_deliveries_key (chat_id=? AND <expr>=? AND kind=? AND "
    assert superseded + "occurrence_at=?)" in claim, claim
    # No step of any plan reads a whole table or index (a CTE's own rows aside).
    steps = [step for plan in plans for step in plan.split(" / ")]
    assert not any(step.startswith("SCAN") and step != "SCAN due" for step in steps), plans


async def test_finding_what_to_plan_reads_events_by_index_not_every_event(
    database: Database, database_url: str
) -> None:
    """A sweep, a follow and a change of lead times look for the events with a reminder
    due in their window: by a range of start times and the partial index of recurring
    events. As one OR, SQLite scanned every event on every pass (5 ms at 10,000)."""
    if not database.is_sqlite:
        pytest.skip("SQLite's planner (PostgreSQL plans by its statistics)")
    await load(database_url, TEST_EVENT, NOW)
    planner = Planner()
    async with sqlite_plans(database) as plans, database.transaction() as session:
        await planner.plan(session, NOW, until=NOW + dt.timedelta(hours=6))
    events = [plan for plan in plans if " events" in plan]
    assert events, plans
    steps = [step for plan in events for step in plan.split(" / ")]
    assert any("USING INDEX ix_events_starts_at (starts_at>? AND starts_at<?)" in s for s in steps)
    # The recurring events' index holds those rows alone: reading it all is the point.
    assert "SCAN events USING INDEX ix_events_recurring" in steps, events
    scans = [step for step in steps if step.startswith("SCAN")]
    assert scans == ["SCAN events USING INDEX ix_events_recurring"], events


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
    batches = await claimed_by_replicas(database_url, NOW, REPLICAS, LIMIT)
    sizes = [batch.candidates for _, batch in batches]
    assert all(b.candidates == len(b.deliveries) + b.skipped for _, b in batches)
    claimed = collections.defaultdict(list)
    for name, batch in batches:
        for delivery in batch.deliveries:
            claimed[delivery.id].append(name)
    skipped = sum(batch.skipped for _, batch in batches)
    assert max(sizes) <= LIMIT, sizes
    assert all(len(names) == 1 for names in claimed.values())
    assert (len(claimed), skipped) == (ROWS - ROWS // 10, ROWS // 10)


async def test_a_due_reminder_is_superseded_only_by_a_later_one_of_its_own_chat_and_date(
    database: Database, database_url: str
) -> None:
    """The claim's superseded-reminder check, row by row: a chat's day-ahead reminder
    gives way to its hour-ahead one of the same occurrence, not to another chat's, nor
    to one of another occurrence or event; a reminder not yet due supersedes nothing."""
    await load(database_url, TEST_EVENT, NOW)
    first, second = NOW + dt.timedelta(days=9), NOW + dt.timedelta(days=16)
    async with database.transaction() as session:
        summit = await session.scalar(select(Event).where(Event.key == "test-summit"))
        assert summit is not None
        session.add_all(
            Chat(id=chat_id, type=ChatType.PRIVATE, language="en", timezone="UTC")
            for chat_id in (701, 702, 703)
        )
        await session.flush()
        rows = {
            # (chat, occurrence, lead time in minutes): minutes ago it came due
            (701, first, 1440): 60,
            (701, first, 60): 1,  # supersedes the one above
            (701, second, 1440): 60,  # another occurrence: sent
            (702, first, 1440): 60,  # its hour-ahead one is not due yet: sent
            (702, first, 60): -5,
            (703, first, 60): 1,  # alone: sent
        }
        session.add_all(
            Delivery(
                chat_id=chat_id,
                event_id=summit.id,
                kind=DeliveryKind.REMINDER,
                occurrence_at=occurrence,
                slot=slot,
                due_at=NOW - dt.timedelta(minutes=ago),
                expires_at=occurrence,
                status=DeliveryStatus.PENDING,
            )
            for (chat_id, occurrence, slot), ago in rows.items()
        )
    async with database.transaction() as session:
        batch = await claim_due(session, NOW, "worker", 10)
    claimed = {(d.chat_id, d.occurrence_at, d.slot) for d in batch.deliveries}
    assert claimed == {(701, first, 60), (701, second, 1440), (702, first, 1440), (703, first, 60)}
    assert (batch.candidates, batch.skipped) == (5, 1)
    assert {d.event_key for d in batch.deliveries} == {"test-summit"}
    async with database.sessions() as session:
        skipped = (
            await session.execute(
                select(Delivery.chat_id, Delivery.slot, Delivery.error).where(
                    Delivery.status == DeliveryStatus.SKIPPED
                )
            )
        ).all()
    assert [tuple(row) for row in skipped] == [
        (701, 1440, "stale: a later reminder of the same event was due as well")
    ]
