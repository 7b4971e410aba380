"""Benchmark 5, retention of the delivery ledger: a year of a 100,000-chat bot.

Day by day on a fixed clock, each chat gets a reminder every three days (33,334
finished deliveries a day: mostly sent, some skipped or failed), written in bulk as
the day's sends would leave them; the sweep's pruning (storage/retention.py) runs as
the dispatcher runs it: every hour, and again at once while a call leaves more. A
day's pending rows (planned ahead) stay throughout and must be untouched. Sampled:

- the database's size each day (SQLite: pages in use, and the file's pages; PostgreSQL:
  ``pg_total_relation_size`` of the ledger and the per-day counts, indexes included);
  target: it stops growing once rows start to go (day 365 within 10 % of day 200);
- how long each prune call took, and the ledger reads every sweep makes (the next due
  instant, the queue depth); target: the p99 of the last month within 1.5 × that of
  the first full month of pruning (days 181–210): flat, not growing with the year.

On PostgreSQL, autovacuum is what makes deleted rows' space reusable; a simulated day
takes seconds, not a day, so the benchmark runs what autovacuum would with the ledger's
settings (``VACUUM`` once 2 % of the live rows plus 50 are dead: migration 0012 sets
that for ``deliveries``; the default, 20 %, lets a sixth of a year's ledger lie dead).

``--quick`` runs a smaller bot (2,000 chats) for 150 days with 60 days kept and a prune
every six hours: the same shape, in under a minute.

Run alone: ``python -m bench.retention [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

from bench.catalogue import BACKENDS, BENCH_NOW, postgres_available, throwaway_database
from bench.common import machine, markdown_table, verdict, write_results
from bench.output import DEFAULT_OUT_DIR
from storage.claims import count_due, next_due_at
from storage.database import Database
from storage.models import (
    Chat,
    ChatType,
    Delivery,
    DeliveryDailyCount,
    DeliveryKind,
    DeliveryStatus,
)
from storage.retention import prune_ledger

NAME = "retention"
KEEP_DAYS = 180


@dataclass(frozen=True)
class Year:
    """What to simulate."""

    chats: int = 100_000
    every_days: int = 3  # a reminder per chat every this many days
    days: int = 365
    keep_days: int = KEEP_DAYS
    pending: int = 1_000  # planned ahead, never due within the run
    prune_every_hours: int = 1  # the sweep's PRUNE_EVERY
    plateau_from: int = 200  # the day whose size the last day's is compared with

    @property
    def pruning_from(self) -> int:
        """The first day rows go: the first of the first full month of pruning."""
        return self.keep_days + 1


FULL = Year()
# Under a minute: a smaller bot, a shorter retention and a sweep every six hours; the same
# shape (growth, then a plateau once rows go).
QUICK = Year(chats=2_000, days=150, keep_days=60, pending=200, prune_every_hours=6, plateau_from=90)
SIZE_TOLERANCE = 0.10
# The p99 of the last full month against the first full month of pruning.
P99_TOLERANCE = 1.5
MONTH_DAYS = 30
# PostgreSQL: what autovacuum does for the ledger (migration 0012 sets these for it).
VACUUM_SCALE_FACTOR, VACUUM_THRESHOLD = 0.02, 50
# Outcomes of the day's deliveries.
OUTCOMES = (
    (DeliveryStatus.SENT, 0.95),
    (DeliveryStatus.SKIPPED, 0.03),
    (DeliveryStatus.FAILED, 0.02),
)


def _status(rng: random.Random) -> DeliveryStatus:
    roll, total = rng.random(), 0.0
    for status, share in OUTCOMES:
        total += share
        if roll < total:
            return status
    return DeliveryStatus.SENT


def _chat_id(index: int) -> int:
    return 10_000_000 + index


def _day_rows(rng: random.Random, year: Year, day: int, start: dt.datetime) -> list[dict[str, Any]]:
    """The finished deliveries of simulated day ``day``: a third of the chats, at 09:00
    in one of a few zones, sent within minutes."""
    morning = start + dt.timedelta(days=day)
    rows = []
    for index in range(day % year.every_days, year.chats, year.every_days):
        due = morning + dt.timedelta(hours=rng.choice((-4, -1, 0, 3, 5)))
        status = _status(rng)
        rows.append(
            {
                "chat_id": _chat_id(index),
                "event_id": None,  # the catalogue is left out; the ledger's rows are alike
                "kind": DeliveryKind.REMINDER,
                "occurrence_at": due + dt.timedelta(days=7),
                "slot": 10_080,
                "due_at": due,
                "expires_at": due + dt.timedelta(days=7),
                "status": status,
                "attempts": 1,
                "not_before": None,
                "claimed_by": "bench:1:000000",
                "claimed_at": due,
                "finished_at": due + dt.timedelta(seconds=rng.randrange(1, 600)),
                "message_id": rng.randrange(1, 2**31) if status is DeliveryStatus.SENT else None,
                "error": "Forbidden: bot was blocked by the user"
                if status is DeliveryStatus.FAILED
                else ("stale: the event started" if status is DeliveryStatus.SKIPPED else None),
                "change_id": None,
                "created_at": due - dt.timedelta(hours=6),
            }
        )
    return rows


async def _insert(database: Database, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    async with database.engine.begin() as connection:
        for start in range(0, len(rows), 5_000):
            await connection.execute(insert(model.__table__), list(rows[start : start + 5_000]))


async def _seed(database: Database, year: Year, start: dt.datetime) -> None:
    await database.upgrade()
    chats = [
        {
            "id": _chat_id(index),
            "type": ChatType.PRIVATE,
            "title": "Bench",
            "language": "en",
            "timezone": "Asia/Almaty",
            "is_active": True,
            "paused": False,
            "created_at": start,
            "updated_at": start,
        }
        for index in range(year.chats)
    ]
    await _insert(database, Chat, chats)
    # Planned far ahead: pending all year, so they must be there at the end.
    ahead = start + dt.timedelta(days=year.days + 30)
    pending = [
        {
            "chat_id": _chat_id(index),
            "event_id": None,
            "kind": DeliveryKind.REMINDER,
            "occurrence_at": ahead + dt.timedelta(days=7),
            "slot": 10_080,
            "due_at": ahead,
            "expires_at": ahead + dt.timedelta(days=7),
            "status": DeliveryStatus.PENDING,
            "attempts": 0,
            "created_at": start,
        }
        for index in range(year.pending)
    ]
    await _insert(database, Delivery, pending)


async def _size(database: Database) -> dict[str, int]:
    async with database.engine.connect() as connection:
        if database.is_sqlite:
            pages = (await connection.exec_driver_sql("PRAGMA page_count")).scalar_one()
            free = (await connection.exec_driver_sql("PRAGMA freelist_count")).scalar_one()
            size = (await connection.exec_driver_sql("PRAGMA page_size")).scalar_one()
            return {"bytes": (pages - free) * size, "file_bytes": pages * size}
        total = await connection.scalar(
            text(
                "SELECT pg_total_relation_size('deliveries')"
                " + pg_total_relation_size('delivery_daily_counts')"
            )
        )
        return {"bytes": int(total or 0)}


async def _vacuum(database: Database) -> None:
    async with database.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("VACUUM ANALYZE deliveries")
        await autocommit.exec_driver_sql("VACUUM ANALYZE delivery_daily_counts")


def _p(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def measure(url: str, backend: str, year: Year) -> dict[str, Any]:
    database = Database(url)
    rng = random.Random(7)
    start = BENCH_NOW.replace(hour=9, minute=0)
    try:
        await _seed(database, year, start)
        prune_ms: dict[int, list[float]] = {}  # by month
        reads_ms: dict[int, list[float]] = {}
        sizes: list[dict[str, Any]] = []
        inserted = pruned = dead = calls = 0
        insert_seconds = 0.0
        live = year.pending
        for day in range(year.days):
            rows = _day_rows(rng, year, day, start)
            began = time.perf_counter()
            await _insert(database, Delivery, rows)
            insert_seconds += time.perf_counter() - began
            inserted += len(rows)
            live += len(rows)
            month = day // MONTH_DAYS
            midnight = dt.datetime.combine(
                (start + dt.timedelta(days=day + 1)).date(), dt.time(0), tzinfo=dt.UTC
            )
            # The sweep's prune: hourly, and every sweep (15 s) while one leaves more.
            for hour in range(0, 24, year.prune_every_hours):
                now = midnight + dt.timedelta(hours=hour)
                more = True
                while more:
                    began = time.perf_counter()
                    done = await prune_ledger(database, now, year.keep_days)
                    prune_ms.setdefault(month, []).append((time.perf_counter() - began) * 1000)
                    calls += 1
                    pruned += done.rows
                    dead += done.rows
                    live -= done.rows
                    more = done.more
                    now += dt.timedelta(seconds=15)
            began = time.perf_counter()
            async with database.sessions() as session:
                await next_due_at(session)
                await count_due(session, midnight)
            reads_ms.setdefault(month, []).append((time.perf_counter() - began) * 1000)
            if not database.is_sqlite and dead > VACUUM_SCALE_FACTOR * live + VACUUM_THRESHOLD:
                await _vacuum(database)  # what autovacuum would have done by then
                dead = 0
            sizes.append({"day": day + 1, "rows": live, **await _size(database)})
        async with database.sessions() as session:
            pending = await session.scalar(
                select(func.count()).where(Delivery.status == DeliveryStatus.PENDING)
            )
            remaining = await session.scalar(select(func.count()).select_from(Delivery))
            counted = await session.scalar(select(func.sum(DeliveryDailyCount.count)))
            count_rows = await session.scalar(select(func.count()).select_from(DeliveryDailyCount))
    finally:
        await database.dispose()

    def size_on(day: int) -> int:
        return int(sizes[min(day, len(sizes)) - 1]["bytes"])

    # Months of 30 days from day 1; compared: the first that prunes all through, and the
    # last full one.
    first_month = (year.pruning_from - 1) // MONTH_DAYS
    last_month = year.days // MONTH_DAYS - 1
    months: list[dict[str, Any]] = [
        {
            "month": month + 1,
            "days": f"{month * MONTH_DAYS + 1}–{min((month + 1) * MONTH_DAYS, year.days)}",
            "prune_calls": len(prune_ms[month]),
            "prune_p50_ms": round(_p(prune_ms[month], 0.5), 2),
            "prune_p99_ms": round(_p(prune_ms[month], 0.99), 2),
            "prune_max_ms": round(max(prune_ms[month]), 2),
            "sweep_reads_p99_ms": round(_p(reads_ms[month], 0.99), 2),
            "size_bytes_at_end": size_on(min((month + 1) * MONTH_DAYS, year.days)),
        }
        for month in sorted(prune_ms)
    ]
    first, last = months[first_month], months[last_month]
    plateau_from, at_end = size_on(year.plateau_from), size_on(year.days)
    size_ratio = at_end / plateau_from if plateau_from else 0.0
    p99_ratio = last["prune_p99_ms"] / first["prune_p99_ms"] if first["prune_p99_ms"] else 0.0
    reads_ratio = (
        last["sweep_reads_p99_ms"] / first["sweep_reads_p99_ms"]
        if first["sweep_reads_p99_ms"]
        else 0.0
    )
    return {
        "backend": backend,
        "inserted": inserted,
        "insert_seconds": round(insert_seconds, 1),
        "pruned": pruned,
        "prune_calls": calls,
        "rows_at_end": int(remaining or 0),
        "pending_at_end": int(pending or 0),
        "counted": int(counted or 0),
        "count_rows": int(count_rows or 0),
        "size_bytes_from": plateau_from,
        "size_bytes_at_end": at_end,
        "size_ratio": round(size_ratio, 3),
        "first_pruning_month": first["month"],
        "last_full_month": last["month"],
        "prune_p99_ratio": round(p99_ratio, 2),
        "sweep_reads_p99_ratio": round(reads_ratio, 2),
        "months": months,
        "sizes": sizes[:: max(1, len(sizes) // 73)] + sizes[-1:],
        "meets_targets": {
            "size_plateau": abs(size_ratio - 1) <= SIZE_TOLERANCE,
            "prune_p99_flat": p99_ratio <= P99_TOLERANCE,
            "pending_untouched": int(pending or 0) == year.pending,
            "every_row_counted": int(counted or 0) == pruned,
        },
    }


async def run_async(
    out_dir: Path, *, quick: bool, backends: tuple[str, ...] = BACKENDS
) -> dict[str, Any]:
    year = QUICK if quick else FULL
    results: list[dict[str, Any]] = []
    notes: list[str] = []
    for backend in backends:
        if backend == "postgresql" and (why := await postgres_available()):
            notes.append(f"postgresql skipped: {why}")
            continue
        async with throwaway_database(backend, NAME) as url:
            results.append(await measure(url, backend, year))
    result: dict[str, Any] = {
        "benchmark": NAME,
        "quick": quick,
        "machine": machine(),
        "parameters": {
            "chats": year.chats,
            "reminder_every_days": year.every_days,
            "days": year.days,
            "retention_days": year.keep_days,
            "size_compared_from_day": year.plateau_from,
            "pending_rows": year.pending,
            "prune": f"every {year.prune_every_hours} h, and every 15 s while a call leaves "
            "more (20 batches of 500)",
        },
        "targets": {
            "size": f"day {year.days} within {SIZE_TOLERANCE:.0%} of day {year.plateau_from}",
            "prune_p99": (
                f"last full month ≤ {P99_TOLERANCE:g} × the first full month of pruning "
                f"(from day {year.pruning_from})"
            ),
        },
        "results": results,
        "notes": notes,
        "meets_targets": bool(results) and all(all(r["meets_targets"].values()) for r in results),
    }
    write_results(out_dir, NAME, result, markdown(result))
    return result


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MB"


def markdown(result: dict[str, Any]) -> str:
    parameters = result["parameters"]
    days, since = parameters["days"], parameters["size_compared_from_day"]
    text = (
        f"## Retention of the delivery ledger ({parameters['chats']:,} chats, "
        f"{days} days, kept {parameters['retention_days']} days)\n\n"
    )
    rows = []
    for r in result["results"]:
        ok = r["meets_targets"]
        rows += [
            [
                r["backend"],
                "deliveries written / removed (counted per day)",
                f"{r['inserted']:,} / {r['pruned']:,}",
                "every one counted",
                verdict(ok["every_row_counted"]),
            ],
            [
                r["backend"],
                f"size on day {since} → day {days}",
                f"{_mb(r['size_bytes_from'])} → {_mb(r['size_bytes_at_end'])}"
                f" (× {r['size_ratio']:.2f})",
                f"within {SIZE_TOLERANCE:.0%}",
                verdict(ok["size_plateau"]),
            ],
            [
                r["backend"],
                f"prune p99, month {r['first_pruning_month']} → month {r['last_full_month']}",
                f"{r['months'][r['first_pruning_month'] - 1]['prune_p99_ms']:.1f} ms → "
                f"{r['months'][r['last_full_month'] - 1]['prune_p99_ms']:.1f} ms "
                f"(× {r['prune_p99_ratio']:.2f})",
                f"≤ {P99_TOLERANCE:g} ×",
                verdict(ok["prune_p99_flat"]),
            ],
            [
                r["backend"],
                "the sweep's ledger reads, p99 (same months)",
                f"× {r['sweep_reads_p99_ratio']:.2f}",
                "",
                "",
            ],
            [
                r["backend"],
                "pending rows at the end / prune calls",
                f"{r['pending_at_end']:,} / {r['prune_calls']:,}",
                "pending untouched",
                verdict(ok["pending_untouched"]),
            ],
        ]
    text += markdown_table(["database", "what", "measured", "target", ""], rows)
    for r in result["results"]:
        text += f"\n{r['backend']}, by month:\n\n"
        text += markdown_table(
            ["month", "days", "prune calls", "p50", "p99", "sweep reads p99", "size at end"],
            [
                [
                    m["month"],
                    m["days"],
                    f"{m['prune_calls']:,}",
                    f"{m['prune_p50_ms']:.1f} ms",
                    f"{m['prune_p99_ms']:.1f} ms",
                    f"{m['sweep_reads_p99_ms']:.1f} ms",
                    _mb(m["size_bytes_at_end"]),
                ]
                for m in r["months"]
            ],
        )
    machine_info = result["machine"]
    text += f"\n{machine_info['cores']} × {machine_info['cpu']}, Python {machine_info['python']}.\n"
    text += (
        "\nA day's deliveries are written in bulk as its sends would leave them; the prune "
        "runs as the sweep runs it. SQLite's size is its pages in use (freed pages are "
        "reused; the file keeps its largest size); PostgreSQL's is the two tables with "
        "their indexes, vacuumed when autovacuum would with the ledger's settings (2 % of "
        "its rows dead, migration 0012).\n"
    )
    for note in result["notes"]:
        text += f"\n{note}\n"
    return text


def run(
    out_dir: Path = DEFAULT_OUT_DIR, *, quick: bool, backends: tuple[str, ...] = BACKENDS
) -> dict[str, Any]:
    """Run the benchmark; writes ``out_dir/retention.json`` and ``out_dir/retention.md``."""
    return asyncio.run(run_async(out_dir, quick=quick, backends=backends))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 chats instead of 100,000")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--database", action="append", choices=BACKENDS, help="only this one")
    arguments = parser.parse_args()
    result = run(
        arguments.out, quick=arguments.quick, backends=tuple(arguments.database or BACKENDS)
    )
    print(markdown(result))


if __name__ == "__main__":
    main()
