"""Benchmark 1, fan-out: one summit, 20,000 subscribed chats, one reminder each, through
the real dispatcher (claim in the database, send, record), rate limiting off.

Beside it, in the same run and against the same server: (a) a raw aiohttp POST loop
(what the machine can do with no framework at all) and (b) a plain ``Bot.send_message``
loop on python-telegram-bot's default transport (HTTPX). Also measured: the same loop on
our aiohttp transport, and messages/s against concurrency for the plot (benchmark 5).
The senders take turns for three rounds and each is reported by its median: on a shared
virtual machine the speed drifts by a factor of two within minutes, and one turn each
made the ratios depend on which sender ran in a slow minute.

For each dispatcher run it reports where a sender's time between two messages goes (the
server's answer, the wait for the "sent" mark, the rest), and it runs the dispatcher and
the raw loop once more against a server answering ``ROUND_TRIP_MS`` late, as over a
network.

Targets, on SQLite and on PostgreSQL alike:

- on loopback, at least ``TARGET_PER_SECOND`` messages/s, twice Telegram's paid-broadcast
  ceiling (1,000/s), so that our code is never what limits a broadcast;
- on loopback, at least ``TARGET_VS_PTB`` times PTB's default send loop;
- at a ``ROUND_TRIP_MS`` round trip, at least ``TARGET_VS_RAW_AT_ROUND_TRIP`` times the raw
  loop's rate.

There is no target against the raw loop on loopback: with 16 messages in flight and a
durable "sent" mark before each sender's next message, that ratio measures the disk's
fsync, not this code.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from telegram.ext import ExtBot

from bench.common import (
    POSTGRES_ADMIN_URL,
    TOKEN,
    BotApiProcess,
    Measured,
    client_on_its_own_cpu,
    local_postgres_cpu_seconds,
    machine,
    markdown_table,
    measure,
    ptb_send_loop,
    raw_aiohttp_loop,
    verdict,
    write_results,
)
from bench.seed import SUMMIT_START, Audience, fresh_database, postgres_available, seed
from bot.app import build_application, file_url_for, telegram_request
from bot.clock import FixedClock
from bot.delivery.dispatcher import MAX_IN_FLIGHT, Dispatcher
from bot.delivery.ratelimit import DeliveryRateLimiter
from config.settings import Settings
from storage.database import Database
from storage.models import Delivery, DeliveryStatus, Meta
from storage.planning import PLANNED_UNTIL_KEY

NAME = "fanout"
ROUNDS = 3  # each sender's median of this many turns
# On loopback, each database: twice Telegram's ceiling for paid broadcasts (1,000/s).
TARGET_PER_SECOND = 2_000.0
TARGET_VS_PTB = 3.0  # on loopback, against PTB's default send loop
ONE_HOUR = dt.timedelta(hours=1)
# Telegram's answers come back over a network: from a server near its data centres the
# round trip is some tens of milliseconds. The fan-out again with the server answering
# this much later shows what is left of the difference once the network is in the way.
ROUND_TRIP_MS = 50.0
TARGET_VS_RAW_AT_ROUND_TRIP = 0.9  # at ROUND_TRIP_MS, against the raw aiohttp loop


def bench_settings(database_url: str, base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "bot_token": TOKEN,
        "database_url": database_url,
        "telegram_base_url": base_url,
        "delivery_rate_limit": False,
        "reminder_sweep_seconds": 3600,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def dispatcher_run(
    database_url: str,
    server: BotApiProcess,
    expected: int,
    *,
    max_in_flight: int = MAX_IN_FLIGHT,
    limiter: DeliveryRateLimiter | None = None,
    complete: bool = True,
    **settings_overrides: Any,
) -> dict[str, Any]:
    """Plan the summit's one-hour reminders, then time one sweep that sends them all.

    With ``complete``, anything short of every reminder sent and recorded once is an error.
    """
    settings = bench_settings(database_url, server.base_url, **settings_overrides)
    clock = FixedClock(SUMMIT_START - ONE_HOUR + dt.timedelta(seconds=1))
    application = build_application(settings, clock=clock, with_updater=False, rate_limit=False)
    services = application.bot_data.services
    dispatcher = Dispatcher(
        services.database,
        services.catalogue,
        clock,
        settings,
        services.dispatcher.planner,
        limiter=limiter,
        max_in_flight=max_in_flight,
    )
    bot = ExtBot(
        TOKEN,
        base_url=settings.telegram_base_url,
        base_file_url=file_url_for(settings.telegram_base_url),
        defaults=application.bot.defaults,
        request=telegram_request(settings, max_in_flight + 4),
    )
    try:
        # Planning is not what is measured: the ledger is planned up to this instant first,
        # so the timed sweep only claims, sends and records.
        async with services.database.transaction() as session:
            await dispatcher.planner.advance(session, clock.now())
        planned = await count_deliveries(services.database, DeliveryStatus.PENDING)
        await bot.initialize()
        dispatcher.start(bot, None)
        await server.reset()
        outcome: dict[str, Any] = {}

        async def sweep() -> None:
            outcome["result"] = await dispatcher.sweep()

        database_cpu = None if services.database.is_sqlite else local_postgres_cpu_seconds()
        measured = await measure(expected, sweep)
        stats = await server.stats()
        if database_cpu is not None:
            database_cpu = (local_postgres_cpu_seconds() or database_cpu) - database_cpu
        sent_rows = await count_deliveries(services.database, DeliveryStatus.SENT)
    finally:
        await bot.shutdown()
        await services.database.dispose()
    result = outcome["result"]
    if complete and not (sent_rows == stats["sent"] == result.sent == expected == planned):
        raise RuntimeError(
            f"fan-out incomplete: planned {planned}, swept {result.sent}, "
            f"recorded {sent_rows}, server got {stats['sent']} of {expected}"
        )
    return {
        **measured.as_dict(),
        **other_cpu(expected, stats["cpu_seconds"], database_cpu),
        "max_in_flight": max_in_flight,
        "sent": sent_rows,
        "too_many_requests": stats["too_many_requests"],
        "retried": result.retried,
        # Per message sent: on its way to Telegram and back, then waiting for its mark.
        "sending_ms": round(result.sending_seconds / max(result.sent, 1) * 1000, 3),
        "recording_ms": round(result.recording_seconds / max(result.sent, 1) * 1000, 3),
    }


def other_cpu(
    messages: int, server_cpu: float, database_cpu: float | None = None
) -> dict[str, float]:
    """The CPU the Bot API server (and PostgreSQL, when it runs here) spent beside the
    client: on two cores the three share the machine."""
    figures = {
        "server_cpu_seconds": round(server_cpu, 3),
        "server_cpu_seconds_per_1000": round(server_cpu / messages * 1000, 3),
    }
    if database_cpu is not None:
        figures["database_cpu_seconds_per_1000"] = round(database_cpu / messages * 1000, 3)
    return figures


async def with_server_cpu(
    server: BotApiProcess, run: Callable[[], Awaitable[Measured]]
) -> dict[str, Any]:
    await server.reset()
    measured = await run()
    stats = await server.stats()
    return {**measured.as_dict(), **other_cpu(measured.messages, stats["cpu_seconds"])}


async def count_deliveries(database: Database, status: DeliveryStatus) -> int:
    async with database.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status == status)
        )
    return int(count or 0)


async def seeded_template(workdir: Path, chats: int) -> Path:
    """A seeded SQLite file to copy for each run (seeding is not what is measured)."""
    path = workdir / f"template-{chats}.sqlite3"
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await seed(database, Audience(private_chats=chats))
    finally:
        await database.dispose()
    return path


def copy_of(template: Path) -> str:
    copy = template.with_name(f"run-{time.monotonic_ns()}.sqlite3")
    shutil.copyfile(template, copy)
    return f"sqlite+aiosqlite:///{copy}"


async def measure_all(quick: bool) -> dict[str, Any]:
    chats = 3_000 if quick else 20_000
    reference_messages = 2_000 if quick else 5_000
    levels = [1, 16, 64] if quick else [1, 4, 16, 64, 256]
    curve_messages = 1_000 if quick else 3_000
    audience_ids = Audience(private_chats=chats).chat_ids
    rounds = 1 if quick else ROUNDS
    runs: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        server = stack.enter_context(BotApiProcess())
        workdir = Path(tmp)
        template = await seeded_template(workdir, chats)
        curve_template = await seeded_template(workdir, curve_messages)
        postgres_url: str | None = None
        seeded_until: str | None = None
        if await postgres_available(POSTGRES_ADMIN_URL):
            postgres_url = await seeded_postgres(stack, tmp, chats)
            seeded_until = await planned_until(postgres_url)
        else:
            notes.append(f"PostgreSQL at {POSTGRES_ADMIN_URL} unreachable: row skipped")
        reference = audience_ids[:reference_messages]
        with client_on_its_own_cpu():
            # The senders take turns, round after round: a machine that slows down for a
            # while slows each of them, and the ratios of the medians stay fair.
            for _ in range(rounds):
                record = runs.setdefault
                record("dispatcher_sqlite", []).append(
                    await dispatcher_run(copy_of(template), server, chats)
                )
                if postgres_url is not None:
                    await forget_deliveries(postgres_url, seeded_until)
                    record("dispatcher_postgresql", []).append(
                        await dispatcher_run(postgres_url, server, chats)
                    )
                raw = await with_server_cpu(
                    server,
                    partial(raw_aiohttp_loop, server.base_url, audience_ids, MAX_IN_FLIGHT),
                )
                record("raw_aiohttp", []).append({**raw, "concurrency": MAX_IN_FLIGHT})
                for transport_name, concurrency in (("httpx", 1), ("aiohttp", MAX_IN_FLIGHT)):
                    loop = await with_server_cpu(
                        server,
                        partial(
                            ptb_send_loop, server.base_url, reference, concurrency, transport_name
                        ),
                    )
                    record(f"ptb_{transport_name}", []).append({**loop, "concurrency": concurrency})
            curve = await concurrency_curve(
                server, levels, curve_messages, audience_ids, curve_template
            )
        # As many chats as the curve's (its seeded file is reused): at 16 in flight and
        # 50 ms a call about 300 messages/s, so some 10 s a sender at full size.
        round_trip = await with_round_trip(
            stack, tmp, audience_ids[:curve_messages], curve_template, postgres_url is not None
        )
    rows = {name: median_run(measured) for name, measured in runs.items()}
    return {
        "rows": rows,
        "rounds": rounds,
        "curve": curve,
        "round_trip": round_trip,
        "notes": notes,
    }


async def seeded_postgres(stack: contextlib.AsyncExitStack, tmp: str, chats: int) -> str:
    """A fresh PostgreSQL database (dropped when ``stack`` closes), seeded with ``chats``
    followers of the summit."""
    url = await stack.enter_async_context(fresh_database("postgresql", tmp, POSTGRES_ADMIN_URL))
    database = Database(url)
    try:
        await seed(database, Audience(private_chats=chats))
    finally:
        await database.dispose()
    return url


async def with_round_trip(
    stack: contextlib.AsyncExitStack,
    tmp: str,
    chat_ids: list[int],
    sqlite_template: Path,
    with_postgres: bool,
) -> dict[str, Any]:
    """The dispatcher on each database and the raw loop, one turn each, against a server
    answering ``ROUND_TRIP_MS`` after each call, all at the default messages in flight."""
    server = stack.enter_context(BotApiProcess(round_trip_ms=ROUND_TRIP_MS))
    messages = len(chat_ids)
    postgres_url = await seeded_postgres(stack, tmp, messages) if with_postgres else None
    rows: dict[str, Any] = {}
    with client_on_its_own_cpu():
        rows["dispatcher_sqlite"] = await dispatcher_run(copy_of(sqlite_template), server, messages)
        if postgres_url is not None:
            rows["dispatcher_postgresql"] = await dispatcher_run(postgres_url, server, messages)
        raw = await with_server_cpu(
            server, partial(raw_aiohttp_loop, server.base_url, chat_ids, MAX_IN_FLIGHT)
        )
        rows["raw_aiohttp"] = {**raw, "concurrency": MAX_IN_FLIGHT}
    return {"round_trip_ms": ROUND_TRIP_MS, "rows": rows}


def median_run(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median messages/s."""
    ordered = sorted(measured, key=lambda run: run["messages_per_second"])
    return ordered[len(ordered) // 2]


async def planned_until(database_url: str) -> str | None:
    """Up to when the ledger is planned (as seeded: before the summit's reminders)."""
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            return await session.scalar(select(Meta.value).where(Meta.key == PLANNED_UNTIL_KEY))
    finally:
        await database.dispose()


async def forget_deliveries(database_url: str, until: str | None) -> None:
    """The ledger as seeded (empty, planned up to ``until``, no dead rows), so that the next
    run plans and sends the same reminders again from the same start."""
    database = Database(database_url)
    try:
        async with database.transaction() as session:
            await session.execute(delete(Delivery))
            await session.execute(delete(Meta).where(Meta.key == PLANNED_UNTIL_KEY))
            if until is not None:
                session.add(Meta(key=PLANNED_UNTIL_KEY, value=until))
        # Without it each run inherited the last one's dead rows and index entries (20,000
        # deleted, 60,000 row versions written): PostgreSQL's CPU per message grew by half
        # from one turn to the next, and the median was a bloated run. SQLite runs start
        # from a fresh copy of the seeded file.
        async with database.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql(f"VACUUM FULL ANALYZE {Delivery.__tablename__}")
    finally:
        await database.dispose()


async def concurrency_curve(
    server: BotApiProcess,
    levels: list[int],
    messages: int,
    audience_ids: list[int],
    template: Path,
) -> dict[str, list[dict[str, float]]]:
    """Messages/s of the three senders at each number of messages in flight."""
    curve: dict[str, list[dict[str, float]]] = {
        "raw_aiohttp": [],
        "ptb_httpx": [],
        "dispatcher": [],
    }
    ids = audience_ids[:messages]
    for level in levels:
        raw: Measured = await raw_aiohttp_loop(server.base_url, ids, level)
        ptb = await ptb_send_loop(server.base_url, ids[: max(messages // 3, 300)], level, "httpx")
        sweep = await dispatcher_run(copy_of(template), server, messages, max_in_flight=level)
        for name, value in (
            ("raw_aiohttp", raw.per_second),
            ("ptb_httpx", ptb.per_second),
            ("dispatcher", sweep["messages_per_second"]),
        ):
            curve[name].append({"concurrency": level, "messages_per_second": round(value, 1)})
    return curve


_BACKENDS = (("sqlite", "SQLite"), ("postgresql", "PostgreSQL"))


def assess(rows: dict[str, Any], round_trip_rows: dict[str, Any]) -> dict[str, Any]:
    """Each database's dispatcher against each target: what it is, what was measured,
    and whether it is met. A database that was not measured has no entry."""
    ptb_default = rows["ptb_httpx"]["messages_per_second"]
    round_trip_raw = round_trip_rows.get("raw_aiohttp", {}).get("messages_per_second")
    assessed: dict[str, Any] = {}
    for backend, _ in _BACKENDS:
        row = rows.get(f"dispatcher_{backend}")
        if not row:
            continue
        per_second = row["messages_per_second"]
        targets: dict[str, Any] = {
            "loopback_messages_per_second": {
                "target_at_least": TARGET_PER_SECOND,
                "measured": round(per_second, 1),
                "met": per_second >= TARGET_PER_SECOND,
            },
            "loopback_vs_ptb_default": {
                "target_at_least": TARGET_VS_PTB,
                "measured": round(per_second / ptb_default, 3),
                "met": per_second / ptb_default >= TARGET_VS_PTB,
            },
        }
        at_round_trip = round_trip_rows.get(f"dispatcher_{backend}")
        vs_raw = (
            at_round_trip["messages_per_second"] / round_trip_raw
            if at_round_trip and round_trip_raw
            else None
        )
        targets["round_trip_vs_raw_aiohttp"] = {
            "round_trip_ms": ROUND_TRIP_MS,
            "target_at_least": TARGET_VS_RAW_AT_ROUND_TRIP,
            "measured": None if vs_raw is None else round(vs_raw, 3),
            "met": vs_raw is not None and vs_raw >= TARGET_VS_RAW_AT_ROUND_TRIP,
        }
        assessed[backend] = targets
    return assessed


def target_lines(assessed: dict[str, Any], *, round_trip: bool) -> list[str]:
    """One line per target and database, each saying "met" or "not met"."""
    lines = []
    for backend, label in _BACKENDS:
        targets = assessed.get(backend)
        if targets is None:
            continue
        if round_trip:
            t = targets["round_trip_vs_raw_aiohttp"]
            measured = "not measured" if t["measured"] is None else f"{t['measured']:.3f}×"
            lines.append(
                f"- dispatcher on {label} at a {t['round_trip_ms']:g} ms round trip: "
                f"{measured} the raw loop (target ≥ {t['target_at_least']:g}×): "
                f"{verdict(t['met'])}"
            )
            continue
        rate = targets["loopback_messages_per_second"]
        ptb = targets["loopback_vs_ptb_default"]
        lines += [
            f"- dispatcher on {label} on loopback: {rate['measured']:,.0f} messages/s "
            f"(target ≥ {rate['target_at_least']:,.0f}/s): {verdict(rate['met'])}",
            f"- dispatcher on {label} on loopback: {ptb['measured']:.2f}× PTB's default send "
            f"loop (target ≥ {ptb['target_at_least']:g}×): {verdict(ptb['met'])}",
        ]
    return lines


def summarise(measured: dict[str, Any]) -> tuple[dict[str, Any], str]:
    rows = measured["rows"]
    round_trip = measured.get("round_trip") or {}
    assessed = assess(rows, round_trip.get("rows", {}))
    every_target_met = len(assessed) == len(_BACKENDS) and all(
        target["met"] for targets in assessed.values() for target in targets.values()
    )
    labels = {
        "dispatcher_sqlite": "dispatcher, SQLite (claim, send, record)",
        "dispatcher_postgresql": "dispatcher, PostgreSQL (claim, send, record)",
        "raw_aiohttp": "(a) raw aiohttp POST loop",
        "ptb_httpx": "(b) PTB send loop, default transport (HTTPX)",
        "ptb_aiohttp": "PTB send loop, our aiohttp transport",
    }
    table = markdown_table(
        [
            "sender",
            "in flight",
            "messages",
            "messages/s",
            "CPU s per 1,000",
            "Bot API server CPU s per 1,000",
            "PostgreSQL CPU s per 1,000",
        ],
        [
            (
                labels[key],
                row.get("max_in_flight", row.get("concurrency")),
                f"{row['messages']:,}",
                f"{row['messages_per_second']:,.0f}",
                f"{row['cpu_seconds_per_1000']:.2f}",
                _cpu(row.get("server_cpu_seconds_per_1000")),
                _cpu(row.get("database_cpu_seconds_per_1000")),
            )
            for key, row in rows.items()
        ],
    )
    ratio_lines = target_lines(assessed, round_trip=False)
    ratio_lines += cpu_budget(rows)
    ratio_lines += time_per_message(rows)
    rounds = measured.get("rounds", 1)
    taken = (
        f"Each sender's median of {rounds} turns, the senders taking turns.\n\n"
        if rounds > 1
        else ""
    )
    markdown = (
        "## Fan-out: one summit, one reminder to each subscribed chat\n\n"
        + table
        + "\n"
        + taken
        + "\n".join(ratio_lines + [f"- {note}" for note in measured["notes"]])
        + "\n"
    )
    if round_trip:
        markdown += "\n" + round_trip_section(round_trip)
        markdown += "\n" + "\n".join(target_lines(assessed, round_trip=True)) + "\n"
    markdown += (
        f"\nNo target against the raw loop on loopback: with {MAX_IN_FLIGHT} messages in "
        'flight and a durable "sent" mark before every next message from a sender, that '
        "ratio measures the disk's fsync, not this code.\n"
    )
    results = {
        **measured,
        "targets": {
            "loopback_messages_per_second": TARGET_PER_SECOND,
            "loopback_vs_ptb_default": TARGET_VS_PTB,
            "round_trip_ms": ROUND_TRIP_MS,
            "round_trip_vs_raw_aiohttp": TARGET_VS_RAW_AT_ROUND_TRIP,
        },
        "targets_by_database": assessed,
        "every_target_met_on_both_databases": every_target_met,
    }
    return results, markdown


def _cpu(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def cpu_budget(rows: dict[str, Any]) -> list[str]:
    """What a message costs the whole machine, client, Bot API server and PostgreSQL
    together, and the rate that leaves possible on its cores."""
    cores = os.cpu_count() or 1
    lines = []
    for key, label in (
        ("raw_aiohttp", "the raw loop"),
        ("dispatcher_sqlite", "the dispatcher on SQLite"),
        ("dispatcher_postgresql", "the dispatcher on PostgreSQL"),
    ):
        row = rows.get(key)
        if not row or "server_cpu_seconds_per_1000" not in row:
            continue
        per_message = (
            row["cpu_seconds_per_1000"]
            + row["server_cpu_seconds_per_1000"]
            + row.get("database_cpu_seconds_per_1000", 0.0)
        )  # ms of CPU per message
        lines.append(
            f"- CPU a message for {label}, all processes: {per_message:.2f} ms; "
            f"on {cores} cores at most {cores * 1000 / per_message:,.0f} messages/s"
        )
    return lines


_DISPATCHERS = (("dispatcher_sqlite", "SQLite"), ("dispatcher_postgresql", "PostgreSQL"))


def per_sender_ms(row: dict[str, Any]) -> float:
    """Milliseconds between one sender's messages: what is in flight over messages/s."""
    in_flight = row.get("max_in_flight", row.get("concurrency", 1))
    return float(in_flight) / float(row["messages_per_second"]) * 1000


def time_per_message(rows: dict[str, Any]) -> list[str]:
    """Where a sender's time between two messages goes. A sender sends its next message
    once the last one's "sent" mark is written, so that a crash repeats at most what is
    in flight: the wait for that durable mark is the disk's fsync, which the raw loop,
    recording nothing, never pays. Beside it, the time the loopback target
    (``TARGET_PER_SECOND``) allows a sender at the dispatcher's messages in flight."""
    raw = rows.get("raw_aiohttp")
    if not raw:
        return []
    raw_ms = per_sender_ms(raw)
    parts = []
    allowed_ms = 0.0
    for key, label in _DISPATCHERS:
        row = rows.get(key)
        if not row or "sending_ms" not in row:
            continue
        total = per_sender_ms(row)
        allowed_ms = allowed_ms or per_sender_ms({**row, "messages_per_second": TARGET_PER_SECOND})
        rest = max(total - row["sending_ms"] - row["recording_ms"], 0.0)
        parts.append(
            f"on {label} {total:.2f} ms: {row['sending_ms']:.2f} on its way to the server "
            f'and back, {row["recording_ms"]:.2f} waiting for its "sent" mark, '
            f"{rest:.2f} the rest (claims, rendering, the event loop's other work)"
        )
    if not parts:
        return []
    return [
        f"- Time between one sender's messages: the raw loop {raw_ms:.2f} ms; the "
        f"dispatcher {'; '.join(parts)}. The {TARGET_PER_SECOND:,.0f}/s target allows "
        f"{allowed_ms:.2f} ms."
    ]


def round_trip_section(round_trip: dict[str, Any]) -> str:
    """The fan-out against a server answering like one across a network."""
    rows = round_trip["rows"]
    raw = rows["raw_aiohttp"]["messages_per_second"]
    labels = {
        "dispatcher_sqlite": "dispatcher, SQLite",
        "dispatcher_postgresql": "dispatcher, PostgreSQL",
        "raw_aiohttp": "raw aiohttp POST loop",
    }
    table = markdown_table(
        [
            "sender",
            "in flight",
            "messages",
            "messages/s",
            "× the raw loop",
            "ms waiting for the mark",
        ],
        [
            (
                labels[key],
                row.get("max_in_flight", row.get("concurrency")),
                f"{row['messages']:,}",
                f"{row['messages_per_second']:,.0f}",
                f"{row['messages_per_second'] / raw:.3f}",
                f"{row['recording_ms']:.2f}" if "recording_ms" in row else "",
            )
            for key, row in rows.items()
        ],
    )
    return (
        f"**The same with a {round_trip['round_trip_ms']:g} ms round trip.** The server "
        f"answers every call {round_trip['round_trip_ms']:g} ms after it arrives, as "
        "Telegram's answers come back over a network; one turn each, rate limiting off.\n\n" + table
    )


def run(out_dir: Path, *, quick: bool) -> dict[str, Any]:
    measured = asyncio.run(measure_all(quick))
    results, markdown = summarise(measured)
    results = {"benchmark": NAME, "quick": quick, "machine": machine(), **results}
    write_results(out_dir, NAME, results, markdown)
    return results
