"""The engine, the session factory and the schema migrations."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import socket
import sqlite3
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

from alembic import command
from alembic.config import Config
from sqlalchemy import CTE, Select, event, text
from sqlalchemy.engine import Connection, Dialect, ExceptionContext, make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    InvalidatePoolError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.write_batch import BatchedWriter, FileWriteGate

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The PostgreSQL advisory lock that lets one replica at a time migrate and load data.
SETUP_LOCK_KEY = zlib.crc32(b"summitbot:setup")
CONNECT_TIMEOUT_SECONDS = 10
POOL_TIMEOUT_SECONDS = 10
# A pooled PostgreSQL connection unused for this long is pinged (a round trip) before
# use; one used more recently is only checked for a close the server already sent.
IDLE_PING_SECONDS = 10.0


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside a writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
    # The driver's own implicit BEGIN is turned off; ``_begin_immediately`` begins instead.
    dbapi_connection.isolation_level = None


def _network_errors_are_disconnects(context: ExceptionContext) -> None:
    # A connection cut under asyncpg surfaces as a bare OSError (e.g. connection reset),
    # which SQLAlchemy does not count as a disconnect: the pool would hand out the dead
    # connection again, once per pooled connection. Counted as one, it is discarded with
    # every connection pooled before it (SQLAlchemy's pool-wide invalidation).
    if is_unavailable(context.original_exception):
        context.is_disconnect = True


_CHECKED_IN = "summitbot_checked_in"


class _PooledConnectionCheck:
    """Makes sure a pooled PostgreSQL connection still works before it is handed out,
    in place of SQLAlchemy's ``pool_pre_ping``.

    The pre-ping costs three round trips (BEGIN, an empty statement, ROLLBACK) on every
    checkout, i.e. every update. A server that restarts, or a ``pg_terminate_backend``,
    closes the socket; the event loop sees that at once and asyncpg marks the connection
    closed, so a closed one is replaced without a round trip. Only a connection that sat
    unused for ``IDLE_PING_SECONDS`` (long enough for a peer to vanish silently, e.g. a
    NAT or firewall dropping the flow) is pinged as before; when that ping fails the
    whole pool is replaced, as the pre-ping did.
    """

    def __init__(self, dialect: Dialect, idle_ping_seconds: float = IDLE_PING_SECONDS) -> None:
        self.dialect = dialect
        self.idle_ping_seconds = idle_ping_seconds

    def checked_in(self, dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None:
            record.info[_CHECKED_IN] = (dbapi_connection, time.monotonic())

    def checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get(_CHECKED_IN)
        if checked_in is None or checked_in[0] is not dbapi_connection:
            return  # connected just now
        if dbapi_connection.driver_connection.is_closed():
            # SQLAlchemy connects anew and checks that one (fresh: nothing to do).
            raise DisconnectionError("the server closed this pooled connection")
        if time.monotonic() - checked_in[1] < self.idle_ping_seconds:
            return
        try:
            self.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise InvalidatePoolError(f"ping of a pooled connection failed: {exc!r}") from exc


# Sessions from ``Database.sessions`` only read: marked so, they begin without the lock.
READ_ONLY = "summitbot_read_only"
# Sessions from ``Database.single_reads`` run one statement, which reads a consistent
# snapshot by itself: no transaction is begun around it.
SINGLE_STATEMENT = "summitbot_single_statement"


def _begin_immediately(connection: Connection) -> None:
    # A deferred transaction that reads, then writes after another connection wrote,
    # fails at once with SQLITE_BUSY; taking the write lock at BEGIN makes writers queue
    # (up to busy_timeout) instead. Readers need no lock in WAL mode: they begin deferred,
    # so they neither wait for a writer nor make one wait.
    options = connection.get_execution_options()
    if options.get(SINGLE_STATEMENT):
        return  # the driver runs the statement in a transaction of its own
    if options.get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _roll_back_only_open_transactions(dialect: Dialect) -> None:
    """SQLAlchemy rolls back when a session ends and again when the pool takes its
    connection back; through aiosqlite each is a trip to the driver's thread, and the
    second (both, after a single read) finds no transaction to end. Only a rollback
    with a transaction open goes to the driver."""
    roll_back = dialect.do_rollback

    def do_rollback(dbapi_connection: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if getattr(driver, "in_transaction", True):
            roll_back(dbapi_connection)

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


def chosen_once(session: AsyncSession, rows: Select[Any], name: str) -> CTE:
    """The rows a claim takes (``rows``, with its order and limit), as a CTE chosen once.

    On PostgreSQL they are locked ``FOR UPDATE SKIP LOCKED``: rows another transaction is
    claiming are passed over, not waited for (SQLite has one writer at a time).
    ``MATERIALIZED``: chosen once, whatever the plan (as a subquery PostgreSQL may rescan
    it, and each rescan may lock other rows past the limit). The claiming UPDATE must
    re-check its condition, which keeps it safe where row locks do not exist.
    """
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    if dialect == "postgresql":
        rows = rows.with_for_update(skip_locked=True)
    return rows.cte(name).prefix_with("MATERIALIZED")


def alembic_config() -> Config:
    """Alembic's configuration, built in code so it works from an installed package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


class DatabaseInUse(RuntimeError):
    """Another process holds the SQLite database."""


# Socket errors that mean "the server is not there (now)".
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
    errno.EPIPE,
}
# asyncpg's connection errors, by name (the driver is not imported here).
_ASYNCPG_CONNECTION_ERRORS = {
    "ConnectionDoesNotExistError",
    "CannotConnectNowError",
    "PostgresConnectionError",
    "ConnectionFailureError",
    "ClientCannotConnectError",
    "AdminShutdownError",
    "CrashShutdownError",
    "TooManyConnectionsError",
}
# SQLite: the file cannot be used right now (not a schema or a programming fault).
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file", "disk i/o error")


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached right now (as opposed to a
    bug, a constraint, or a Telegram failure): the connection was refused, lost or
    timed out."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__module__.startswith("telegram"):
            return False  # PTB wraps Telegram's network failures; those are not ours
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, PoolTimeoutError | InterfaceError):
            return True
        if isinstance(current, OperationalError):
            if "sqlite" not in type(current.orig).__module__:
                return True
            return any(reason in str(current.orig).lower() for reason in _SQLITE_UNAVAILABLE)
        if isinstance(current, sqlite3.OperationalError):  # from the driver itself
            return any(reason in str(current).lower() for reason in _SQLITE_UNAVAILABLE)
        if type(current).__name__ in _ASYNCPG_CONNECTION_ERRORS:
            return True
        if isinstance(current, ConnectionError | TimeoutError | socket.gaierror):
            return True
        if isinstance(current, OSError) and current.errno in _NETWORK_ERRNOS:
            return True
        current = current.__cause__ or current.__context__
    return False


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
        options: dict[str, Any] = {}
        if not self.is_sqlite:
            # A database that hangs (packets dropped, not refused) must fail fast too:
            # a connection attempt, a statement and a wait for a pooled connection.
            options = {
                "connect_args": {"timeout": CONNECT_TIMEOUT_SECONDS, "command_timeout": 60},
                "pool_timeout": POOL_TIMEOUT_SECONDS,
            }
        # A server connection may have been dropped while pooled (a SQLite file's cannot):
        # ``_PooledConnectionCheck`` replaces it on checkout, cheaper than a pre-ping.
        self.engine: AsyncEngine = create_async_engine(self.url, echo=echo, **options)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _enable_sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _begin_immediately)
            _roll_back_only_open_transactions(self.engine.dialect)
        else:
            event.listen(self.engine.sync_engine, "handle_error", _network_errors_are_disconnects)
            check = _PooledConnectionCheck(self.engine.dialect)
            event.listen(self.engine.sync_engine, "checkin", check.checked_in)
            event.listen(self.engine.sync_engine, "checkout", check.checkout)
        # Reading: ``sessions()`` (never committed). Writing: ``transaction()``.
        self.sessions = async_sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        self._writing = async_sessionmaker(self.engine, expire_on_commit=False)
        # One statement, e.g. the chat and the catalogue's revision every update reads:
        # no BEGIN and ROLLBACK around it (on PostgreSQL, two round trips of three; on
        # SQLite, four trips to aiosqlite's thread of eight). Run one statement each.
        single: dict[str, Any] = {READ_ONLY: True, SINGLE_STATEMENT: True}
        if not self.is_sqlite:
            single["isolation_level"] = "AUTOCOMMIT"
        self.single_reads = async_sessionmaker(
            self.engine.execution_options(**single), expire_on_commit=False
        )
        self._lock_file: TextIO | None = None
        # SQLite: this process's writes take turns and share commits (storage/write_batch.py);
        # made on first use, in the event loop that uses them.
        self._sqlite_writer: BatchedWriter | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error.

        When the block returns, its changes are committed (on SQLite, possibly together
        with other blocks that queued beside it: see storage/write_batch.py). Blocks
        must not nest.
        """
        if self.is_sqlite:
            async with self.sqlite_writer.transaction() as session:
                yield session
            return
        async with self._writing() as session, session.begin():
            yield session

    @property
    def sqlite_writer(self) -> BatchedWriter:
        """The SQLite file's writer for this event loop (a new loop gets a new one)."""
        writer = self._sqlite_writer
        loop = asyncio.get_running_loop()
        if writer is None or writer.loop is not loop:
            writer = self._sqlite_writer = BatchedWriter(self._writing, FileWriteGate())
        return writer

    @property
    def write_gate(self) -> FileWriteGate | None:
        """SQLite: what a write outside ``transaction()`` holds while it writes."""
        return self.sqlite_writer.gate if self.is_sqlite else None

    async def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with the Alembic migrations."""

        def run(connection: Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

        async with self.engine.begin() as connection:
            await connection.run_sync(run)

    @asynccontextmanager
    async def setup_lock(self) -> AsyncIterator[None]:
        """Let one process at a time migrate the schema and load the bundled dataset.

        On PostgreSQL an advisory lock (replicas starting together wait for the first
        one, then find nothing to do); SQLite's writers queue on the file already.
        """
        if self.is_sqlite:
            yield
            return
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SETUP_LOCK_KEY})
            await connection.commit()
            try:
                yield
            finally:
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": SETUP_LOCK_KEY}
                )
                await connection.commit()

    async def backup_to(self, target: Path) -> int:
        """Copy a SQLite database to ``target`` with SQLite's online backup (consistent
        while the bot writes). Returns the number of pages copied."""
        database = str(self.url.database)

        def copy() -> int:
            destination_path = target.expanduser()
            if destination_path.exists():
                raise FileExistsError(destination_path)
            source_path = Path(database).expanduser()
            if not source_path.is_file():
                raise FileNotFoundError(source_path)
            # Read-only: a wrong path must not create an empty database to "back up".
            source = sqlite3.connect(f"{source_path.as_uri()}?mode=ro", uri=True)
            destination = sqlite3.connect(destination_path)
            pages = 0

            def progress(_status: int, remaining: int, total: int) -> None:
                nonlocal pages
                pages = total

            try:
                with destination:
                    # All pages in one step: with WAL the bot keeps writing meanwhile, and
                    # a step-wise copy would restart on every write.
                    source.backup(destination, pages=-1, progress=progress)
            finally:
                destination.close()
                source.close()
            return pages

        return await asyncio.to_thread(copy)

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

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
