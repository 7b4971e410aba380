"""What the benchmarks share: the Bot API server process, the reference senders, CPU
accounting, the machine's description and the result files."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.request import BaseRequest, HTTPXRequest

from bot.transports.aiohttp_request import AiohttpRequest

TOKEN = "4242:bench-token"
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
# What the reference senders send: a message like a reminder (HTML, a button, no preview),
# so that they and the dispatcher move the same bytes.
REMINDER_TEXT = (
    "⏰ <b>Напоминание</b>\n\n<b>Саммит для замеров</b>\n📍 Астана, Казахстан\n"
    "🗓 1 марта 2027 г., 10:00 (время Астаны)\n⏳ через 1 час\n🏛 ШОС · саммит · подтверждено"
)
KEYBOARD = {"inline_keyboard": [[{"text": "📋 Карточка события", "callback_data": "e:bench"}]]}

# Two cores: the server on one, the sender on the other, so neither measures the other.
SERVER_CPU = 1
CLIENT_CPU = 0


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` 0.99 for the p99) of non-empty ``samples``."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def pin_to_cpu(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > cpu:
        os.sched_setaffinity(0, {cpu})


class BotApiProcess:
    """bench/botapi_server.py in a subprocess; ``base_url`` is for TELEGRAM_BASE_URL."""

    def __init__(
        self, *, limits: bool = False, scale: float = 10.0, round_trip_ms: float = 0.0
    ) -> None:
        self.args = [sys.executable, "-m", "bench.botapi_server"]
        if limits:
            self.args += ["--limits", "--scale", str(scale)]
        if round_trip_ms:
            self.args += ["--round-trip-ms", str(round_trip_ms)]
        if (os.cpu_count() or 1) > SERVER_CPU:
            self.args += ["--cpu", str(SERVER_CPU)]
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> BotApiProcess:
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, text=True, cwd=root, env=os.environ.copy()
        )
        assert self.process.stdout is not None
        self.port = json.loads(self.process.stdout.readline())["port"]
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/bot"

    async def stats(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.root}/stats") as r:
            result: dict[str, Any] = await r.json()
            return result

    async def reset(self) -> None:
        async with aiohttp.ClientSession() as session, session.post(f"{self.root}/reset") as r:
            await r.read()


@dataclass(frozen=True)
class Measured:
    """How long something took and how much CPU this process spent on it."""

    messages: int
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_thousand(self) -> float:
        return self.cpu_seconds / self.messages * 1000 if self.messages else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "messages_per_second": round(self.per_second, 1),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "cpu_seconds_per_1000": round(self.cpu_per_thousand, 3),
        }


async def measure(messages: int, work: Callable[[], Awaitable[Any]]) -> Measured:
    """Wall time and process CPU time (all threads: aiosqlite's included) of ``work``."""
    cpu, wall = time.process_time(), time.perf_counter()
    await work()
    return Measured(messages, time.perf_counter() - wall, time.process_time() - cpu)


async def in_parallel(
    items: Sequence[int], concurrency: int, send: Callable[[int], Awaitable[None]]
) -> None:
    """``send`` every item, ``concurrency`` at a time (workers pulling from one list)."""
    position = 0

    async def worker() -> None:
        nonlocal position
        while position < len(items):
            item = items[position]
            position += 1
            await send(item)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def raw_aiohttp_loop(base_url: str, chat_ids: Sequence[int], concurrency: int) -> Measured:
    """The floor: the same sendMessage POSTs straight from aiohttp, no framework."""
    url = f"{base_url}{TOKEN}/sendMessage"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(chat_id: int) -> None:
            body = {
                "chat_id": chat_id,
                "text": REMINDER_TEXT,
                "parse_mode": "HTML",
                "reply_markup": KEYBOARD,
                "link_preview_options": {"is_disabled": True},
            }
            async with session.post(url, json=body) as response:
                payload = await response.json()
                assert payload["ok"], payload

        await send(chat_ids[0])  # connect before the clock starts, as the others do
        return await measure(len(chat_ids), lambda: in_parallel(chat_ids, concurrency, send))


def transport(name: str, concurrency: int) -> BaseRequest:
    pool = max(concurrency, 1)
    if name == "httpx":
        return HTTPXRequest(connection_pool_size=pool, pool_timeout=30.0)
    return AiohttpRequest(connection_pool_size=pool, pool_timeout=30.0)


async def ptb_send_loop(
    base_url: str, chat_ids: Sequence[int], concurrency: int, transport_name: str
) -> Measured:
    """A plain loop of ``Bot.send_message`` on one of PTB's transports."""
    bot = Bot(TOKEN, base_url=base_url, request=transport(transport_name, concurrency))
    keyboard = InlineKeyboardMarkup.de_json(KEYBOARD, bot)
    no_preview = LinkPreviewOptions(is_disabled=True)
    async with bot:

        async def send(chat_id: int) -> None:
            await bot.send_message(
                chat_id,
                REMINDER_TEXT,
                parse_mode="HTML",
                reply_markup=keyboard,
                link_preview_options=no_preview,
            )

        return await measure(len(chat_ids), lambda: in_parallel(chat_ids, concurrency, send))


def local_postgres_cpu_seconds() -> float | None:
    """CPU time spent so far by the PostgreSQL server on this machine: its processes'
    own, and that of the ended ones (connections closed) as the postmaster reaped them.
    None when no PostgreSQL process is visible here (another host or container)."""
    total, seen = 0.0, False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            # utime, stime, and the reaped children's cutime, cstime (proc(5), fields 14-17)
            total += sum(int(tick) for tick in fields[11:15])
            seen = True
    return total / os.sysconf("SC_CLK_TCK") if seen else None


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, IndexError, ValueError):
        total_kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{total_kb / 1024 / 1024:.1f} GiB"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        # Other work on the machine moves the figures; this says how busy it was.
        "load_average_1_5_15_min": [round(x, 2) for x in os.getloadavg()],
        "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def verdict(met: bool) -> str:
    """How every benchmark states a target's outcome: "met" or "not met"."""
    return "met" if met else "not met"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(out_dir: Path, name: str, results: dict[str, Any], markdown: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, ensure_ascii=False, default=str)
    (out_dir / f"{name}.json").write_text(text + "\n")
    (out_dir / f"{name}.md").write_text(markdown)


@contextlib.contextmanager
def client_on_its_own_cpu() -> Iterator[None]:
    """Pin this process to the client's CPU for the measurement, then release it."""
    if not hasattr(os, "sched_getaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    pin_to_cpu(CLIENT_CPU)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
