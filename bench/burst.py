"""Benchmark 5, a burst of new users: a channel's "Remind me", tapped by hundreds at once.

N new users (1,000; 200 with ``--quick``) each send ``/start e_<event>`` (the deep link
of a channel post) at the same moment; each reply is an event card, whose 🔔 button the
user taps as soon as it arrives. A user is done when the tap is answered and the
confirmation has arrived. The bot is the real one, in a process of its own, long polling
the benchmark's Bot API server (bench/botapi_server.py, which plays the users); so is
the reference, a minimal python-telegram-bot bot that answers ``/start`` with a button
and a tap with an answer and a message, as PTB's defaults run it. Updates a second =
2N / the time from the burst to the last user done.

Then the same bot during a fan-out: 20,000 chats (5,000 with ``--quick``) get a
reminder at the paid-broadcast rate (950 a second) while

- the same burst arrives: the fan-out's rate while both go on (the burst may outlast
  it), against its rate alone;
- users arrive steadily (10 a second for 10 s): how long each reply took.

Targets: the burst at ≥ 0.5× the minimal bot on SQLite and ≥ 0.7× on PostgreSQL;
during a fan-out, reply p99 ≤ 100 ms and the fan-out's rate within 5 % of its rate alone.

The bot logs at WARNING here (its one INFO line per update is left out, as the minimal
bot has none). Run alone: ``python -m bench.burst [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from bench.catalogue import BACKENDS, postgres_available, throwaway_database
from bench.common import (
    CLIENT_CPU,
    TOKEN,
    BotApiProcess,
    machine,
    markdown_table,
    percentile,
    pin_to_cpu,
    verdict,
    write_results,
)
from bench.output import DEFAULT_OUT_DIR
from bench.seed import SUMMIT_START, Audience, seed
from storage.database import Database

NAME = "burst"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
TARGET_VS_MINIMAL = {"sqlite": 0.5, "postgresql": 0.7}
TARGET_REPLY_P99_MS = 100.0
TARGET_FANOUT_RATE_DROP = 0.05
FANOUT_RATE = 950.0  # paid broadcasts: Telegram's 1,000 a second, as the bot paces them
STEADY_USERS_PER_SECOND = 10.0
STEADY_SECONDS = 10.0
FIRST_USER = 5_000_000_000  # far from the seeded chats
EVENT_KEY = "bench-summit"
# The bot's clock: with the fan-out, the summit's one-hour reminders are due; without,
# nothing is due for a week.
FANOUT_NOW = SUMMIT_START - dt.timedelta(hours=1) + dt.timedelta(seconds=1)
QUIET_NOW = SUMMIT_START - dt.timedelta(days=7)


# --- the bots, each run as ``python -m bench.burst serve ...`` --------------------------


async def serve_ours(database_url: str, base_url: str, now: dt.datetime) -> None:
    from bot.app import build_application, running
    from bot.clock import FixedClock
    from config.settings import Settings

    settings = Settings(
        _env_file=None,
        bot_token=TOKEN,
        database_url=database_url,
        telegram_base_url=base_url,
        requests_per_minute=1_000_000,
        allow_paid_broadcast=True,
        reminder_sweep_seconds=1.0,
    )
    # Without PTB's AIORateLimiter, as the minimal bot: it keeps replies to Telegram's
    # 30 messages a second, which would be all this measured (the server has no limits).
    application = build_application(settings, clock=FixedClock(now), rate_limit=False)
    profile = os.environ.get("BENCH_PROFILE", "")  # a file: where the bot's time went
    profiler: Any = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="disabled")
    async with running(application, polling=True, poll_timeout=10):
        if profiler is not None:
            profiler.start()
        await _until_terminated()
        if profiler is not None:
            profiler.stop()
            if profile.endswith(".pyisession"):  # for pyinstrument --load (any renderer)
                profiler.last_session.save(profile)
            else:
                text = profiler.output_text(unicode=True, color=False)
                await asyncio.to_thread(Path(profile).write_text, text)


async def serve_minimal(base_url: str) -> None:
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
    from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler

    async def start(update: Update, _: Any) -> None:
        assert update.effective_message is not None
        button = InlineKeyboardButton("🔔 Remind me", callback_data="remind")
        await update.effective_message.reply_text(
            "Event card", reply_markup=InlineKeyboardMarkup([[button]])
        )

    async def tap(update: Update, _: Any) -> None:
        query = update.callback_query
        assert query is not None and query.message is not None
        await query.answer("Done")
        await application.bot.send_message(query.message.chat.id, "You will be reminded.")

    application = ApplicationBuilder().token(TOKEN).base_url(base_url).build()
    application.add_handler(CommandHandler("start", start))
    application.add_handler(CallbackQueryHandler(tap))
    async with application:
        assert application.updater is not None
        await application.updater.start_polling(poll_interval=0, timeout=10)
        await application.start()
        await _until_terminated()
        await application.updater.stop()
        await application.stop()


async def _until_terminated() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


@contextlib.asynccontextmanager
async def bot_process(
    kind: str, server: BotApiProcess, database_url: str = "", now: dt.datetime = QUIET_NOW
) -> AsyncIterator[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "bench.burst", "serve", kind, "--base-url", server.base_url]
    if kind == "ours":
        args += ["--database-url", database_url, "--now", now.isoformat()]
    process = subprocess.Popen(args, cwd=PROJECT_ROOT, env=os.environ.copy())  # noqa: ASYNC220
    try:
        await _polling(server, process)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _polling(server: BotApiProcess, process: subprocess.Popen[bytes]) -> None:
    """Return once the bot has started and polls (its second getUpdates call)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bot exited with {process.returncode} before polling")
        if (await _get(server, "/deliveries"))["polls"] >= 2:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the bot did not start polling within 2 minutes")


async def _get(server: BotApiProcess, path: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(server.root + path) as r:
        result: dict[str, Any] = await r.json()
        return result


async def _post(server: BotApiProcess, path: str, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session, session.post(server.root + path, json=body) as r:
        await r.read()


# --- one run ------------------------------------------------------------------------------


async def burst(
    server: BotApiProcess, users: int, first_chat_id: int, *, rate: float = 0.0
) -> dict[str, Any]:
    """Send the users' ``/start``, wait until every one is done; the figures."""
    await _post(
        server,
        "/burst",
        {
            "users": users,
            "first_chat_id": first_chat_id,
            "text": f"/start e_{EVENT_KEY}",
            "rate": rate,
        },
    )
    deadline = time.monotonic() + max(120.0, users / 5)
    while True:
        report = await _get(server, "/burst")
        if report["done"] >= users or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    return figures(report, users)


def figures(report: dict[str, Any], users: int) -> dict[str, Any]:
    timeline = report["timeline"]
    done = [u for u in timeline if u["press_done"] is not None]
    started = report["started"]
    last = max((u["press_done"] for u in done), default=started)
    replies_ms = [(u["start_answered"] - u["start_queued"]) * 1000 for u in done] + [
        (u["press_done"] - u["press_queued"]) * 1000 for u in done
    ]
    seconds = last - started
    return {
        "users": users,
        "users_done": len(done),
        "seconds": round(seconds, 3),
        "updates_per_second": round(2 * len(done) / seconds, 1) if seconds > 0 else 0.0,
        "reply_p50_ms": round(statistics.median(replies_ms), 1) if replies_ms else None,
        "reply_p99_ms": round(percentile(replies_ms, 0.99), 1) if replies_ms else None,
        "window": (started, last),
    }


def rate_in(times: list[float], start: float, end: float) -> float:
    inside = [t for t in times if start <= t <= end]
    return len(inside) / (end - start) if end > start else 0.0


async def fanout_alone(server: BotApiProcess, chats: int) -> float:
    """The fan-out's rate, a second after its first message, over the next 10 s (or
    the middle of it, when it is shorter)."""
    times = await _deliveries_once(server, chats)
    first, last = times[0], times[-1]
    start = first + min(1.0, (last - first) / 4)
    end = min(start + 10.0, last - min(1.0, (last - first) / 4))
    return rate_in(times, start, end)


async def _deliveries_once(server: BotApiProcess, expected: int) -> list[float]:
    deadline = time.monotonic() + max(60.0, expected / 100)
    while time.monotonic() < deadline:
        times: list[float] = (await _get(server, "/deliveries"))["times"]
        if len(times) >= expected:
            return times
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the fan-out sent {len(times)} of {expected} messages")


async def _fanout_started(server: BotApiProcess, after: int = 200) -> None:
    deadline = time.monotonic() + 120
    while len((await _get(server, "/deliveries"))["times"]) < after:
        if time.monotonic() > deadline:
            raise TimeoutError("the fan-out did not start")
        await asyncio.sleep(0.05)


async def measure_backend(backend: str, users: int, chats: int) -> dict[str, Any]:
    results: dict[str, Any] = {"backend": backend}
    with BotApiProcess() as server:
        async with throwaway_database(backend, NAME) as url:
            await _seed(url, 0)
            async with bot_process("ours", server, url, QUIET_NOW):
                results["burst"] = await burst(server, users, FIRST_USER)
        await server.reset()
        async with bot_process("minimal", server):
            results["minimal_bot"] = await burst(server, users, FIRST_USER)
    for name, run in (("fanout_alone", None), ("fanout_and_burst", "burst"), ("steady", "steady")):
        with BotApiProcess() as server:
            async with throwaway_database(backend, NAME) as url:
                await _seed(url, chats)
                async with bot_process("ours", server, url, FANOUT_NOW):
                    await _fanout_started(server)
                    if run == "burst":
                        results[name] = await burst(server, users, FIRST_USER)
                    elif run == "steady":
                        # Users for half the fan-out's time at most (it must outlast them).
                        seconds = min(STEADY_SECONDS, chats / FANOUT_RATE / 2)
                        count = int(STEADY_USERS_PER_SECOND * seconds)
                        results[name] = await burst(
                            server, count, FIRST_USER, rate=STEADY_USERS_PER_SECOND
                        )
                    times = await _deliveries_once(server, chats)
                    if run is None:
                        alone = await fanout_alone(server, chats)
                        results[name] = {"messages_per_second": round(alone, 1)}
                    else:
                        # While both went on: a burst at the fan-out's pace outlasts it, and
                        # seconds after its last message would count as seconds it sent none.
                        start, end = results[name]["window"]
                        end = min(end, times[-1])
                        results[name]["fanout_messages_per_second"] = round(
                            rate_in(times, start, end), 1
                        )
                        results[name]["seconds_beside_fanout"] = round(max(end - start, 0), 1)
    return assess(results)


async def _seed(url: str, chats: int) -> None:
    database = Database(url)
    try:
        await seed(database, Audience(private_chats=chats))
    finally:
        await database.dispose()


def assess(results: dict[str, Any]) -> dict[str, Any]:
    backend = results["backend"]
    ours, minimal = results["burst"], results["minimal_bot"]
    ratio = ours["updates_per_second"] / minimal["updates_per_second"]
    alone = results["fanout_alone"]["messages_per_second"]
    during = results["fanout_and_burst"]["fanout_messages_per_second"]
    steady = results["steady"]
    drop = 1 - during / alone if alone else 1.0
    steady_drop = 1 - steady["fanout_messages_per_second"] / alone if alone else 1.0
    results["targets"] = {
        "burst_vs_minimal": {
            "target": TARGET_VS_MINIMAL[backend],
            "measured": round(ratio, 3),
            "met": ratio >= TARGET_VS_MINIMAL[backend],
        },
        "reply_p99_ms_during_fanout": {
            "target": TARGET_REPLY_P99_MS,
            "measured": steady["reply_p99_ms"],
            "met": steady["reply_p99_ms"] is not None
            and steady["reply_p99_ms"] <= TARGET_REPLY_P99_MS
            and steady["users_done"] == steady["users"],
        },
        "fanout_rate_drop_during_burst": {
            "target": TARGET_FANOUT_RATE_DROP,
            "measured": round(max(drop, steady_drop), 3),
            "met": max(drop, steady_drop) <= TARGET_FANOUT_RATE_DROP,
        },
    }
    for run in ("burst", "minimal_bot", "fanout_and_burst", "steady"):
        results[run].pop("window", None)
    return results


def summarise(result: dict[str, Any]) -> str:
    p = result["parameters"]
    text = (
        f"## Burst of new users ({p['users']:,} at once, each `/start e_…` then 🔔; "
        f"fan-out of {p['fanout_chats']:,} chats at {p['fanout_rate']:g}/s)\n\n"
    )
    rows = []
    for r in result["results"]:
        rows.append(
            [
                r["backend"],
                f"{r['burst']['updates_per_second']:,.0f}",
                f"{r['minimal_bot']['updates_per_second']:,.0f}",
                f"{r['targets']['burst_vs_minimal']['measured']:.2f}×",
                f"{r['burst']['reply_p99_ms']:,.0f}",
                f"{r['fanout_and_burst']['updates_per_second']:,.0f}",
            ]
        )
    text += markdown_table(
        [
            "database",
            "summitbot updates/s",
            "minimal PTB bot updates/s",
            "ratio",
            "burst reply p99 ms",
            "updates/s during fan-out",
        ],
        rows,
    )
    text += "\n"
    rows = []
    for r in result["results"]:
        rows.append(
            [
                r["backend"],
                f"{r['fanout_alone']['messages_per_second']:,.0f}",
                f"{r['fanout_and_burst']['fanout_messages_per_second']:,.0f} "
                f"({r['fanout_and_burst']['seconds_beside_fanout']:g} s)",
                f"{r['steady']['fanout_messages_per_second']:,.0f}",
                f"{r['steady']['reply_p50_ms']} / {r['steady']['reply_p99_ms']}",
            ]
        )
    text += markdown_table(
        [
            "database",
            "fan-out alone msg/s",
            "during the burst (seconds both went on)",
            f"during steady users ({STEADY_USERS_PER_SECOND:g}/s)",
            "steady users' reply p50 / p99 ms",
        ],
        rows,
    )
    text += "\n"
    for r in result["results"]:
        t = r["targets"]
        b = t["burst_vs_minimal"]
        q = t["reply_p99_ms_during_fanout"]
        f = t["fanout_rate_drop_during_burst"]
        text += (
            f"- {r['backend']}: burst {b['measured']:.2f}× the minimal bot (target ≥ "
            f"{b['target']:g}×): {verdict(b['met'])}; reply p99 during a fan-out "
            f"{q['measured']} ms (target ≤ {q['target']:g} ms): {verdict(q['met'])}; "
            f"fan-out rate {f['measured'] * 100:.1f} % lower beside users (target ≤ "
            f"{f['target'] * 100:g} %): {verdict(f['met'])}\n"
        )
    for note in result["notes"]:
        text += f"- {note}\n"
    return text


async def run_async(out_dir: Path, *, quick: bool) -> dict[str, Any]:
    users, chats = (200, 5_000) if quick else (1_000, 20_000)
    results, notes = [], []
    for backend in BACKENDS:
        if backend == "postgresql" and (why := await postgres_available()):
            notes.append(f"postgresql skipped: {why}")
            continue
        results.append(await measure_backend(backend, users, chats))
    result = {
        "benchmark": NAME,
        "quick": quick,
        "machine": machine(),
        "parameters": {
            "users": users,
            "fanout_chats": chats,
            "fanout_rate": FANOUT_RATE,
            "steady_users_per_second": STEADY_USERS_PER_SECOND,
            "steady_seconds": STEADY_SECONDS,
            "transport": "long polling, bench/botapi_server.py; each bot in its own process",
        },
        "results": results,
        "notes": notes,
        "meets_targets": bool(results)
        and all(t["met"] for r in results for t in r["targets"].values()),
    }
    write_results(out_dir, NAME, result, summarise(result))
    return result


def run(out_dir: Path, *, quick: bool) -> dict[str, Any]:
    return asyncio.run(run_async(out_dir, quick=quick))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    measure_parser = commands.add_parser("measure", help="run the benchmark (the default)")
    measure_parser.add_argument("--quick", action="store_true")
    measure_parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR)
    serve_parser = commands.add_parser("serve", help="run one of the bots (internal)")
    serve_parser.add_argument("kind", choices=("ours", "minimal"))
    serve_parser.add_argument("--base-url", required=True)
    serve_parser.add_argument("--database-url", default="")
    serve_parser.add_argument("--now", default=QUIET_NOW.isoformat())
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args()
    if args.command == "serve":
        logging.basicConfig(level=logging.WARNING)
        pin_to_cpu(CLIENT_CPU)
        if args.kind == "ours":
            now = dt.datetime.fromisoformat(args.now)
            asyncio.run(serve_ours(args.database_url, args.base_url, now))
        else:
            asyncio.run(serve_minimal(args.base_url))
        return
    result = run(args.out, quick=args.quick)
    print(json.dumps({"meets_targets": result["meets_targets"]}))


if __name__ == "__main__":
    main()
