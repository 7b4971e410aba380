"""Updates side by side, each chat's in order; SQLite writes batched without losing one."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import SessionTransaction
from telegram import Chat, Message, Update, User

from bot.clock import FixedClock
from bot.runtime.chat_order import ChatOrderedUpdateProcessor, ordering_key
from storage.database import Database
from storage.models import Chat as ChatRow
from storage.models import ChatType, Event, Subscription, SubscriptionScope
from storage.write_batch import NestedWriteError
from tests.botapi import LocalBotApi
from tests.conftest import NOW, StartBot
from tests.factories import QUIET, START, TEST_EVENT, load, plain

# --- the update processor -----------------------------------------------------------------


def _update(update_id: int, chat_id: int) -> Update:
    chat = Chat(chat_id, Chat.PRIVATE)
    user = User(chat_id, "Tester", is_bot=False)
    message = Message(update_id, date=None, chat=chat, from_user=user, text="x")  # type: ignore[arg-type]
    return Update(update_id, message=message)


async def test_a_chats_updates_run_one_at_a_time_in_order_and_others_alongside() -> None:
    processor = ChatOrderedUpdateProcessor(max_running=8)
    log: list[tuple[str, int, int]] = []
    running: set[int] = set()
    overlap_seen: list[bool] = []

    async def handle(update_id: int, chat_id: int, seconds: float) -> None:
        assert chat_id not in running, "two updates of one chat ran at once"
        running.add(chat_id)
        log.append(("start", chat_id, update_id))
        overlap_seen.append(len(running) > 1)
        await asyncio.sleep(seconds)
        running.discard(chat_id)
        log.append(("end", chat_id, update_id))

    # Chat 1's first update is slow; its later ones must wait for it, chat 2's need not.
    plan = [(1, 1, 0.05), (2, 1, 0.0), (3, 2, 0.0), (4, 1, 0.01), (5, 2, 0.0), (6, 1, 0.0)]
    tasks = [
        asyncio.create_task(
            processor.process_update(_update(uid, chat), handle(uid, chat, seconds))
        )
        for uid, chat, seconds in plan
    ]
    await asyncio.gather(*tasks)
    started = [(chat, uid) for kind, chat, uid in log if kind == "start"]
    assert [uid for chat, uid in started if chat == 1] == [1, 2, 4, 6]
    assert [uid for chat, uid in started if chat == 2] == [3, 5]
    # Chat 2 was answered while chat 1's slow update ran.
    assert log.index(("end", 2, 5)) < log.index(("end", 1, 1))
    assert any(overlap_seen)
    assert processor.chats_in_progress == 0


async def test_the_running_limit_holds_and_waiting_chats_hold_no_slot() -> None:
    processor = ChatOrderedUpdateProcessor(max_running=2)
    at_once = 0
    most = 0

    async def handle() -> None:
        nonlocal at_once, most
        at_once += 1
        most = max(most, at_once)
        await asyncio.sleep(0.01)
        at_once -= 1

    # Ten updates of one chat and ten of others: never more than two run.
    updates = [_update(n, 1) for n in range(10)] + [_update(100 + n, 100 + n) for n in range(10)]
    await asyncio.gather(*(processor.process_update(u, handle()) for u in updates))
    assert most == 2


async def test_fewer_updates_run_at_once_while_a_fan_out_is_sent() -> None:
    processor = ChatOrderedUpdateProcessor(max_running=8)
    at_once: list[int] = []
    running = 0
    release = asyncio.Event()

    async def handle() -> None:
        nonlocal running
        running += 1
        at_once.append(running)
        await release.wait()
        running -= 1

    processor.limit_running(2)  # the dispatcher began sending a fan-out
    tasks = [
        asyncio.create_task(processor.process_update(_update(n, 200 + n), handle()))
        for n in range(6)
    ]
    await asyncio.sleep(0.05)
    assert running == 2 and processor.running_limit == 2
    processor.limit_running(None)  # the fan-out is sent: the others start at once
    await asyncio.sleep(0.05)
    assert running == 6
    release.set()
    await asyncio.gather(*tasks)
    assert max(at_once) == 6
    processor.limit_running(1000)  # never above the configured most
    assert processor.running_limit == 8


async def test_the_dispatcher_says_when_it_sends_a_fan_out(
    start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    # 30 followers, batches of 10: full batches are a fan-out; updates are held to the
    # setting meanwhile and run as many as before once the last batch is taken.
    await load(database_url, TEST_EVENT, clock.now())
    clock.set(START - dt.timedelta(hours=1, minutes=30))
    async with start_bot(concurrent_updates_during_fanout=3, **QUIET) as app:
        services = app.bot_data.services
        async with services.database.transaction() as session:
            event_id = await session.scalar(select(Event.id).where(Event.key == "test-summit"))
            for chat_id in range(9000, 9030):
                session.add(
                    ChatRow(id=chat_id, type=ChatType.PRIVATE, language="en", timezone="UTC")
                )
                session.add(
                    Subscription(
                        chat_id=chat_id,
                        scope=SubscriptionScope.EVENT,
                        event_id=event_id,
                        created_at=clock.now(),
                    )
                )
        dispatcher = services.dispatcher
        dispatcher.batch_size = 10
        seen: list[tuple[bool, int]] = []
        processor = app.update_processor
        assert isinstance(processor, ChatOrderedUpdateProcessor)
        listener = dispatcher.on_fanout
        assert listener is not None

        def observed(sending: bool) -> None:
            listener(sending)
            seen.append((sending, processor.running_limit))

        dispatcher.on_fanout = observed
        clock.set(START - dt.timedelta(minutes=59))
        result = await dispatcher.sweep()
    assert result.sent == 30
    assert seen == [(True, 3), (False, processor.max_running)]


def test_updates_are_ordered_by_chat_or_else_by_user() -> None:
    assert ordering_key(_update(1, 42)) == 42
    inline = Update.de_json(
        {
            "update_id": 9,
            "inline_query": {
                "id": "1",
                "from": {"id": 77, "is_bot": False, "first_name": "A"},
                "query": "sco",
                "offset": "",
            },
        },
        None,
    )
    assert ordering_key(inline) == 77
    assert ordering_key(object()) is None


async def test_an_update_cancelled_while_waiting_for_its_chat_is_not_left_unawaited() -> None:
    processor = ChatOrderedUpdateProcessor(max_running=4)
    gate = asyncio.Event()

    async def slow() -> None:
        await gate.wait()

    async def never() -> None:  # must be closed, not left "never awaited"
        raise AssertionError("ran after being cancelled")

    first = asyncio.create_task(processor.process_update(_update(1, 5), slow()))
    waiting = asyncio.create_task(processor.process_update(_update(2, 5), never()))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.set()
    await first
    assert processor.chats_in_progress == 0


# --- end to end: one chat's messages answered in the order sent ------------------------


async def test_a_users_quick_messages_are_answered_in_order_while_others_are_served(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    await load(database_url, TEST_EVENT, NOW)
    async with start_bot(**QUIET, requests_per_minute=1_000_000):
        # Each /lang changes how the next reply reads: out of order, a reply would be in
        # the wrong language.
        texts = ["/lang ru", "/help", "/lang en", "/help", "/lang ru", "/help"]
        pushed = [bot_api.message(text, chat_id=9100) for text in texts]
        others = [bot_api.message("/help", chat_id=9200 + n) for n in range(5)]
        for update in others:
            await bot_api.reply_to(update)
        for update in pushed:
            await bot_api.reply_to(update)
        await asyncio.sleep(0.2)
    replies = [plain(call.text) for call in bot_api.sent_to(9100)]
    assert len(replies) == len(texts)
    helps = replies[1::2]
    assert [text.split("\n")[0] for text in helps] == [
        "Трекер саммитов",
        "Summit tracker",
        "Трекер саммитов",
    ]


# --- SQLite's batched writes -----------------------------------------------------------


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> Any:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'batch.sqlite3'}")
    async with database.engine.begin() as connection:
        await connection.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    yield database
    await database.dispose()


async def _notes(database: Database) -> list[str]:
    async with database.sessions() as session:
        result = await session.execute(text("SELECT text FROM notes"))
        return sorted(str(row[0]) for row in result)


async def _add(session: AsyncSession, note: str) -> None:
    await session.execute(text("INSERT INTO notes (text) VALUES (:note)"), {"note": note})


async def test_writes_queued_together_share_a_commit_and_each_returns_once_it_is_on_disk(
    sqlite_database: Database,
) -> None:
    database = sqlite_database
    returned: list[str] = []

    async def write(text: str) -> None:
        async with database.transaction() as session:
            await _add(session, text)
        # Returned: committed, so a reader on another connection sees it.
        assert text in await _notes(database)
        returned.append(text)

    await asyncio.gather(*(write(f"n{n}") for n in range(20)))
    writer = database.sqlite_writer
    assert sorted(returned) == sorted(f"n{n}" for n in range(20))
    assert writer.blocks_committed == 20
    assert writer.commits < 20  # shared transactions, not one each


async def test_a_failing_block_loses_only_its_own_changes(sqlite_database: Database) -> None:
    database = sqlite_database

    async def good(text: str) -> None:
        async with database.transaction() as session:
            await _add(session, text)

    async def bad() -> None:
        async with database.transaction() as session:
            await _add(session, "bad")
            raise ValueError("refused")

    outcomes = await asyncio.gather(good("a"), bad(), good("b"), return_exceptions=True)
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[0] is None and outcomes[2] is None
    assert await _notes(database) == ["a", "b"]


async def test_a_commit_that_fails_is_every_members_error_and_nothing_is_kept(
    sqlite_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = sqlite_database
    original = AsyncSession.commit

    async def failing_commit(self: AsyncSession) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(AsyncSession, "commit", failing_commit)

    async def write(text: str) -> None:
        async with database.transaction() as session:
            await _add(session, text)

    outcomes = await asyncio.gather(*(write(f"n{n}") for n in range(5)), return_exceptions=True)
    assert all(isinstance(outcome, OperationalError) for outcome in outcomes)
    monkeypatch.setattr(AsyncSession, "commit", original)
    assert await _notes(database) == []
    # The file is free again: the next write goes through.
    await write("after")
    assert await _notes(database) == ["after"]


async def test_a_write_inside_a_write_is_refused_rather_than_waiting_for_itself(
    sqlite_database: Database,
) -> None:
    database = sqlite_database
    with pytest.raises(NestedWriteError):
        async with database.transaction() as session:
            await _add(session, "outer")
            async with database.transaction():
                pass
    assert await _notes(database) == []


async def test_a_subscription_is_confirmed_only_once_it_is_stored(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 🔔 whose write does not last is answered with an error, never "subscribed"."""
    await load(database_url, TEST_EVENT, NOW)
    async with start_bot(**QUIET) as application:
        database = application.bot_data.services.database
        original = SessionTransaction.commit
        failing = {"on": True}

        def commit(self: SessionTransaction, _to_root: bool = False) -> Any:
            # Every outer commit fails (SAVEPOINTs are released as usual): on SQLite the
            # batch's, on PostgreSQL the block's own.
            if failing["on"] and not self.nested:
                raise OperationalError("COMMIT", {}, Exception("disk I/O error"))
            return original(self, _to_root=_to_root)

        card = await bot_api.reply_to(bot_api.message("/event test-summit", chat_id=9300))
        data = card.button("Remind")["callback_data"]
        monkeypatch.setattr(SessionTransaction, "commit", commit)
        pressed = bot_api.press(card, data, user_id=9300)
        reply = await bot_api.wait_for(
            lambda call: call.method == "answerCallbackQuery" and "unavailable" in call.text
        )
        failing["on"] = False
        monkeypatch.setattr(SessionTransaction, "commit", original)
        await asyncio.sleep(0.2)
        assert "temporarily unavailable" in plain(reply.text)
        # Nothing claims the subscription: no "reminded" message to the chat.
        assert not [c for c in bot_api.sent_to(9300)[1:] if "remind" in plain(c.text).lower()]
        del pressed
        async with database.sessions() as session:
            count = await session.scalar(select(func.count()).where(Subscription.chat_id == 9300))
        assert count == 0
