"""Databases for the benchmarks: migrated, loaded with the bundled dataset, one summit of
their own, and thousands of chats following it, inserted in bulk (not one update each)."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url

from config.settings import DATASET_DIR
from storage.database import Database
from storage.dataset import import_text, prepare_database
from storage.models import Chat, ChatType, Event, Subscription, SubscriptionScope

# 10:00 in Astana (UTC+5) on 1 March 2027.
SUMMIT_START = dt.datetime(2027, 3, 1, 5, 0, tzinfo=dt.UTC)
SUMMIT = """
events:
  - id: bench-summit
    organisation: sco
    title:
      en: Benchmark summit
      ru: Саммит для замеров
      kk: Өлшеу саммиті
      zh: 基准峰会
      ar: قمة القياس
    place: astana
    start: 2027-03-01T10:00
    status: confirmed
    sources: [bench]
"""
LANGUAGES = ("en", "ru", "kk", "zh", "ar")
ONE_HOUR = 60  # minutes: the one reminder every chat gets


@dataclass(frozen=True)
class Audience:
    """Who follows the benchmark summit."""

    private_chats: int
    group_chats: int = 0

    @property
    def chat_ids(self) -> list[int]:
        private = [100_000 + n for n in range(self.private_chats)]
        groups = [-1_000_000_000_000 - n for n in range(self.group_chats)]
        return private + groups


async def seed(database: Database, audience: Audience) -> int:
    """Migrate, load the bundled dataset and the summit, and subscribe the audience to it.

    Returns the summit's event id. Every chat follows with a one-hour lead time only.
    """
    await prepare_database(database, DATASET_DIR)
    async with database.transaction() as session:
        await import_text(session, SUMMIT, "bench.yaml", changed_by="bench")
    async with database.transaction() as session:
        event_id = await session.scalar(select(Event.id).where(Event.key == "bench-summit"))
        assert event_id is not None
        since = SUMMIT_START - dt.timedelta(days=1)
        chat_ids = audience.chat_ids
        for chunk in _chunks(chat_ids, 5000):
            await session.execute(
                insert(Chat),
                [
                    {
                        "id": chat_id,
                        "type": ChatType.PRIVATE if chat_id > 0 else ChatType.GROUP,
                        "title": None if chat_id > 0 else f"Group {-chat_id}",
                        "language": LANGUAGES[chat_id % len(LANGUAGES)],
                        "timezone": "Asia/Almaty",
                        "is_active": True,
                        "created_at": since,
                        "updated_at": since,
                    }
                    for chat_id in chunk
                ],
            )
            await session.execute(
                insert(Subscription),
                [
                    {
                        "chat_id": chat_id,
                        "scope": SubscriptionScope.EVENT,
                        "event_id": event_id,
                        "lead_times": [ONE_HOUR],
                        "created_at": since,
                    }
                    for chat_id in chunk
                ],
            )
    return event_id


def _chunks(items: Sequence[int], size: int) -> list[Sequence[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def postgres_available(admin_url: str) -> bool:
    try:
        connection = await asyncpg.connect(_dsn(admin_url), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def fresh_database(backend: str, workdir: str, admin_url: str) -> AsyncIterator[str]:
    """A new, empty database URL (SQLite file or PostgreSQL database), removed afterwards."""
    name = f"summitbot_bench_{uuid.uuid4().hex[:10]}"
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir}/{name}.sqlite3"
        return
    admin = await asyncpg.connect(_dsn(admin_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(_dsn(admin_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
