"""Shared fixtures: a migrated, loaded database per test (SQLite, and PostgreSQL when
``TEST_DATABASE_URL`` is set), a fixed clock, and the real bot against a local Bot API.

Each backend is prepared once per session (migrations + bundled dataset) as a
template; each test gets its own copy, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bot.app import build_application, running
from bot.clock import FixedClock
from bot.context import BotApplication
from config.settings import DATASET_DIR, Settings
from storage.database import Database
from storage.dataset import sync_bundled_dataset
from tests.botapi import LocalBotApi

TEST_TOKEN = "123456:TEST-token-never-printed"
OPERATOR_ID = 777
# "Now" in the end-to-end tests: the day this suite was written.
NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
# The transport the bot under test uses (TELEGRAM_TRANSPORT): aiohttp, the default, or
# httpx, PTB's own. CI runs the end-to-end files that exercise it most on both.
TRANSPORT = os.environ.get("TEST_TELEGRAM_TRANSPORT", "aiohttp")


async def _prepare(url: str, *, with_dataset: bool) -> None:
    database = Database(url)
    try:
        await database.upgrade()
        if with_dataset:
            async with database.transaction() as session:
                await sync_bundled_dataset(session, DATASET_DIR)
    finally:
        await database.dispose()


def _pg_dsn(database: str | None = None) -> str:
    url = make_url(POSTGRES_URL)
    if database is not None:
        url = url.set(database=database)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_admin(sql: str) -> None:
    connection = await asyncpg.connect(_pg_dsn())
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


class DatabaseFactory:
    """Makes databases for tests: loaded copies of a template, or empty migrated ones."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.workdir = workdir
        self.template: str | None = None
        self.created: list[str] = []

    def _sqlite_url(self, path: Path) -> str:
        return f"sqlite+aiosqlite:///{path}"

    def _pg_url(self, name: str) -> str:
        return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    def prepare_template(self) -> None:
        if self.backend == "sqlite":
            path = self.workdir / "template.sqlite3"
            asyncio.run(_prepare(self._sqlite_url(path), with_dataset=True))
            self.template = str(path)
        else:
            name = f"summitbot_template_{uuid.uuid4().hex[:8]}"
            asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
            self.created.append(name)
            asyncio.run(_prepare(self._pg_url(name), with_dataset=True))
            self.template = name

    async def loaded(self) -> str:
        """A new database with the schema and the bundled dataset."""
        assert self.template is not None
        if self.backend == "sqlite":
            path = self.workdir / f"{uuid.uuid4().hex}.sqlite3"
            shutil.copyfile(self.template, path)
            return self._sqlite_url(path)
        name = f"summitbot_test_{uuid.uuid4().hex[:10]}"
        await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return self._pg_url(name)

    async def empty(self) -> str:
        """A new database with the schema and no data."""
        if self.backend == "sqlite":
            url = self._sqlite_url(self.workdir / f"{uuid.uuid4().hex}.sqlite3")
        else:
            name = f"summitbot_test_{uuid.uuid4().hex[:10]}"
            await _pg_admin(f'CREATE DATABASE "{name}"')
            self.created.append(name)
            url = self._pg_url(name)
        await _prepare(url, with_dataset=False)
        return url

    async def drop_created(self, keep: int = 0) -> None:
        while len(self.created) > keep:
            name = self.created.pop()
            await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=BACKENDS)
def database_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(request.param, tmp_path_factory.mktemp(request.param))
    factory.prepare_template()
    yield factory
    if factory.backend == "postgresql":
        asyncio.run(factory.drop_created())


@pytest.fixture
async def database_url(database_factory: DatabaseFactory) -> AsyncIterator[str]:
    """A database of its own for this test, migrated and loaded with the bundled dataset."""
    keep = len(database_factory.created)
    yield await database_factory.loaded()
    if database_factory.backend == "postgresql":
        await database_factory.drop_created(keep)


@pytest.fixture
async def empty_database_url(database_factory: DatabaseFactory) -> AsyncIterator[str]:
    """A database of its own for this test, migrated, with no data."""
    keep = len(database_factory.created)
    yield await database_factory.empty()
    if database_factory.backend == "postgresql":
        await database_factory.drop_created(keep)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    yield db
    await db.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def bot_api() -> AsyncIterator[LocalBotApi]:
    server = LocalBotApi(TEST_TOKEN)
    await server.start()
    yield server
    await server.stop()


def make_settings(database_url: str, base_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "bot_token": TEST_TOKEN,
        "database_url": database_url,
        "telegram_base_url": base_url,
        "operator_ids": [OPERATOR_ID],
        "default_language": "en",
        "default_timezone": "Asia/Almaty",
        "telegram_transport": TRANSPORT,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


StartBot = Callable[..., AbstractAsyncContextManager[BotApplication]]


@pytest.fixture
def start_bot(bot_api: LocalBotApi, database_url: str, clock: FixedClock) -> StartBot:
    """Starts the real application (settings overridable); stopping it is a restart."""

    @asynccontextmanager
    async def start(polling: bool = True, **overrides: object) -> AsyncIterator[BotApplication]:
        url = str(overrides.pop("database_url", database_url))  # e.g. through a proxy
        settings = make_settings(url, bot_api.base_url, **overrides)
        application = build_application(settings, clock=clock)
        async with running(application, polling=polling):
            yield application

    return start


@pytest.fixture
async def bot(start_bot: StartBot) -> AsyncIterator[BotApplication]:
    """The real application, long-polling the local Bot API server."""
    async with start_bot() as application:
        yield application
