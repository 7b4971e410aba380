"""Benchmark 4, scale of state: a bot with 100,000 subscribed chats.

- start-up: building the application and ``post_init`` to ready (migrations checked,
  bundled dataset compared, command menus set, dispatcher started), in a fresh process;
- resident memory of that process: after start-up, and at its peak after the work
  below (target ≤ 200 MB);
- scheduler jobs: constant (a repeating "reminder-sweep", at most one "reminder-wakeup")
  however many reminders are planned;
- re-planning: an operator postpones an event that every one of the 100,000 chats
  follows, by ``/postpone`` and the ✅ Save button: the change is logged, every follower
  gets a change notice and the pending reminders move (target ≤ 2 s).

The database is seeded and its ledger planned for the next hours in this process;
the bot runs in a child process (``--child``), so its memory is its own.

Run alone: ``python -m bench.scale [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

from sqlalchemy import func, select

import storage.dataset as dataset_module
from bench.catalogue import BACKENDS, BENCH_NOW, Scale, postgres_available, seed, throwaway_database
from bench.common import machine, markdown_table, verdict, write_results
from bench.inprocess import OPERATOR_ID, ErrorCounter, InProcessBot, bench_settings
from bench.output import DEFAULT_OUT_DIR, peak_rss_mb
from bot.clock import FixedClock
from storage.database import Database
from storage.models import Delivery, DeliveryKind, DeliveryStatus, Event
from storage.notices import plan_change_notices
from storage.planning import Planner

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NAME = "scale"
TARGET_RSS_MB = 200.0
TARGET_REPLAN_SECONDS = 2.0
FULL = Scale()
QUICK = Scale(organisations=50, events=2_000, chats=10_000)
# The followed event starts at BENCH_NOW + 1 day 3 hours (UTC); it moves an hour later,
# so its "1 day before" reminders, planned for the next hours, move with it.
NEW_START = (BENCH_NOW + dt.timedelta(days=1, hours=4)).strftime("%Y-%m-%dT%H:%M")


def _resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def child(url: str, event_key: str, *, profile: bool = False) -> dict[str, Any]:
    """In a fresh process: start the bot, sweep once, then postpone ``event_key``."""
    errors = ErrorCounter()
    import logging

    logging.getLogger().addHandler(errors)
    started = time.perf_counter()
    # A sweep every hour: only the explicit one below, and the one right after start.
    bot = InProcessBot(bench_settings(url, reminder_sweep_seconds=3600), FixedClock(BENCH_NOW))
    async with bot.running():
        startup = time.perf_counter() - started
        job_queue = bot.application.job_queue
        assert job_queue is not None
        jobs_after_start = sorted(job.name or "" for job in job_queue.jobs())
        resident_after_start = _resident_mb()
        await asyncio.sleep(0.7)  # the sweep scheduled right after start has run
        dispatcher = bot.application.bot_data.services.dispatcher
        sweep_started = time.perf_counter()
        await dispatcher.sweep()
        sweep = time.perf_counter() - sweep_started

        await bot.process(bot.message(OPERATOR_ID, f"/postpone {event_key} {NEW_START}"))
        preview = bot.last_message[OPERATOR_ID]
        save = next(
            button["callback_data"]
            for row in preview["reply_markup"]["inline_keyboard"]
            for button in row
            if "Save" in button["text"]
        )
        profiler = _start_profiler() if profile else None
        with _timing_parts() as parts:
            replan = await bot.process(bot.press(OPERATOR_ID, preview, save))
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False), file=sys.stderr)
        outcome = bot.last_message[OPERATOR_ID]["text"]
        # Synchronously after the save, before the wake-up it scheduled can fire.
        jobs_after_replan = sorted(job.name or "" for job in job_queue.jobs())
        for job in job_queue.jobs():
            if job.name != "reminder-sweep":
                job.schedule_removal()
    return {
        "startup_seconds": round(startup, 3),
        "first_sweep_seconds": round(sweep, 3),
        "save_seconds": round(replan, 3),
        "replan_seconds": round(parts["replan"], 3),
        "change_notices_seconds": round(parts["change_notices"], 3),
        "operator_saw": outcome.splitlines()[-1],
        "resident_mb_after_startup": round(resident_after_start, 1),
        "peak_resident_mb": round(peak_rss_mb(), 1),
        "jobs_after_startup": jobs_after_start,
        "jobs_after_replan": jobs_after_replan,
        "errors_logged": errors.records[:10],
    }


@contextlib.contextmanager
def _timing_parts() -> Iterator[dict[str, float]]:
    """Time, within an operator's Save, the re-plan and the writing of change notices."""
    parts = {"replan": 0.0, "change_notices": 0.0}

    def timed(function: Any, part: str) -> Any:
        @functools.wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                parts[part] += time.perf_counter() - started

        return wrapper

    with (
        mock.patch.object(Planner, "replan", timed(Planner.replan, "replan")),
        mock.patch.object(
            dataset_module,
            "plan_change_notices",
            timed(plan_change_notices, "change_notices"),
        ),
    ):
        yield parts


def _start_profiler() -> Any:
    from pyinstrument import Profiler  # the ``bench`` extra

    profiler = Profiler(interval=0.001, async_mode="enabled")
    profiler.start()
    return profiler


async def _ledger(database: Database, event_key: str) -> dict[str, Any]:
    """What the ledger holds for the followed event: change notices, pending reminders."""
    async with database.sessions() as session:
        event_id = await session.scalar(select(Event.id).where(Event.key == event_key))
        rows = await session.execute(
            select(Delivery.kind, Delivery.due_at, func.count())
            .where(Delivery.event_id == event_id, Delivery.status == DeliveryStatus.PENDING)
            .group_by(Delivery.kind, Delivery.due_at)
            .order_by(Delivery.kind, Delivery.due_at)
        )
        return {
            "pending": [
                {"kind": str(kind), "due_at": due_at.isoformat(), "rows": count}
                for kind, due_at, count in rows.all()
            ]
        }


async def measure(url: str, backend: str, scale: Scale, *, profile: bool = False) -> dict[str, Any]:
    database = Database(url)
    started = time.perf_counter()
    seeded = await seed(database, scale)
    seconds_to_seed = time.perf_counter() - started
    # The ledger a running bot would have: everything due in the next hours.
    started = time.perf_counter()
    async with database.transaction() as session:
        planned = await Planner().plan(session, BENCH_NOW)
    seconds_to_plan = time.perf_counter() - started
    before = await _ledger(database, seeded.followed_event_key)
    await database.dispose()

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.scale",
        "--child",
        url,
        seeded.followed_event_key,
        *(["--profile"] if profile else []),
        stdout=subprocess.PIPE,
        cwd=PROJECT_ROOT,
    )
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the bot process failed ({process.returncode})")
    figures = json.loads(stdout.decode().strip().splitlines()[-1])

    database = Database(url)
    after = await _ledger(database, seeded.followed_event_key)
    async with database.sessions() as session:
        notices = await session.scalar(
            select(func.count()).where(Delivery.kind == DeliveryKind.CHANGE_NOTICE)
        )
    await database.dispose()
    return {
        "backend": backend,
        "data": seeded.describe(),
        "seconds_to_seed": round(seconds_to_seed, 1),
        "ledger_planned_rows": planned,
        "ledger_planning_seconds": round(seconds_to_plan, 3),
        "followed_event": seeded.followed_event_key,
        "ledger_before": before,
        "ledger_after": after,
        "change_notices": int(notices or 0),
        "ledger_moved": sum(r["rows"] for r in after["pending"] if r["kind"] == "reminder"),
        **figures,
        "meets_targets": {
            "peak_resident_mb": figures["peak_resident_mb"] <= TARGET_RSS_MB,
            "replan_seconds": figures["replan_seconds"] <= TARGET_REPLAN_SECONDS,
            "jobs": len(figures["jobs_after_replan"]) <= 2,
        },
    }


async def run_async(
    out_dir: Path,
    *,
    quick: bool,
    profile: bool = False,
    backends: tuple[str, ...] = BACKENDS,
) -> dict[str, Any]:
    scale = QUICK if quick else FULL
    results: list[dict[str, Any]] = []
    notes: list[str] = []
    for backend in backends[:1] if profile else backends:
        if backend == "postgresql" and (why := await postgres_available()):
            notes.append(f"postgresql skipped: {why}")
            continue
        async with throwaway_database(backend, NAME) as url:
            results.append(await measure(url, backend, scale, profile=profile))
    result: dict[str, Any] = {
        "benchmark": NAME,
        "quick": quick,
        "machine": machine(),
        "parameters": {
            "organisations": scale.organisations,
            "events": scale.events,
            "chats": scale.chats,
            "postponed_to": NEW_START,
            "transport": "in-process Bot API emulator",
        },
        "targets": {
            "peak_resident_mb": TARGET_RSS_MB,
            "replan_seconds": TARGET_REPLAN_SECONDS,
            "jobs": "constant: reminder-sweep and at most one reminder-wakeup",
        },
        "results": results,
        "notes": notes,
        "meets_targets": bool(results)
        and all(all(r["meets_targets"].values()) and not r["errors_logged"] for r in results),
    }
    if len(results) == 2:
        sqlite, pg = results
        result["postgresql_to_sqlite"] = {
            key: round(pg[key] / sqlite[key], 2)
            for key in ("startup_seconds", "replan_seconds", "peak_resident_mb")
            if sqlite[key]
        }
    write_results(out_dir, NAME, result, markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    parameters = result["parameters"]
    targets = result["targets"]
    text = f"## Scale of state ({parameters['chats']:,} chats, {parameters['events']:,} events)\n\n"

    rows = []
    for r in result["results"]:
        ok = r["meets_targets"]
        rows += [
            [r["backend"], "subscriptions", f"{r['data']['subscriptions']:,}", "", ""],
            [r["backend"], "start-up to ready", f"{r['startup_seconds']:.2f} s", "", ""],
            [
                r["backend"],
                "RSS after start-up",
                f"{r['resident_mb_after_startup']:.0f} MB",
                "",
                "",
            ],
            [
                r["backend"],
                "peak RSS (start-up, sweep, re-plan)",
                f"{r['peak_resident_mb']:.0f} MB",
                f"≤ {targets['peak_resident_mb']:g} MB",
                verdict(ok["peak_resident_mb"]),
            ],
            [
                r["backend"],
                "scheduler jobs after re-plan",
                ", ".join(r["jobs_after_replan"]),
                "constant",
                verdict(ok["jobs"]),
            ],
            [
                r["backend"],
                f"re-plan after the event moved ({r['ledger_moved']:,} reminders moved)",
                f"{r['replan_seconds']:.2f} s",
                f"≤ {targets['replan_seconds']:g} s",
                verdict(ok["replan_seconds"]),
            ],
            [
                r["backend"],
                f"… and {r['change_notices']:,} change notices written",
                f"{r['change_notices_seconds']:.2f} s",
                "",
                "",
            ],
            [
                r["backend"],
                "`/postpone` → ✅ Save, all of it (both, the change log, commit, reply)",
                f"{r['save_seconds']:.2f} s",
                "",
                "",
            ],
        ]
    text += markdown_table(["database", "what", "measured", "target", ""], rows)
    machine_info = result["machine"]
    text += f"\n{machine_info['cores']} × {machine_info['cpu']}, Python {machine_info['python']}.\n"
    text += (
        "\nThe target is for the re-plan: the reminders of an event followed by every chat, "
        "after its date changes. The operator's Save also writes one change notice per "
        "follower, to be sent at the broadcast rate; that is shown beside it.\n"
    )
    for note in result["notes"]:
        text += f"\n{note}\n"
    return text


def run(
    out_dir: Path = DEFAULT_OUT_DIR,
    *,
    quick: bool,
    profile: bool = False,
    backends: tuple[str, ...] = BACKENDS,
) -> dict[str, Any]:
    """Run the benchmark; writes ``out_dir/scale.json`` and ``out_dir/scale.md``.

    With ``profile``, the bot process prints a pyinstrument profile of the re-plan.
    """
    return asyncio.run(run_async(out_dir, quick=quick, profile=profile, backends=backends))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 chats instead of 100,000")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument(
        "--profile", action="store_true", help="print a pyinstrument profile of the re-plan"
    )
    parser.add_argument("--database", action="append", choices=BACKENDS, help="only this one")
    parser.add_argument("--child", nargs=2, metavar=("URL", "EVENT"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        figures = asyncio.run(child(*arguments.child, profile=arguments.profile))
        print(json.dumps(figures))
        return
    result = run(
        arguments.out,
        quick=arguments.quick,
        profile=arguments.profile,
        backends=tuple(arguments.database or BACKENDS),
    )
    print(markdown(result))


if __name__ == "__main__":
    main()
