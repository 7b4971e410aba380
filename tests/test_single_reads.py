"""The read every update starts with (its chat, and the catalogue's revision along) goes
to the database as one statement, with no transaction begun or rolled back around it.

On PostgreSQL that is one round trip instead of three; on SQLite, four trips to
aiosqlite's thread instead of nine. Transactions that do write still roll back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

import aiosqlite.core
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from storage.chats import Chats
from storage.database import Database
from storage.models import Chat, ChatType
from storage.queries import Catalogue
from tests.conftest import NOW

CHAT_ID = 6101


async def _known_chat(database: Database) -> Chats:
    chats = Chats(database, "en", "Asia/Almaty")
    await chats.ensure(CHAT_ID, ChatType.PRIVATE, "Aigerim", "en", NOW)  # first contact
    return chats


@pytest.fixture
def sent_to_sqlite(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """What aiosqlite is asked to do on its thread: one entry a trip (the SQL for
    ``execute``)."""
    trips: list[str] = []
    # aiosqlite leaves its private ``_execute`` unannotated (so an untyped call); it runs
    # the function on the connection's thread and returns whatever that returned.
    execute_on_thread = cast(Callable[..., Awaitable[Any]], aiosqlite.core.Connection._execute)

    async def recorded(
        self: aiosqlite.core.Connection, function: Callable[..., object], *args: Any, **kwargs: Any
    ) -> Any:
        name = getattr(function, "__name__", "")
        trips.append(args[0].split()[0] if name == "execute" and args else name)
        return await execute_on_thread(self, function, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", recorded)
    yield trips


async def test_a_known_chat_is_read_without_a_transaction_on_sqlite(
    database: Database, sent_to_sqlite: list[str]
) -> None:
    if not database.is_sqlite:
        pytest.skip("aiosqlite's thread: SQLite only")
    chats = await _known_chat(database)
    sent_to_sqlite.clear()
    view, along = await chats.ensure(
        CHAT_ID,
        ChatType.PRIVATE,
        "Aigerim",
        "kk",
        NOW,
        read_along=Catalogue.revision_columns(),
    )
    assert view.title == "Aigerim" and view.language == "en"
    assert along is not None
    assert [trip for trip in sent_to_sqlite if trip not in ("cursor", "close")] == [
        "SELECT",
        "fetchall",
    ]


async def test_a_known_chat_is_read_outside_any_transaction_on_postgresql(
    database: Database,
) -> None:
    if database.is_sqlite:
        pytest.skip("asyncpg's query log: PostgreSQL only")
    control: list[str] = []  # transaction control asyncpg sends as queries of their own

    def log_transaction_control(dbapi_connection: Any, _record: Any) -> None:
        def logged(record: Any) -> None:
            if record.query.split()[0].rstrip(";").upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
                control.append(record.query.split()[0].rstrip(";").upper())

        dbapi_connection.driver_connection.add_query_logger(logged)

    event.listen(database.engine.sync_engine, "connect", log_transaction_control)
    chats = await _known_chat(database)
    assert "COMMIT" in control  # the first contact wrote (and the log sees it)
    control.clear()
    view, along = await chats.ensure(
        CHAT_ID, ChatType.PRIVATE, "Aigerim", None, NOW, read_along=Catalogue.revision_columns()
    )
    assert view.title == "Aigerim" and along is not None
    assert control == []
    async with database.sessions() as session:  # a read of several statements: one snapshot
        await session.scalar(select(func.count()).select_from(Chat))
    assert control == ["BEGIN", "ROLLBACK"]


async def test_a_failed_write_is_still_rolled_back(database: Database) -> None:
    chats = await _known_chat(database)
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            # A new chat is written, then one with a taken id fails the transaction.
            for chat_id, title in ((CHAT_ID + 1, "Kept out"), (CHAT_ID, "Duplicate")):
                session.add(
                    Chat(
                        id=chat_id,
                        type=ChatType.GROUP,
                        title=title,
                        language="en",
                        timezone="UTC",
                        is_active=True,
                    )
                )
                await session.flush()
    async with database.sessions() as session:
        assert await session.get(Chat, CHAT_ID + 1) is None
    # The connection went back to the pool clean: the next write begins and commits.
    await chats.ensure(CHAT_ID + 2, ChatType.GROUP, "Next", "en", NOW)
    async with database.sessions() as session:
        stored = await session.get(Chat, CHAT_ID + 2)
    assert stored is not None and stored.title == "Next"


async def test_a_new_chat_reads_the_revision_along_too(database: Database) -> None:
    # A channel post's deep link brings hundreds of first contacts at once: each reads the
    # catalogue's revision in the statement that finds no chat, not in one more.
    statements: list[str] = []

    def logged(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement.split()[0])

    chats = Chats(database, "en", "Asia/Almaty")
    async with database.sessions() as session:  # (the revision's rows exist from here on)
        expected = tuple((await session.execute(select(*Catalogue.revision_columns()))).one())
    event.listen(database.engine.sync_engine, "before_cursor_execute", logged)
    try:
        view, along = await chats.ensure(
            CHAT_ID, ChatType.PRIVATE, "Aigerim", "kk", NOW, read_along=Catalogue.revision_columns()
        )
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", logged)
    assert view.language == "kk"
    assert along is not None and tuple(along) == expected
    assert [s for s in statements if s == "SELECT"] == ["SELECT"]
    assert "INSERT" in statements
    async with database.sessions() as session:
        stored = await session.get(Chat, CHAT_ID)
    assert stored is not None and stored.language == "kk"
