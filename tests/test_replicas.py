"""Several `summitbot webhook` processes on one PostgreSQL database, as in production.

Three real processes share one database (through a proxy this test can cut) and one
local Bot API server. Thousands of chats follow a summit whose one-hour reminder
comes due a few seconds after the replicas start; some chats subscribe through the
webhooks of different replicas. Half-way through, one replica is stopped (SIGTERM:
it finishes and records its sends) or killed (SIGKILL: its claims return after the
lease), and the database is cut for a few seconds. Every chat must get its reminder
exactly once (after SIGKILL: at least once, and only the sends that were in flight
may repeat), and every replica must have done part of the work.

``REPLICA_TEST_CHATS`` sets the number of chats (2,000 by default; the operator's
trial in the README uses 10,000).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

from bot.delivery.dispatcher import MAX_IN_FLIGHT
from config.settings import DATASET_DIR
from storage.database import Database
from storage.dataset import prepare_database
from storage.dates import Precision
from storage.models import (
    Chat,
    ChatType,
    Confidence,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Event,
    EventStatus,
    Subscription,
    SubscriptionScope,
)
from storage.planning import Planner
from tests.botapi import LocalBotApi
from tests.conftest import TEST_TOKEN, _pg_admin
from tests.tcpproxy import TcpProxy

CHATS = int(os.environ.get("REPLICA_TEST_CHATS", "2000"))
REPLICAS = 3
SECRET = "replica-test-secret_0123456789abcdef"
FIRST_CHAT = 20_000_000
EVENT_KEY = "replica-summit"
# The one-hour reminder comes due this long after seeding: time for the replicas to start.
LEAD_IN = dt.timedelta(seconds=25)
LEASE_SECONDS = 10  # longer than the database cut below, as the README advises


@dataclass
class Replica:
    index: int
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _seed(database_url: str, now: dt.datetime) -> None:
    """A summit one hour and ``LEAD_IN`` from now, and ``CHATS`` chats following it."""
    starts_at = now + dt.timedelta(hours=1) + LEAD_IN
    database = Database(database_url)
    try:
        async with database.transaction() as session:
            event = Event(
                key=EVENT_KEY,
                kind="summit",
                title={"en": "Replica summit"},
                timezone="UTC",
                date_precision=Precision.TIME,
                start_local=starts_at.replace(tzinfo=None),
                starts_at=starts_at,
                ends_at=starts_at + dt.timedelta(hours=3),
                status=EventStatus.CONFIRMED,
                confidence=Confidence.HIGH,
                sources=["test"],
            )
            session.add(event)
            await session.flush()
            created = now - dt.timedelta(minutes=5)
            chat_ids = range(FIRST_CHAT, FIRST_CHAT + CHATS)
            await session.execute(
                insert(Chat),
                [
                    {
                        "id": chat_id,
                        "type": ChatType.PRIVATE,
                        "title": f"Reader {chat_id}",
                        "language": "en",
                        "timezone": "UTC",
                        "is_active": True,
                    }
                    for chat_id in chat_ids
                ],
            )
            await session.execute(
                insert(Subscription),
                [
                    {
                        "chat_id": chat_id,
                        "scope": SubscriptionScope.EVENT,
                        "event_id": event.id,
                        "created_at": created,
                    }
                    for chat_id in chat_ids
                ],
            )
            # As an import of a new event does: its reminders enter the ledger.
            await Planner().replan(session, now, event_ids=[event.id])
    finally:
        await database.dispose()


def _start(index: int, database_url: str, bot_api: LocalBotApi, workdir: Path) -> Replica:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "WEBHOOK_"))},
        "BOT_TOKEN": TEST_TOKEN,
        "DATABASE_URL": database_url,
        "TELEGRAM_BASE_URL": bot_api.base_url,
        "WEBHOOK_URL": "https://bot.example.org/telegram",
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": str(port),
        "REMINDER_SWEEP_SECONDS": "1",
        "DELIVERY_RATE_LIMIT": "false",
        "DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
        "SHUTDOWN_TIMEOUT_SECONDS": "15",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    log = workdir / f"replica-{index}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.runtime.cli", "webhook"],
        cwd=workdir,  # no .env from the checkout
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    return Replica(index, port, process, log)


async def _wait_ready(replica: Replica, http: aiohttp.ClientSession, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            raise AssertionError(f"replica {replica.index} exited:\n{replica.log.read_text()}")
        try:
            async with http.get(replica.base + "/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.3)
    raise AssertionError(f"replica {replica.index} not ready:\n{replica.log.read_text()}")


def _reminders(bot_api: LocalBotApi) -> Counter[int]:
    """Reminders received, by chat (of the seeded chats)."""
    seeded = range(FIRST_CHAT, FIRST_CHAT + CHATS)
    return Counter(
        chat_id
        for call in bot_api.calls
        if call.method == "sendMessage"
        and call.status == 200
        and (chat_id := call.chat_id) is not None
        and chat_id in seeded
        and "⏰" in call.text
    )


@pytest.fixture
async def cluster_database(database_url: str) -> AsyncIterator[str]:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share work through PostgreSQL row locks")
    yield database_url


async def _run_cluster(
    bot_api: LocalBotApi, database_url: str, workdir: Path, stop_signal: signal.Signals
) -> dict[str, Any]:
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    now = dt.datetime.now(dt.UTC)
    await _seed(database_url, now)
    replicas = [_start(i, proxy.url_for(database_url), bot_api, workdir) for i in range(REPLICAS)]
    outcome: dict[str, Any] = {}
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(*(_wait_ready(r, http) for r in replicas))
            # Some readers subscribe to another event through the webhooks of all replicas.
            for n, replica in enumerate(replicas * 4):
                update = bot_api.message("/subscribe sco", chat_id=9_000_000 + n)
                async with http.post(
                    replica.base + "/telegram",
                    json=update,
                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                ) as response:
                    assert response.status == 200
                assert "You now follow" in (await bot_api.reply_to(update, timeout=30)).text
            # Half-way: the database goes away for a few seconds, then a replica stops.
            deadline = time.monotonic() + LEAD_IN.total_seconds() + 120 + CHATS / 20
            cut_done = stopped = False
            while len(_reminders(bot_api)) < CHATS and time.monotonic() < deadline:
                sent = len(_reminders(bot_api))
                if not cut_done and sent >= CHATS // 4:
                    proxy.cut()
                    await asyncio.sleep(3)
                    proxy.restore()
                    cut_done = True
                if not stopped and sent >= CHATS // 2:
                    replicas[0].process.send_signal(stop_signal)
                    stopped = True
                await asyncio.sleep(0.2)
            await asyncio.sleep(LEASE_SECONDS + 2)  # anything sent twice would show now
            outcome["metrics"] = []
            for replica in replicas[1:]:
                async with http.get(replica.base + "/metrics") as response:
                    outcome["metrics"].append(await response.text())
            outcome["stopped_exit"] = await asyncio.to_thread(replicas[0].process.wait, 30)
            assert cut_done and stopped, f"only {len(_reminders(bot_api))} reminders were sent"
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        exits = [await asyncio.to_thread(replica.process.wait, 40) for replica in replicas]
        await proxy.stop()
    outcome["exits"] = exits
    outcome["logs"] = [replica.log.read_text() for replica in replicas]
    outcome["workers"] = await _workers(database_url)
    return outcome


def _sent_in(metrics: str) -> float:
    """summitbot_deliveries_total{outcome="sent"} in one replica's /metrics."""
    for line in metrics.splitlines():
        if line.startswith('summitbot_deliveries_total{outcome="sent"}'):
            return float(line.split()[-1])
    return 0.0


async def _workers(database_url: str) -> Counter[str]:
    """Which process sent the reminders (its pid, from the ledger's claims)."""
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            rows = await session.scalars(
                select(Delivery.claimed_by).where(
                    Delivery.status == DeliveryStatus.SENT,
                    Delivery.kind == DeliveryKind.REMINDER,
                )
            )
            return Counter(str(worker).split(":")[1] for worker in rows)
    finally:
        await database.dispose()


async def test_three_replicas_deliver_each_reminder_once_through_a_stop_and_an_outage(
    bot_api: LocalBotApi, cluster_database: str, tmp_path: Path
) -> None:
    outcome = await _run_cluster(bot_api, cluster_database, tmp_path, signal.SIGTERM)
    received = _reminders(bot_api)
    assert len(received) == CHATS, f"{CHATS - len(received)} chats got no reminder"
    assert set(received.values()) == {1}, "some chats got a reminder twice"
    assert outcome["stopped_exit"] == 0  # a clean, timely stop
    assert outcome["exits"] == [0] * REPLICAS
    workers = outcome["workers"]
    if report := os.environ.get("REPLICA_TEST_REPORT"):  # the operator's trial in the README
        summary = {
            "chats": CHATS,
            "received": len(received),
            "duplicates": sum(count - 1 for count in received.values()),
            "sent_by_process": dict(workers),
            "stopped_replica_exit": outcome["stopped_exit"],
            "sent_in_metrics": [_sent_in(text) for text in outcome["metrics"]],
        }
        await asyncio.to_thread(Path(report).write_text, json.dumps(summary, indent=2))
    assert len(workers) == REPLICAS and sum(workers.values()) == CHATS, workers
    assert all(_sent_in(text) > 0 for text in outcome["metrics"])
    for log in outcome["logs"]:
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert any(line["message"].startswith("delivery batch") for line in lines)
        assert TEST_TOKEN not in log and SECRET not in log


async def test_a_killed_replica_loses_nothing(
    bot_api: LocalBotApi, cluster_database: str, tmp_path: Path
) -> None:
    outcome = await _run_cluster(bot_api, cluster_database, tmp_path, signal.SIGKILL)
    received = _reminders(bot_api)
    assert len(received) == CHATS, f"{CHATS - len(received)} chats got no reminder"
    # Only what the killed process had in flight (sent, not yet recorded) may repeat.
    twice = [chat for chat, count in received.items() if count > 1]
    assert len(twice) <= MAX_IN_FLIGHT and max(received.values()) <= 2
    assert outcome["stopped_exit"] == -signal.SIGKILL
    assert len(outcome["workers"]) == REPLICAS


async def test_replicas_starting_together_on_a_new_database_migrate_it_once(
    database_factory: Any,
) -> None:
    if database_factory.backend != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    keep = len(database_factory.created)
    name = f"summitbot_test_new_{os.getpid()}_{time.monotonic_ns() % 10**8}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    database_factory.created.append(name)
    url = database_factory._pg_url(name)
    databases = [Database(url) for _ in range(REPLICAS)]
    try:
        # Without the lock, concurrent migrations block each other (or fail on duplicates).
        reports = await asyncio.wait_for(
            asyncio.gather(*(prepare_database(database, DATASET_DIR) for database in databases)),
            120,
        )
        async with databases[0].sessions() as session:
            events = await session.scalar(select(func.count()).select_from(Event))
    finally:
        for database in databases:
            await database.dispose()
        await database_factory.drop_created(keep)
    # One of them loaded the bundled dataset; the others found it there.
    assert sum(report is not None for report in reports) == 1
    assert events and events > 40
