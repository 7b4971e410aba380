"""Benchmark 3, interactive latency: handler time with 10,000 events and 100,000 chats.

``/upcoming``, ``/org``, ``/search``, an inline query and a ◀ ▶ paging button (reads), and
a new user's first ``/start e_<event>``, the 🔔 under the card it shows, ``/subscribe``,
a lead-time toggle, ``/lang`` and ``/tz`` (writes, target p99 ≤ 25 ms) are
processed in process by the real application (``application.process_update``, with
the in-process Bot API emulator as the network), from users among the 100,000
subscribed chats. The reply cache is off and the flood limit out of reach, so every
update does its real work. The emulator's checks of an inline answer (Telegram's HTML
rules for every card) run right after the timer stops, not inside it: they are the test
double's work, not the bot's, and a refused answer still voids the run (it is logged as
an error). Targets: p99 ≤ 15 ms to read, ≤ 25 ms to write, on SQLite and PostgreSQL. The JSON
also has each handler's CPU time and SQL statements per update, which a busy machine
does not stretch as it does the wall time. The Mini App's JSON endpoints (session,
calendar, event card, chairs, me, follow, settings) are timed the same way, called as
the ASGI app in process (``bench/webapp.py``), target p99 ≤ 20 ms each.

Run alone: ``python -m bench.latency [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from bench import webapp
from bench.catalogue import (
    BACKENDS,
    BENCH_NOW,
    Scale,
    Seeded,
    postgres_available,
    seed,
    throwaway_database,
)
from bench.common import machine, markdown_table, percentile, verdict, write_results
from bench.inprocess import ErrorCounter, InProcessBot, bench_settings
from bench.output import DEFAULT_OUT_DIR
from bot.clock import FixedClock
from bot.presentation import callbacks
from storage.database import Database
from storage.models import Event
from storage.queries import EventFilter, When

NAME = "latency"
TARGET_P99_MS = 15.0
TARGET_WRITE_P99_MS = 25.0
READ_KINDS = ("/upcoming", "/org", "/search", "inline query", "paging button")
# Handlers that write: a new user's first /start (a deep link: the chat is stored), the 🔔
# under the card it shows, /subscribe to another event, a lead-time toggle, /lang, /tz.
WRITE_KINDS = ("first /start e_…", "🔔 button", "/subscribe", "lead-time toggle", "/lang", "/tz")
CHAT_KINDS = READ_KINDS + WRITE_KINDS
# The Mini App's JSON endpoints (bench/webapp.py): target p99 ≤ 20 ms each.
KINDS = CHAT_KINDS + webapp.KINDS
NEW_USERS = 8_000_000_000  # far from the seeded chats
FULL = Scale()
QUICK = Scale(organisations=50, events=2_000, chats=10_000)
SEARCHES = (
    "caspian energy",
    "caspain",  # a typo
    "silk road forum",
    "summit 2027",
    "ministerial",
    "шос",
    "SCO",
    "arctic water commission",
    "nordic",
    "trade organisation 2028",
)


class Workload:
    """Updates of each kind, from random known users, drawn from a seeded generator."""

    def __init__(self, bot: InProcessBot, seeded: Seeded, rng: random.Random) -> None:
        self.bot = bot
        self.seeded = seeded
        self.rng = rng
        self.pages: dict[int, int] = {}  # chat → page its list shows
        self.new_users = 0
        self.newcomers: list[int] = []  # shown a card by their first /start, 🔔 not tapped
        self.event_keys: list[str] = []  # events to /subscribe to
        self.lead_menus: list[tuple[int, dict[str, Any]]] = []  # lead-time menus shown

    def _user(self) -> int:
        return self.rng.choice(self.seeded.chat_ids)

    def upcoming(self) -> dict[str, Any]:
        return self.bot.message(self._user(), "/upcoming")

    def org(self) -> dict[str, Any]:
        return self.bot.message(
            self._user(), f"/org {self.rng.choice(self.seeded.organisation_names)}"
        )

    def search(self) -> dict[str, Any]:
        return self.bot.message(self._user(), f"/search {self.rng.choice(SEARCHES)}")

    def inline(self) -> dict[str, Any]:
        return self.bot.inline_query(self._user(), self.rng.choice(SEARCHES))

    def paging(self) -> dict[str, Any]:
        # A button under a list this chat was shown (by the warm-up's /upcoming).
        chat_id = self.rng.choice(list(self.pages))
        page = self.pages[chat_id] % 5 + 1
        self.pages[chat_id] = page
        data = callbacks.event_list(EventFilter(when=When.UPCOMING), page)
        return self.bot.press(chat_id, self.bot.last_message[chat_id], data)

    # --- writes ---------------------------------------------------------------------

    def first_start(self) -> dict[str, Any]:
        self.new_users += 1
        self.newcomers.append(NEW_USERS + self.new_users)
        return self.bot.message(
            NEW_USERS + self.new_users, f"/start e_{self.seeded.followed_event_key}"
        )

    def bell(self) -> dict[str, Any]:
        # The 🔔 under the card a newcomer was shown by their first /start.
        chat_id = self.newcomers.pop(0) if self.newcomers else self._newcomer()
        card = self.bot.last_message[chat_id]
        data = card["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        return self.bot.press(chat_id, card, data)

    def _newcomer(self) -> int:
        raise RuntimeError("a 🔔 without a card: first /start runs before it")

    def subscribe(self) -> dict[str, Any]:
        return self.bot.message(self._user(), f"/subscribe {self.rng.choice(self.event_keys)}")

    def lead_toggle(self) -> dict[str, Any]:
        chat_id, shown = self.rng.choice(self.lead_menus)
        toggles = [
            button["callback_data"]
            for row in shown["reply_markup"]["inline_keyboard"]
            for button in row
            if button.get("callback_data", "").startswith("lt:")
        ]
        return self.bot.press(chat_id, shown, self.rng.choice(toggles))

    def lang(self) -> dict[str, Any]:
        return self.bot.message(self._user(), f"/lang {self.rng.choice(('en', 'ru', 'kk'))}")

    def tz(self) -> dict[str, Any]:
        zone = self.rng.choice(("Asia/Almaty", "Europe/Moscow", "Asia/Shanghai"))
        return self.bot.message(self._user(), f"/tz {zone}")

    def builders(self) -> dict[str, Callable[[], dict[str, Any]]]:
        return dict(
            zip(
                CHAT_KINDS,
                (
                    self.upcoming,
                    self.org,
                    self.search,
                    self.inline,
                    self.paging,
                    self.first_start,
                    self.bell,
                    self.subscribe,
                    self.lead_toggle,
                    self.lang,
                    self.tz,
                ),
                strict=True,
            )
        )


async def measure(
    url: str,
    backend: str,
    scale: Scale,
    samples: int,
    warmup: int,
    profile: str | None = None,
) -> dict[str, Any]:
    """Seed ``url``, then time ``samples`` updates of each kind after ``warmup`` of each."""
    database = Database(url)
    started = time.perf_counter()
    seeded = await seed(database, scale)
    await database.dispose()
    seconds_to_seed = time.perf_counter() - started

    errors = ErrorCounter()
    logging.getLogger().addHandler(errors)
    bot = InProcessBot(bench_settings(url), FixedClock(BENCH_NOW))
    workload = Workload(bot, seeded, random.Random(11))
    timings: dict[str, list[float]] = {kind: [] for kind in KINDS}
    # Beside the wall time, which a busy machine stretches: the process's CPU time and
    # the SQL statements each update ran (transaction control left out: PostgreSQL's
    # driver begins without a statement).
    cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
    statements: dict[str, list[int]] = {kind: [] for kind in KINDS}
    executed = StatementCounter(bot.application.bot_data.services.database.engine.sync_engine)
    try:
        async with bot.running():
            # The chats whose lists the paging buttons turn.
            for chat_id in seeded.chat_ids[:20]:
                await bot.process(bot.message(chat_id, "/upcoming"))
                workload.pages[chat_id] = 0
            await _prepare_writes(bot, seeded, workload)
            builders = workload.builders()
            app = webapp.InProcessApp(bot.application, bot.clock)
            app_workload = webapp.AppWorkload(seeded, workload.event_keys, random.Random(13))
            app_builders = app_workload.builders()
            for request in app_workload.warm_up():
                await app.timed(request)
            for _ in range(warmup):
                for build in builders.values():
                    await bot.process(build())
                for build_request in app_builders.values():
                    await app.timed(build_request())
            if profile in app_builders:
                await _profile_app(app, app_builders[profile], samples)
            elif profile is not None:
                if profile == "🔔 button":  # each 🔔 is under a newcomer's card
                    for _ in range(samples):
                        await bot.process(builders["first /start e_…"]())
                await _profile(bot, builders[profile], samples)
            calls_before = sum(bot.calls.values())
            # Interleaved, so a drift of the shared machine touches every kind alike.
            for _ in range(samples):
                for kind, build in builders.items():
                    update = build()
                    executed_before, cpu_before = executed.count, time.process_time()
                    timings[kind].append(await bot.process(update) * 1000)
                    cpu[kind].append((time.process_time() - cpu_before) * 1000)
                    statements[kind].append(executed.count - executed_before)
                for kind, build_request in app_builders.items():
                    request = build_request()
                    executed_before, cpu_before = executed.count, time.process_time()
                    timings[kind].append(await app.timed(request) * 1000)
                    cpu[kind].append((time.process_time() - cpu_before) * 1000)
                    statements[kind].append(executed.count - executed_before)
            replies = sum(bot.calls.values()) - calls_before
    finally:
        logging.getLogger().removeHandler(errors)
        executed.close()
    rows = {
        kind: {
            "p50_ms": round(statistics.median(values), 2),
            "p99_ms": round(percentile(values, 0.99), 2),
            "max_ms": round(max(values), 2),
            "mean_ms": round(statistics.fmean(values), 2),
            "cpu_p50_ms": round(statistics.median(cpu[kind]), 2),
            "cpu_p99_ms": round(percentile(cpu[kind], 0.99), 2),
            "sql_statements_mean": round(statistics.fmean(statements[kind]), 2),
            "samples": len(values),
            "target_p99_ms": _target(kind),
            "meets_target": percentile(values, 0.99) <= _target(kind),
        }
        for kind, values in timings.items()
    }
    return {
        "backend": backend,
        "data": seeded.describe(),
        "seconds_to_seed": round(seconds_to_seed, 1),
        "bot_api_calls_while_timed": replies,
        "errors_logged": errors.records[:10],
        "handlers": rows,
    }


def _target(kind: str) -> float:
    if kind in webapp.KINDS:
        return webapp.TARGET_P99_MS
    return TARGET_WRITE_P99_MS if kind in WRITE_KINDS else TARGET_P99_MS


async def _prepare_writes(bot: InProcessBot, seeded: Seeded, workload: Workload) -> None:
    """Events to /subscribe to, and lead-time menus (a chat's ⏱ under /mysubs) to toggle."""
    async with bot.application.bot_data.services.database.sessions() as session:
        keys = await session.scalars(select(Event.key).order_by(Event.id).limit(500))
        workload.event_keys = list(keys)
    for chat_id in seeded.chat_ids[:40]:
        await bot.process(bot.message(chat_id, f"/subscribe {seeded.followed_event_key}"))
        await bot.process(bot.message(chat_id, "/mysubs"))
        shown = bot.last_message[chat_id]
        for row in shown.get("reply_markup", {}).get("inline_keyboard", []):
            for button in row:
                if button.get("callback_data", "").startswith("t:"):
                    await bot.process(bot.press(chat_id, shown, button["callback_data"]))
                    workload.lead_menus.append((chat_id, bot.last_message[chat_id]))
                    break
            else:
                continue
            break
    if not workload.lead_menus:
        raise RuntimeError("no lead-time menu was shown: the 'lead-time toggle' cannot run")


class StatementCounter:
    """Counts the SQL statements an engine runs, transaction control left out."""

    CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._executed)

    def _executed(self, _connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(self.CONTROL):
            self.count += 1

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._executed)


async def _profile(bot: InProcessBot, build: Callable[[], dict[str, Any]], samples: int) -> None:
    """Print where ``samples`` updates of one kind spend their time (pyinstrument)."""
    from pyinstrument import Profiler  # the ``bench`` extra

    profiler = Profiler(interval=0.0005, async_mode="enabled")
    profiler.start()
    for _ in range(samples):
        await bot.process(build())
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))


async def _profile_app(
    app: webapp.InProcessApp, build: Callable[[], webapp.AppRequest], samples: int
) -> None:
    """:func:`_profile` for the Mini App's requests."""
    from pyinstrument import Profiler  # the ``bench`` extra

    profiler = Profiler(interval=0.0005, async_mode="enabled")
    profiler.start()
    for _ in range(samples):
        await app.timed(build())
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))


async def run_async(
    out_dir: Path,
    *,
    quick: bool,
    profile: str | None = None,
    backends: tuple[str, ...] = BACKENDS,
) -> dict[str, Any]:
    scale = QUICK if quick else FULL
    samples, warmup = (30, 5) if quick else (200, 20)
    results: list[dict[str, Any]] = []
    notes: list[str] = []
    for backend in backends[:1] if profile else backends:
        if backend == "postgresql" and (why := await postgres_available()):
            notes.append(f"postgresql skipped: {why}")
            continue
        async with throwaway_database(backend, NAME) as url:
            results.append(await measure(url, backend, scale, samples, warmup, profile))
    result: dict[str, Any] = {
        "benchmark": NAME,
        "quick": quick,
        "machine": machine(),
        "parameters": {
            "organisations": scale.organisations,
            "events": scale.events,
            "chats": scale.chats,
            "samples_per_handler": samples,
            "warmup_per_handler": warmup,
            "reply_cache_seconds": 0,
            "transport": "in-process Bot API emulator (application.process_update)",
        },
        "target_p99_ms": TARGET_P99_MS,
        "target_write_p99_ms": TARGET_WRITE_P99_MS,
        "target_app_p99_ms": webapp.TARGET_P99_MS,
        "results": results,
        "notes": notes,
        "meets_targets": bool(results)
        and all(
            row["meets_target"] and not result["errors_logged"]
            for result in results
            for row in result["handlers"].values()
        ),
    }
    if len(results) == 2:
        # Side by side in one run: how PostgreSQL compares with SQLite on this machine.
        sqlite_rows, pg_rows = results[0]["handlers"], results[1]["handlers"]
        result["postgresql_to_sqlite_p50"] = {
            kind: round(pg_rows[kind]["p50_ms"] / sqlite_rows[kind]["p50_ms"], 2) for kind in KINDS
        }
    write_results(out_dir, NAME, result, markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    parameters = result["parameters"]
    text = (
        f"## Interactive latency ({parameters['events']:,} events, "
        f"{parameters['chats']:,} chats; target p99 ≤ {result['target_p99_ms']:g} ms to read, "
        f"≤ {result['target_write_p99_ms']:g} ms to write; the Mini App's JSON endpoints "
        f"≤ {result.get('target_app_p99_ms', webapp.TARGET_P99_MS):g} ms)\n\n"
    )
    rows = []
    for backend in result["results"]:
        data = backend["data"]
        for kind, row in backend["handlers"].items():
            rows.append(
                [
                    backend["backend"],
                    f"`{kind}`" if kind.startswith("/") else kind,
                    f"{row['p50_ms']:.1f}",
                    f"{row['p99_ms']:.1f}",
                    verdict(row["meets_target"]),
                ]
            )
        del data
    text += markdown_table(["database", "handler", "p50 ms", "p99 ms", "p99 target"], rows)
    machine_info = result["machine"]
    text += (
        f"\n{machine_info['cores']} × {machine_info['cpu']}, "
        f"Python {machine_info['python']}; {parameters['samples_per_handler']} updates per "
        f"handler after {parameters['warmup_per_handler']} of warm-up, reply cache off.\n"
    )
    for note in result["notes"]:
        text += f"\n{note}\n"
    return text


def run(
    out_dir: Path = DEFAULT_OUT_DIR,
    *,
    quick: bool,
    profile: str | None = None,
    backends: tuple[str, ...] = BACKENDS,
) -> dict[str, Any]:
    """Run the benchmark; writes ``out_dir/latency.json`` and ``out_dir/latency.md``.

    With ``profile`` (a handler kind), prints a pyinstrument profile of that handler first.
    """
    return asyncio.run(run_async(out_dir, quick=quick, profile=profile, backends=backends))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less data, fewer samples")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--database", action="append", choices=BACKENDS, help="only this one")
    parser.add_argument(
        "--profile",
        choices=KINDS,
        help="print a pyinstrument profile of one handler or Mini App request (SQLite)",
    )
    arguments = parser.parse_args()
    result = run(
        arguments.out,
        quick=arguments.quick,
        profile=arguments.profile,
        backends=tuple(arguments.database or BACKENDS),
    )
    print(markdown(result))


if __name__ == "__main__":
    main()
