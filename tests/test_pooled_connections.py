"""Pooled PostgreSQL connections: cheap to hand out, and replaced when the server drops them.

Every update checks a connection out of the pool. One the server closed while it sat
there (a restart, ``pg_terminate_backend``) is replaced before anyone uses it, so the
person whose update comes next gets an answer, not "temporarily unavailable"; one in
use a moment ago costs no round trip of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection

from storage import database as database_module
from storage.database import Database
from tests.botapi import LocalBotApi
from tests.conftest import StartBot
from tests.factories import QUIET, plain


@pytest.fixture
def postgres_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("pooled server connections: PostgreSQL only (SQLite's pool has no pings)")
    return database_url


async def _terminate_other_backends(database_url: str) -> int:
    """What a server restart does to the bot's pooled connections: each backend of this
    database but ours is ended, and its socket closed by the server."""
    url = make_url(database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        ended = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    await asyncio.sleep(0.2)  # the bot's event loop sees the sockets close
    return len(ended)


async def test_after_the_server_drops_pooled_connections_the_next_person_gets_an_answer(
    bot_api: LocalBotApi, start_bot: StartBot, postgres_url: str
) -> None:
    async with start_bot(**QUIET):
        first = bot_api.message("/upcoming", chat_id=9101)
        assert "Upcoming" in plain((await bot_api.reply_to(first)).text)
        assert await _terminate_other_backends(postgres_url) >= 1
        after = bot_api.message("/upcoming", chat_id=9102)
        answer = plain((await bot_api.reply_to(after)).text)
        again = bot_api.message("/subscribe sco", chat_id=9102)
        subscribed = plain((await bot_api.reply_to(again)).text)
    assert "Upcoming" in answer
    assert "You now follow" in subscribed


@dataclass
class Pinged:
    """A database whose dialect's pings (each one or three round trips) are recorded."""

    database: Database
    pings: list[DBAPIConnection] = field(default_factory=list)


@pytest.fixture
async def pinged(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pinged]:
    recorded = Pinged(Database(postgres_url))
    dialect = recorded.database.engine.dialect
    ping = dialect.do_ping

    def counted(dbapi_connection: DBAPIConnection) -> bool:
        recorded.pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    try:
        yield recorded
    finally:
        await recorded.database.dispose()


async def _read(database: Database) -> int:
    async with database.sessions() as session:
        return int((await session.execute(text("SELECT 1"))).scalar_one())


async def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(
    pinged: Pinged,
) -> None:
    for _ in range(5):
        assert await _read(pinged.database) == 1
    assert pinged.pings == []


async def test_a_connection_idle_for_a_while_is_pinged_first(
    pinged: Pinged, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await _read(pinged.database) == 1
    now = time.monotonic()  # storage.database's clock: it reads ``time.monotonic()``
    later = now + database_module.IDLE_PING_SECONDS + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert await _read(pinged.database) == 1
    assert len(pinged.pings) == 1


async def test_a_connection_the_server_closed_is_replaced_without_an_error(
    pinged: Pinged, postgres_url: str
) -> None:
    assert await _read(pinged.database) == 1
    assert await _terminate_other_backends(postgres_url) == 1
    assert await _read(pinged.database) == 1
    assert pinged.pings == []  # seen closed, not found out by a round trip
