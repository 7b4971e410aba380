"""Retention of the delivery ledger: finished rows older than a setting are removed, and
counted per day first.

The ledger (``deliveries``) gets a row for every reminder and notice ever sent; without
this it grows for ever. A finished row (sent, skipped or failed) whose finish and due
times are both before the cutoff (midnight UTC, ``DELIVERY_RETENTION_DAYS`` before now)
is removed in small batches, each in one transaction with the addition of its count to
``delivery_daily_counts`` (day, kind, status), so /stats counts the same over a period
before and after. The dispatcher's sweep calls :func:`prune_ledger` now and then
(bot/delivery/dispatcher.py); a call does a bounded number of batches, so one sweep never
stalls on a backlog: the next sweep goes on where it stopped.

What it never removes, and why that keeps "sent once":

- pending and claimed rows: they are still to be sent;
- a row due after the cutoff, even if it finished before (skipped ahead of its time);
- sent announcements: ``/announce`` may be run for the same event at any time, and its
  row is what says "already posted before" (storage/notices.py). They are few.

Every other key is planned once, for a due time ahead of what was planned before: the
planner creates rows due in (watermark, now + horizon] as the watermark advances, and
re-plans only rows due after now (storage/planning.py); change notices are keyed by a
revision that only grows, new-event notices by an event planned once when it is added.
A row removed here was due before the cutoff, long before any planning window, so its
key is never planned again. (The rule against repeating a reminder sent for an
occurrence shortly before, ``_repeats``, looks back one lead time, at most 30 days.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Database
from storage.dates import UTC
from storage.models import Delivery, DeliveryDailyCount, DeliveryKind, DeliveryStatus
from storage.upsert import conflict_insert

FINISHED = (DeliveryStatus.SENT, DeliveryStatus.SKIPPED, DeliveryStatus.FAILED)
# Rows removed in one transaction: short enough that a "sent" mark waiting to be written
# (SQLite has one writer) waits milliseconds, not seconds.
BATCH_SIZE = 500
# Batches in one call: what one sweep may spend on it. A 100,000-chat bot finishing
# 33,000 deliveries a day needs 67 batches a day; an hourly call of 20 keeps up with
# 240,000 a day, and a backlog is worked off a call every sweep (``Pruned.more``).
MAX_BATCHES = 20


@dataclass(frozen=True)
class Pruned:
    """What one call of :func:`prune_ledger` removed."""

    rows: int
    batches: int
    more: bool  # the last batch was full: more may be left for the next call
    cutoff: dt.datetime


def retention_cutoff(now: dt.datetime, keep_days: int) -> dt.datetime:
    """Rows finished and due before this instant may go: midnight UTC ``keep_days`` days
    back, so a day is counted either from its rows or from its count, never half each."""
    day = (now.astimezone(UTC) - dt.timedelta(days=keep_days)).date()
    return dt.datetime.combine(day, dt.time(0), tzinfo=UTC)


def _prunable(cutoff: dt.datetime) -> ColumnElement[bool]:
    return and_(
        Delivery.status.in_(FINISHED),
        # The index (status, due_at) finds them; a row finished late (skipped after an
        # outage) waits until its finish is old too.
        Delivery.due_at < cutoff,
        func.coalesce(Delivery.finished_at, Delivery.due_at) < cutoff,
        or_(Delivery.kind != DeliveryKind.ANNOUNCEMENT, Delivery.status != DeliveryStatus.SENT),
    )


def _day(finished_at: dt.datetime | None, due_at: dt.datetime) -> dt.date:
    return (finished_at or due_at).astimezone(UTC).date()


async def add_counts(session: AsyncSession, counts: Counter[tuple[dt.date, str, str]]) -> None:
    """Add ``counts`` (by day, kind, status) to ``delivery_daily_counts``. Never commits."""
    if not counts:
        return
    rows = [
        {"day": day, "kind": kind, "status": status, "count": count}
        for (day, kind, status), count in sorted(counts.items())
    ]
    statement = conflict_insert(session, DeliveryDailyCount).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["day", "kind", "status"],
        set_={"count": DeliveryDailyCount.count + statement.excluded["count"]},
    )
    await session.execute(statement)


async def prune_batch(
    session: AsyncSession, cutoff: dt.datetime, batch_size: int = BATCH_SIZE
) -> int:
    """Remove up to ``batch_size`` finished rows older than ``cutoff`` and add them to the
    per-day counts, in the caller's transaction. Never commits. Returns the rows removed.

    The rows are counted from what the DELETE returns: two replicas pruning at once never
    count a row twice (on PostgreSQL the second skips the rows the first has locked).
    """
    chosen = select(Delivery.id).where(_prunable(cutoff)).limit(batch_size)
    if session.get_bind().dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    removed = await session.execute(
        delete(Delivery)
        # The condition again: a row changed since it was chosen (an announcement
        # tried again) stays.
        .where(Delivery.id.in_(chosen.scalar_subquery()), _prunable(cutoff))
        .returning(Delivery.kind, Delivery.status, Delivery.finished_at, Delivery.due_at)
        .execution_options(synchronize_session=False)
    )
    counts: Counter[tuple[dt.date, str, str]] = Counter(
        (_day(finished_at, due_at), str(kind), str(status))
        for kind, status, finished_at, due_at in removed.all()
    )
    await add_counts(session, counts)
    return sum(counts.values())


async def prune_ledger(
    database: Database,
    now: dt.datetime,
    keep_days: int,
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
) -> Pruned:
    """Remove finished deliveries older than ``keep_days`` (see the module's docstring):
    at most ``max_batches`` batches of ``batch_size``, each its own transaction."""
    cutoff = retention_cutoff(now, keep_days)
    rows = batches = 0
    removed = batch_size
    while batches < max_batches and removed == batch_size:
        async with database.transaction() as session:
            removed = await prune_batch(session, cutoff, batch_size)
        rows += removed
        batches += 1
        await asyncio.sleep(0)  # what else waits for the database (marks, replies) goes next
    return Pruned(rows, batches, more=removed == batch_size, cutoff=cutoff)


async def counted_since(
    session: AsyncSession, first_day: dt.date, statuses: Iterable[DeliveryStatus] = FINISHED
) -> dict[DeliveryStatus, int]:
    """Deliveries counted per day (their rows removed) from ``first_day`` on, by status."""
    found = await session.execute(
        select(DeliveryDailyCount.status, func.sum(DeliveryDailyCount.count))
        .where(
            DeliveryDailyCount.day >= first_day,
            DeliveryDailyCount.status.in_([s.value for s in statuses]),
        )
        .group_by(DeliveryDailyCount.status)
    )
    return {DeliveryStatus(status): int(total or 0) for status, total in found.all()}
