"""The two writes every send makes: its claim renewed shortly before, its "sent" mark after.

These are the only per-message database work of a fan-out, and they run hundreds of
times a second, grouped by ``bot/delivery/group_commit.py``. They bypass the ORM and
SQLAlchemy's async adapters (which make several trips to aiosqlite's thread per
statement and re-render the IN list each time): they are written on connections held
for a sweep (one per write running at once), in the driver's own terms, one statement
in autocommit, so one trip to the database whichever it is:

- SQLite (aiosqlite): one ``UPDATE … FROM (VALUES …)``, one trip to aiosqlite's thread,
  not four (``BEGIN IMMEDIATE``, marks, renewals, ``COMMIT``); each trip switches
  threads twice;
- PostgreSQL (asyncpg): one statement (two data-modifying CTEs), one round trip instead
  of five (ping, BEGIN, two statements, COMMIT).

Either way marks and renewals go in one transaction. A mark is unconditional (Telegram
has the message); a renewal holds only if the row is still claimed by this worker (not
put back after the lease, not deleted by /forgetme), and one marked sent in the same
group is not renewed.
Values are converted by the columns' own SQLAlchemy types, so rows read the same as
those the ORM writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.database import Database, is_unavailable
from storage.models import Delivery, DeliveryStatus

_TABLE = cast(Table, Delivery.__table__)

# Marks and renewals in one statement, so in one trip to aiosqlite's thread: the driver
# connection is in autocommit (storage/database.py), and one statement is its own
# transaction. Each row of the VALUES list is (id, 1 if sent, Telegram's message id).
# Rows are looked up by id: a renewal's status condition sits in an OR, which keeps
# SQLite (no statistics) off ix_deliveries_status_due. Beside "id IN (…)" of four ids or
# more it chose that index and read every claimed row, for every group.
_SQLITE_WRITE = f"""
UPDATE {_TABLE.name} SET
    status = CASE WHEN w.column2 THEN ? ELSE status END,
    message_id = CASE WHEN w.column2 THEN w.column3 ELSE message_id END,
    finished_at = CASE WHEN w.column2 THEN ? ELSE finished_at END,
    error = CASE WHEN w.column2 THEN NULL ELSE error END,
    claimed_at = CASE WHEN w.column2 THEN claimed_at ELSE ? END
FROM (VALUES {{rows}}) AS w
WHERE {_TABLE.name}.id = w.column1
    AND (w.column2 OR ({_TABLE.name}.status = ? AND {_TABLE.name}.claimed_by = ?))
RETURNING id
"""
_POSTGRES_WRITE = f"""
WITH sent AS (
    UPDATE {_TABLE.name} AS d
    SET status = $2, message_id = s.message_id, finished_at = $1, error = NULL
    FROM unnest($3::integer[], $4::bigint[]) AS s(id, message_id)
    WHERE d.id = s.id
), renewed AS (
    UPDATE {_TABLE.name} SET claimed_at = $1
    WHERE id = ANY($5::integer[]) AND status = $6 AND claimed_by = $7
    RETURNING id
)
SELECT id FROM renewed
"""


class SendLedger:
    """Renewals and "sent" marks of one worker, written together, group by group.

    Connections are taken from the pool at the first write and kept until ``release``
    (the end of a sweep): one per write running at once (``bot/delivery/group_commit.py`` runs
    one at a time on SQLite, a few on PostgreSQL). A connection whose write failed is
    discarded, so the next write (the dispatcher retries marks while the database is
    away) opens a new one.
    """

    def __init__(self, database: Database, worker: str) -> None:
        self.database = database
        self.worker = worker
        # Connections held for the sweep and not writing now, each with its driver's own.
        self._idle: list[tuple[AsyncConnection, Any]] = []
        dialect = database.engine.dialect
        # dialect_impl: the whole conversion, e.g. to the text SQLite stores instants as.
        instant = _TABLE.c.finished_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._instant: Callable[[dt.datetime], Any] = instant or _unchanged
        status = _TABLE.c.status.type.dialect_impl(dialect).bind_processor(dialect) or _unchanged
        self._sent: Any = status(DeliveryStatus.SENT)
        self._claimed: Any = status(DeliveryStatus.CLAIMED)

    async def write(
        self, renewals: Sequence[int], sent: Mapping[int, int | None], now: dt.datetime
    ) -> set[int]:
        """Mark ``sent`` (delivery id → Telegram's message id) and renew ``renewals``, in
        one transaction. Returns the renewed ids that are still this worker's."""
        renewals = [delivery_id for delivery_id in renewals if delivery_id not in sent]
        if not renewals and not sent:
            return set()
        gate = self.database.write_gate
        if gate is not None:
            # SQLite: the file is written by one holder at a time, in this process's order
            # (storage/write_batch.py), not by whoever SQLite's busy handler wakes first;
            # a mark goes before a waiting batch of interactive writes.
            async with gate.held(first=True):
                return await self._write_once(renewals, sent, now)
        return await self._write_once(renewals, sent, now)

    async def _write_once(
        self, renewals: Sequence[int], sent: Mapping[int, int | None], now: dt.datetime
    ) -> set[int]:
        connection, driver = await self._take()
        try:
            if self.database.is_sqlite:
                ours = await self._write_sqlite(driver, renewals, sent, now)
            else:
                ours = await self._write_postgres(driver, renewals, sent, now)
        except Exception as exc:
            closed = _closed(driver)
            await _discard(connection)
            if closed and not is_unavailable(exc):
                # The driver's own "connection is closed" (asyncpg's InterfaceError,
                # aiosqlite's ValueError) is the database going away, not a bug: the
                # dispatcher must wait for it (a mark) or leave the claim (a renewal).
                raise ConnectionError(f"the send ledger's connection was lost: {exc!r}") from exc
            raise
        except BaseException:
            # Lost, cancelled mid-statement or failed: the connection is not used again
            # (closing it rolls back whatever was begun).
            await _discard(connection)
            raise
        self._idle.append((connection, driver))
        return ours

    async def release(self) -> None:
        """Give the connections back to the pool (between sweeps nothing is written).
        Called with no write running (the dispatcher waits for its group commit first)."""
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            await connection.close()

    async def _take(self) -> tuple[AsyncConnection, Any]:
        while self._idle:
            connection, driver = self._idle.pop()
            if not _closed(driver):
                return connection, driver
            # Dropped by the server (a restart, a failover, an idle timeout) since its last
            # write. The pool checks a connection only when it is taken out, once a sweep.
            await _discard(connection)
        connection = await self.database.engine.connect()
        try:
            raw = await connection.get_raw_connection()
        except BaseException:
            await connection.close()
            raise
        return connection, raw.driver_connection

    async def _write_sqlite(
        self,
        driver: Any,  # aiosqlite.Connection
        renewals: Sequence[int],
        sent: Mapping[int, int | None],
        now: dt.datetime,
    ) -> set[int]:
        instant = self._instant(now)
        values: list[Any] = [self._sent, instant, instant]
        for delivery_id, message_id in sent.items():
            values += (delivery_id, 1, message_id)
        for delivery_id in renewals:
            values += (delivery_id, 0, None)
        rows = await driver.execute_fetchall(
            _SQLITE_WRITE.format(rows=", ".join(["(?, ?, ?)"] * (len(sent) + len(renewals)))),
            (*values, self._claimed, self.worker),
        )
        # What came back of the renewals is what is still ours (marks always come back).
        return {row[0] for row in rows} - sent.keys()

    async def _write_postgres(
        self,
        driver: Any,  # asyncpg.Connection
        renewals: Sequence[int],
        sent: Mapping[int, int | None],
        now: dt.datetime,
    ) -> set[int]:
        rows = await driver.fetch(
            _POSTGRES_WRITE,
            self._instant(now),
            self._sent,
            list(sent),
            list(sent.values()),
            list(renewals),
            self._claimed,
            self.worker,
        )
        return {row[0] for row in rows}


async def _discard(connection: AsyncConnection) -> None:
    try:
        await connection.invalidate()
        await connection.close()
    except Exception as exc:  # it is being thrown away: only a bug matters
        if not is_unavailable(exc):
            raise


def _closed(driver: Any) -> bool:
    """Whether the driver knows its connection is gone (asyncpg notices the server
    closing it; an aiosqlite connection only closes when we close it)."""
    is_closed = getattr(driver, "is_closed", None)  # asyncpg's public check
    if is_closed is not None:
        return bool(is_closed())
    return getattr(driver, "_connection", True) is None  # aiosqlite, once closed


def _unchanged(value: Any) -> Any:
    return value
