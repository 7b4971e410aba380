"""Retention of the delivery ledger: finished deliveries older than
``DELIVERY_RETENTION_DAYS`` go, in small batches, counted per day first; what is pending
stays, /stats counts the same, and a reminder whose row went is never sent again."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, insert, select

from bot.clock import FixedClock
from bot.context import BotApplication
from config.settings import Settings
from storage.database import Database
from storage.models import (
    Chat,
    ChatType,
    Delivery,
    DeliveryDailyCount,
    DeliveryKind,
    DeliveryStatus,
    Event,
    Meta,
)
from storage.operations import operator_stats
from storage.planning import PLANNED_UNTIL_KEY
from storage.retention import prune_ledger, retention_cutoff
from tests.botapi import LocalBotApi
from tests.conftest import NOW, StartBot
from tests.factories import QUIET, START, TEST_EVENT, load, plain

UTC = dt.UTC
CHAT = 5001
KEEP = 180
SENT, SKIPPED, FAILED = DeliveryStatus.SENT, DeliveryStatus.SKIPPED, DeliveryStatus.FAILED
PENDING, CLAIMED = DeliveryStatus.PENDING, DeliveryStatus.CLAIMED
# /stats over more than the retention: the days whose rows went count from their counts.
LONG_WINDOW = dt.timedelta(days=400)


def ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def row(
    status: DeliveryStatus,
    due: dt.datetime,
    finished: dt.datetime | None = None,
    *,
    kind: DeliveryKind = DeliveryKind.DIGEST,
    event_id: int | None = None,
    chat_id: int = CHAT,
) -> dict[str, Any]:
    done = status in (SENT, SKIPPED, FAILED)
    return {
        "chat_id": chat_id,
        "event_id": event_id,
        "kind": kind,
        "occurrence_at": due,  # one key per due time
        "slot": 7,
        "due_at": due,
        "expires_at": due + dt.timedelta(hours=12),
        "status": status,
        "attempts": 1 if done else 0,
        "claimed_by": "elsewhere" if status is CLAIMED else None,
        "claimed_at": due if status is CLAIMED else None,
        "finished_at": (finished or due) if done else None,
        "created_at": due - dt.timedelta(hours=6),
    }


async def add_rows(database: Database, rows: list[dict[str, Any]], chat_id: int = CHAT) -> None:
    async with database.transaction() as session:
        if await session.get(Chat, chat_id) is None:
            session.add(
                Chat(id=chat_id, type=ChatType.PRIVATE, language="en", timezone="Asia/Almaty")
            )
            await session.flush()
        for start in range(0, len(rows), 500):
            await session.execute(insert(Delivery), rows[start : start + 500])


async def ledger(database: Database) -> list[tuple[str, str, dt.datetime]]:
    """(kind, status, due) of every row, by due time."""
    async with database.sessions() as session:
        rows = await session.execute(
            select(Delivery.kind, Delivery.status, Delivery.due_at).order_by(
                Delivery.due_at, Delivery.id
            )
        )
        return [(str(kind), str(status), due) for kind, status, due in rows.all()]


async def daily_counts(database: Database) -> dict[tuple[dt.date, str, str], int]:
    async with database.sessions() as session:
        rows = await session.execute(select(DeliveryDailyCount))
        return {(r.day, r.kind, r.status): r.count for r in rows.scalars()}


async def finished_counts(
    database: Database, window: dt.timedelta = LONG_WINDOW, now: dt.datetime = NOW
) -> dict[str, int]:
    """What /stats reports for deliveries over ``window``."""
    async with database.sessions() as session:
        stats = await operator_stats(session, now, window=window)
    return {status.value: count for status, count in stats.deliveries.items()}


async def any_event_id(database: Database) -> int:
    async with database.sessions() as session:
        event_id = await session.scalar(select(Event.id).order_by(Event.id).limit(1))
    assert event_id is not None
    return event_id


# --- the storage side -----------------------------------------------------------------


def test_the_cutoff_is_midnight_utc_the_retention_before() -> None:
    assert retention_cutoff(NOW, KEEP) == dt.datetime(2026, 5, 26, tzinfo=UTC)
    assert retention_cutoff(NOW, 7) == dt.datetime(2026, 11, 15, tzinfo=UTC)


async def test_old_finished_deliveries_go_and_what_stats_counts_stays(
    database: Database,
) -> None:
    event_id = await any_event_id(database)
    announcement: dict[str, Any] = {"kind": DeliveryKind.ANNOUNCEMENT, "event_id": event_id}
    await add_rows(
        database,
        [
            row(SENT, ago(200)),  # 6 May: goes
            row(SKIPPED, ago(195)),  # goes
            row(FAILED, ago(190), ago(190) + dt.timedelta(hours=1)),  # goes
            row(SENT, ago(181)),  # 25 May, before the cutoff (26 May 00:00): goes
            row(SENT, ago(179)),  # stays
            row(SENT, ago(10)),  # stays
            row(PENDING, ago(200) + dt.timedelta(minutes=1)),  # never finished: stays
            row(CLAIMED, ago(200) + dt.timedelta(minutes=2)),  # being sent: stays
            row(SKIPPED, ago(200) + dt.timedelta(minutes=3), ago(1)),  # finished lately: stays
            row(SENT, ago(300), **announcement),  # "already posted before": stays
            row(FAILED, ago(299), **announcement),  # would be tried again anyway: goes
        ],
    )
    before = await finished_counts(database)
    recent = await finished_counts(database, dt.timedelta(days=7))

    pruned = await prune_ledger(database, NOW, KEEP)

    assert (pruned.rows, pruned.more) == (5, False)
    assert await ledger(database) == [
        ("announcement", "sent", ago(300)),
        ("digest", "pending", ago(200) + dt.timedelta(minutes=1)),
        ("digest", "claimed", ago(200) + dt.timedelta(minutes=2)),
        ("digest", "skipped", ago(200) + dt.timedelta(minutes=3)),
        ("digest", "sent", ago(179)),
        ("digest", "sent", ago(10)),
    ]
    assert await daily_counts(database) == {
        (dt.date(2026, 1, 27), "announcement", "failed"): 1,
        (dt.date(2026, 5, 6), "digest", "sent"): 1,
        (dt.date(2026, 5, 11), "digest", "skipped"): 1,
        (dt.date(2026, 5, 16), "digest", "failed"): 1,
        (dt.date(2026, 5, 25), "digest", "sent"): 1,
    }
    assert before == {"sent": 5, "skipped": 2, "failed": 2}
    assert await finished_counts(database) == before
    assert await finished_counts(database, dt.timedelta(days=7)) == recent
    # Nothing more to remove: a second call changes nothing.
    assert (await prune_ledger(database, NOW, KEEP)).rows == 0
    assert await finished_counts(database) == before


async def test_counts_of_a_day_pruned_twice_add_up(database: Database) -> None:
    await add_rows(database, [row(SENT, ago(200) + dt.timedelta(minutes=m)) for m in range(3)])
    await prune_ledger(database, NOW, KEEP)
    await add_rows(database, [row(SENT, ago(200) + dt.timedelta(minutes=m)) for m in (5, 6)])
    await prune_ledger(database, NOW, KEEP)
    assert await daily_counts(database) == {(dt.date(2026, 5, 6), "digest", "sent"): 5}


async def test_a_call_removes_a_bounded_number_of_small_batches(database: Database) -> None:
    old = [row(SENT, ago(200) + dt.timedelta(seconds=s)) for s in range(1_050)]
    await add_rows(database, [*old, row(PENDING, ago(200) - dt.timedelta(minutes=1))])

    first = await prune_ledger(database, NOW, KEEP, batch_size=100, max_batches=4)
    assert (first.rows, first.batches, first.more) == (400, 4, True)
    calls = [first]
    while calls[-1].more:
        calls.append(await prune_ledger(database, NOW, KEEP, batch_size=100, max_batches=4))

    assert [c.rows for c in calls] == [400, 400, 250]
    assert await ledger(database) == [("digest", "pending", ago(200) - dt.timedelta(minutes=1))]
    assert await daily_counts(database) == {(dt.date(2026, 5, 6), "digest", "sent"): 1_050}


async def test_two_replicas_pruning_at_once_count_each_row_once(database_url: str) -> None:
    setup = Database(database_url)
    await add_rows(setup, [row(SENT, ago(200) + dt.timedelta(seconds=s)) for s in range(900)])
    replicas = [Database(database_url), Database(database_url)]
    try:
        done = await asyncio.gather(
            *(prune_ledger(r, NOW, KEEP, batch_size=50, max_batches=30) for r in replicas)
        )
        assert sum(p.rows for p in done) == 900
        assert await daily_counts(setup) == {(dt.date(2026, 5, 6), "digest", "sent"): 900}
    finally:
        for database in (setup, *replicas):
            await database.dispose()


def test_the_retention_is_a_setting_of_at_least_a_week(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).delivery_retention_days == 180
    monkeypatch.setenv("DELIVERY_RETENTION_DAYS", "30")
    assert Settings(_env_file=None).delivery_retention_days == 30
    monkeypatch.setenv("DELIVERY_RETENTION_DAYS", "3")
    with pytest.raises(ValidationError, match="delivery_retention_days"):
        Settings(_env_file=None)


# --- the sweep ------------------------------------------------------------------------


async def sweep_at(app: BotApplication, clock: FixedClock, moment: dt.datetime) -> int:
    """Sweep at ``moment``; how many old deliveries it removed."""
    clock.set(moment)
    return (await app.bot_data.services.dispatcher.sweep()).pruned


def reminders(bot_api: LocalBotApi, chat_id: int = CHAT) -> list[str]:
    return [plain(c.text) for c in bot_api.sent_to(chat_id) if "⏰" in c.text]


async def subscribe(bot_api: LocalBotApi, what: str, chat_id: int = CHAT) -> None:
    await bot_api.reply_to(bot_api.message(f"/subscribe {what}", chat_id=chat_id))


async def after_first_sweep() -> None:
    """The sweep a start schedules half a second in has run (it prunes too)."""
    await asyncio.sleep(0.8)


async def test_the_sweep_prunes_once_an_hour_and_again_while_a_backlog_lasts(
    start_bot: StartBot, database_url: str, clock: FixedClock
) -> None:
    database = Database(database_url)
    try:
        async with start_bot(**QUIET) as app:
            await after_first_sweep()  # at NOW: nothing to prune yet
            await add_rows(database, [row(SENT, ago(200) + dt.timedelta(minutes=1))])
            assert await sweep_at(app, clock, NOW + dt.timedelta(minutes=30)) == 0  # not yet
            assert await sweep_at(app, clock, NOW + dt.timedelta(hours=1)) == 1
            await add_rows(database, [row(SENT, ago(200) + dt.timedelta(minutes=2))])
            assert await sweep_at(app, clock, NOW + dt.timedelta(minutes=90)) == 0
            assert await sweep_at(app, clock, NOW + dt.timedelta(hours=2)) == 1
            # A backlog larger than one call may remove: every sweep goes on with it.
            backlog = [row(SENT, ago(300) + dt.timedelta(seconds=s)) for s in range(10_500)]
            await add_rows(database, backlog)
            later = NOW + dt.timedelta(hours=3)
            assert await sweep_at(app, clock, later) == 10_000
            assert await sweep_at(app, clock, later + dt.timedelta(seconds=15)) == 500
            assert await sweep_at(app, clock, later + dt.timedelta(seconds=30)) == 0
        async with database.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Delivery)) == 0
        assert sum((await daily_counts(database)).values()) == 10_502
    finally:
        await database.dispose()


async def test_a_reminder_whose_row_went_is_not_sent_again(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str, clock: FixedClock
) -> None:
    """The 7-day reminder is sent; the bot is then down for 200 days. On restart the sweep
    catches up (the reminders due meanwhile are skipped as stale) and removes the sent
    row; the chat follows the event again, and nothing is planned or sent for it."""
    await load(database_url, TEST_EVENT, clock.now())
    database = Database(database_url)
    try:
        async with start_bot(**QUIET) as app:
            await subscribe(bot_api, "test-summit")
            await sweep_at(app, clock, START - dt.timedelta(days=7) + dt.timedelta(seconds=1))
            assert len(reminders(bot_api)) == 1
        later = START + dt.timedelta(days=200)
        assert await finished_counts(database, now=later) == {"sent": 1, "skipped": 0, "failed": 0}

        clock.set(later)
        async with start_bot(**QUIET) as app:
            await after_first_sweep()  # catches up, then prunes
            await sweep_at(app, clock, later)
            async with database.sessions() as session:
                watermark = await session.scalar(
                    select(Meta.value).where(Meta.key == PLANNED_UNTIL_KEY)
                )
            # What the planner may plan from on: after every row that could go.
            assert watermark is not None
            assert dt.datetime.fromisoformat(watermark) > later > retention_cutoff(later, KEEP)
            await bot_api.reply_to(bot_api.message("/unsubscribe test-summit", chat_id=CHAT))
            await subscribe(bot_api, "test-summit")
            for hours in range(0, 48, 6):
                await sweep_at(app, clock, later + dt.timedelta(hours=hours))

        assert len(reminders(bot_api)) == 1
        rows = await ledger(database)
        assert [status for kind, status, _ in rows if kind == "reminder"] == ["skipped", "skipped"]
        assert await daily_counts(database) == {(dt.date(2026, 11, 24), "reminder", "sent"): 1}
        # The two caught up are skipped now; the one sent 200 days ago still counts.
        assert await finished_counts(database, now=later) == {"sent": 1, "skipped": 2, "failed": 0}
    finally:
        await database.dispose()


async def test_a_yearly_event_gets_next_years_reminder_and_not_last_years_again(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str, clock: FixedClock
) -> None:
    """World Water Day (22 March, yearly): the planner keeps planning the event, and a
    year's reminder is keyed by its occurrence, so the row of the last one, removed, is
    never planned again."""
    due_2027 = dt.datetime(2027, 3, 15, 4, 0, tzinfo=UTC)  # 09:00 in Almaty, 7 days before
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "world-water-day")
        await sweep_at(app, clock, due_2027 + dt.timedelta(seconds=1))
        await sweep_at(app, clock, due_2027 + dt.timedelta(days=6, seconds=1))
        assert len(reminders(bot_api)) == 2  # 7 days and 1 day before
        # A sweep a month for a year (each plans what came due, and prunes), then next
        # year's reminders are due.
        pruned = 0
        for month in range(1, 13):
            pruned += await sweep_at(app, clock, due_2027 + dt.timedelta(days=30 * month))
        due_2028 = dt.datetime(2028, 3, 15, 4, 0, tzinfo=UTC)
        await sweep_at(app, clock, due_2028 + dt.timedelta(seconds=1))
        await sweep_at(app, clock, due_2028 + dt.timedelta(days=6, seconds=1))
    assert pruned == 2
    sent = reminders(bot_api)
    assert len(sent) == 4  # two in 2027, two in 2028
    assert all("World Water Day" in text for text in sent)
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            occurrences = await session.scalars(
                select(Delivery.occurrence_at).where(Delivery.kind == DeliveryKind.REMINDER)
            )
            assert {o.year for o in occurrences} == {2028}
        assert await daily_counts(database) == {
            (dt.date(2027, 3, 15), "reminder", "sent"): 1,
            (dt.date(2027, 3, 21), "reminder", "sent"): 1,
        }
    finally:
        await database.dispose()
