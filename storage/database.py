"""The engine, the session factory and the schema migrations."""

from __future__ import annotations

import fcntl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside a writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
    # The driver's own implicit BEGIN is turned off; ``_begin_immediately`` begins instead.
    dbapi_connection.isolation_level = None


def _begin_immediately(connection: Connection) -> None:
    # A deferred transaction that reads, then writes after another connection wrote,
    # fails at once with SQLITE_BUSY; taking the write lock at BEGIN makes writers queue
    # (up to busy_timeout) instead. Readers are not blocked in WAL mode.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config() -> Config:
    """Alembic's configuration, built in code so it works from an installed package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


class DatabaseInUse(RuntimeError):
    """Another process holds the SQLite database."""


class Database:
    """One engine and one session factory for the whole process."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        if self.url.get_backend_name() == "sqlite" and self.url.database not in (
            None,
            "",
            ":memory:",
        ):
            Path(self.url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # A server connection may have been dropped while pooled; a SQLite file's cannot,
        # and a ping before each of the several sessions an update opens is a round trip.
        self.engine: AsyncEngine = create_async_engine(
            self.url, echo=echo, pool_pre_ping=self.url.get_backend_name() != "sqlite"
        )
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _enable_sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _begin_immediately)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._lock_file: TextIO | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with the Alembic migrations."""

        def run(connection: Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

        async with self.engine.begin() as connection:
            await connection.run_sync(run)

    def lock_exclusively(self) -> bool:
        """Hold the SQLite file for this process alone (until it exits).

        Two bots on one SQLite file would both send every reminder; the second one
        stops at start instead. Returns False for PostgreSQL, where replicas share
        the work through row locks. Raises :class:`DatabaseInUse`.
        """
        database = self.url.database
        if not self.is_sqlite or database in (None, "", ":memory:"):
            return False
        path = Path(str(database)).expanduser()
        lock_file = path.with_name(path.name + ".lock").open("a")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise DatabaseInUse(
                f"Another summitbot process is using {path}. Stop it first, or use "
                "PostgreSQL (DATABASE_URL) to run several processes."
            ) from None
        self._lock_file = lock_file  # kept open: the lock lives as long as the file
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
