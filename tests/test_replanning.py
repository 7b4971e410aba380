"""Re-planning when an event moves: the in-place move of pending reminders must leave the
ledger exactly as the general re-plan (read every follower, prune, plan) would.

Each case moves the test summit from a ledger planned at a fixed instant, once with the
in-place move allowed and once forced through the general path, each in a transaction
that is rolled back, and compares the reminders the two leave behind.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import select, update

from storage.chats import migrate_chat
from storage.database import Database
from storage.dataset import follow_up_import, import_text
from storage.models import (
    Chat,
    ChatType,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Event,
    Meta,
    Subscription,
)
from storage.models import SubscriptionScope as Scope
from storage.operations import _load_event, changed, load_event_row, save_event
from storage.planning import PLANNED_UNTIL_KEY, Planner
from tests.factories import START, TEST_EVENT, load

UTC = dt.UTC
DAY, HOUR, MINUTE = dt.timedelta(days=1), dt.timedelta(hours=1), dt.timedelta(minutes=1)
# Followers with different lead times, zones and ways of following.
FOLLOWERS: Sequence[tuple[int, str, list[int] | None, Scope]] = (
    (101, "Asia/Almaty", None, Scope.EVENT),  # default lead times
    (102, "Europe/Berlin", [15, 60, 180], Scope.EVENT),
    (103, "America/New_York", [1440, 60], Scope.ORGANISATION),
    (104, "Asia/Tokyo", [10080, 4320, 1440, 180, 15], Scope.ALL),
)


class _Undo(Exception):
    """Carries what a transaction saw out of it, and rolls it back."""

    def __init__(self, seen: Any) -> None:
        self.seen = seen


class CountingPlanner(Planner):
    """A planner that counts how often the general path ran."""

    general = 0

    async def prune(self, *args: Any, **kwargs: Any) -> int:
        CountingPlanner.general += 1
        return await super().prune(*args, **kwargs)


async def _follow(database: Database, now: dt.datetime) -> None:
    async with database.transaction() as session:
        event = await session.scalar(select(Event).where(Event.key == "test-summit"))
        assert event is not None
        for chat_id, zone, leads, scope in FOLLOWERS:
            session.add(Chat(id=chat_id, type=ChatType.PRIVATE, language="en", timezone=zone))
            session.add(
                Subscription(
                    chat_id=chat_id,
                    scope=scope,
                    organisation_id=event.organisation_id if scope is Scope.ORGANISATION else None,
                    event_id=event.id if scope is Scope.EVENT else None,
                    lead_times=leads,
                    created_at=now - DAY * 30,
                )
            )
        await session.flush()
        await Planner().replan(session, now, chat_ids=[chat_id for chat_id, *_ in FOLLOWERS])


async def _ledger(session: Any) -> list[tuple[Any, ...]]:
    rows = await session.execute(
        select(
            Delivery.chat_id,
            Delivery.occurrence_at,
            Delivery.slot,
            Delivery.due_at,
            Delivery.expires_at,
            Delivery.status,
        ).where(Delivery.kind == DeliveryKind.REMINDER)
    )
    return sorted(tuple(row) for row in rows.all())


async def _move(database: Database, to: str, now: dt.datetime, *, in_place: bool) -> Any:
    moved = TEST_EVENT.replace("2026-12-01T10:00", to)
    CountingPlanner.general = 0
    try:
        async with database.transaction() as session:
            report = await import_text(session, moved, "moved.yaml", changed_by="test")
            if not in_place:
                report.moved_events.clear()
            await follow_up_import(session, report, now, CountingPlanner())
            raise _Undo((await _ledger(session), CountingPlanner.general))
    except _Undo as undo:
        return undo.seen


async def _both_ways(database: Database, to: str, now: dt.datetime) -> tuple[Any, int]:
    """Move in place where allowed and by the general path only; the ledgers must match.

    Returns that ledger and how often the general path ran when in place was allowed.
    """
    fast, general_runs = await _move(database, to, now, in_place=True)
    slow, _ = await _move(database, to, now, in_place=False)
    assert fast == slow
    return fast, general_runs


def _one_hour_before(ledger: Any, chat_id: int = 102) -> list[tuple[dt.datetime, DeliveryStatus]]:
    return [
        (row[1], DeliveryStatus(row[5])) for row in ledger if row[0] == chat_id and row[2] == 60
    ]


# (planned at, moved to (venue time, UTC+5), whether the in-place move applies)
CASES = [
    (START - DAY - 2 * HOUR, "2026-12-01T11:00", True),  # 1 day before: still in the window
    (START - DAY - 2 * HOUR, "2026-12-01T10:30", True),
    (START - DAY - 2 * HOUR, "2026-12-01T09:00", True),  # earlier, still ahead
    (START - DAY - 2 * HOUR, "2026-12-01T07:00", True),  # its 1 day before is now past
    (START - DAY - 2 * HOUR, "2026-12-01T15:00", True),  # ... now beyond the window
    (START - DAY - 2 * HOUR, "2026-12-08T10:00", True),  # a week later: all out of the window
    (START - DAY - 2 * HOUR, "2026-11-30T12:00", False),  # its 3 hours before falls due
    (START - DAY - 2 * HOUR, "2026-11-30T10:00", False),  # already started: general path
    (START - 2 * HOUR, "2026-12-01T10:10", True),  # 1 hour and 15 minutes before move on
    (START - 2 * HOUR, "2026-12-01T09:30", True),
    (START - 20 * MINUTE, "2026-12-01T10:20", True),  # 15 minutes before moves on
    (START - 12 * MINUTE, "2026-12-01T10:20", False),  # its 15 minutes before falls due again
    (START - 8 * DAY, "2026-12-02T10:00", True),  # nothing in the window before or after
    (START - 7 * DAY - HOUR, "2026-11-30T10:00", True),  # 7 days before is now past
    (START - 8 * DAY - HOUR, "2026-11-30T10:00", False),  # 7 days before falls due
]


@pytest.mark.parametrize(("now", "to", "in_place"), CASES)
async def test_moving_in_place_leaves_the_ledger_the_general_re_plan_would(
    database_url: str, now: dt.datetime, to: str, in_place: bool
) -> None:
    await load(database_url, TEST_EVENT, now)
    database = Database(database_url)
    try:
        await _follow(database, now)
        _, general_runs = await _both_ways(database, to, now)
    finally:
        await database.dispose()
    assert (general_runs == 0) is in_place


async def test_a_reminder_sent_for_the_earlier_time_is_not_repeated(database_url: str) -> None:
    """Half an hour later, a "1 hour before" already sent stays sent and is not planned
    again: its new time falls due, so the general rules (no repeat) decide."""
    now = START - 50 * MINUTE
    await load(database_url, TEST_EVENT, START - 70 * MINUTE)
    database = Database(database_url)
    try:
        await _follow(database, START - 70 * MINUTE)
        async with database.transaction() as session:
            sent = (
                await session.scalars(
                    select(Delivery).where(Delivery.chat_id == 102, Delivery.slot == 60)
                )
            ).one()
            sent.status = DeliveryStatus.SENT
        ledger, general_runs = await _both_ways(database, "2026-12-01T10:30", now)
    finally:
        await database.dispose()
    assert general_runs == 1
    assert _one_hour_before(ledger) == [(START, DeliveryStatus.SENT)]


async def test_moving_back_near_a_time_already_reminded_of_does_not_repeat_it(
    database_url: str,
) -> None:
    """Reminded "1 hour before" 10:00, moved to 12:00 (a new one planned), then back to
    10:30: that is too close to the first to remind again, which only the general rules
    know, so the in-place move must not take the pending one along."""
    await load(database_url, TEST_EVENT, START - 70 * MINUTE)
    database = Database(database_url)
    try:
        await _follow(database, START - 70 * MINUTE)
        async with database.transaction() as session:
            for row in await session.scalars(select(Delivery).where(Delivery.slot == 60)):
                row.status = DeliveryStatus.SENT
        now = START - 50 * MINUTE
        await load(database_url, TEST_EVENT.replace("2026-12-01T10:00", "2026-12-01T12:00"), now)
        ledger, general_runs = await _both_ways(database, "2026-12-01T10:30", now)
    finally:
        await database.dispose()
    assert general_runs == 1
    assert _one_hour_before(ledger) == [(START, DeliveryStatus.SENT)]


async def test_a_stored_lead_time_the_bot_does_not_offer_is_ignored_by_every_path(
    database_url: str,
) -> None:
    """Lead times come from the bot's choices; one stored otherwise (90 minutes, written
    to the database by hand) is ignored by the general planner as by the in-place move,
    so the two never disagree about it: 65 minutes before, a move 110 minutes later
    brings "90 minutes before" into the window, and neither plans it."""
    now = START - 65 * MINUTE
    await load(database_url, TEST_EVENT, now)
    database = Database(database_url)
    try:
        await _follow(database, now)
        async with database.transaction() as session:
            event = await session.scalar(select(Event).where(Event.key == "test-summit"))
            assert event is not None
            session.add(
                Chat(
                    id=105,
                    type=ChatType.PRIVATE,
                    language="en",
                    timezone="UTC",
                    lead_times=[90, 60],
                )
            )
            session.add(
                Subscription(
                    chat_id=105, scope=Scope.EVENT, event_id=event.id, created_at=now - DAY
                )
            )
            await session.flush()
            await Planner().replan(session, now, chat_ids=[105])
        ledger, _ = await _both_ways(database, "2026-12-01T11:50", now)
    finally:
        await database.dispose()
    assert [row[2] for row in ledger if row[0] == 105] == [60]


async def test_a_supergroup_keeps_its_own_lead_times_when_a_group_moves_in(
    database_url: str,
) -> None:
    """A group (201, "1 hour before") becomes a supergroup (202) that already follows the
    summit with "15 minutes before" only: the supergroup's wishes win, so the group's
    pending "1 hour before" is dropped, and a later move of the summit agrees."""
    now = START - 2 * HOUR
    await load(database_url, TEST_EVENT, now)
    database = Database(database_url)
    try:
        await _follow(database, now)
        async with database.transaction() as session:
            event = await session.scalar(select(Event).where(Event.key == "test-summit"))
            assert event is not None
            for chat_id, chat_type, leads in (
                (201, ChatType.GROUP, [60]),
                (202, ChatType.SUPERGROUP, [15]),
            ):
                session.add(Chat(id=chat_id, type=chat_type, language="en", timezone="UTC"))
                session.add(
                    Subscription(
                        chat_id=chat_id,
                        scope=Scope.EVENT,
                        event_id=event.id,
                        lead_times=leads,
                        created_at=now - DAY,
                    )
                )
            await session.flush()
            await Planner().replan(session, now, chat_ids=[201, 202])
        async with database.transaction() as session:
            await migrate_chat(session, 201, 202, planner=Planner(), now=now)
            assert [row[2] for row in await _ledger(session) if row[0] in (201, 202)] == [15]
        ledger, general_runs = await _both_ways(database, "2026-12-01T10:10", now)
    finally:
        await database.dispose()
    assert general_runs == 0
    assert [row[2] for row in ledger if row[0] in (201, 202)] == [15]


async def test_an_operators_save_and_a_replicas_planning_do_not_deadlock(
    database_url: str,
) -> None:
    """PostgreSQL row locks: a replica's sweep holds the planning watermark and plans the
    summit's "1 hour before" (each insert checks the foreign key to the summit's row);
    the operator's Save holds the summit's row and, to move its reminders, asks for the
    watermark. The Save's lock must not block the foreign-key checks, or each waits for
    the other and PostgreSQL aborts one."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks: PostgreSQL")
    now = START - 6 * HOUR - 30 * MINUTE
    await load(database_url, TEST_EVENT, now)
    database = Database(database_url)
    try:
        async with database.transaction() as session:
            # Planned until 1 h 30 min before: the "1 hour before" is the next slice's.
            until = START - HOUR - 30 * MINUTE
            await session.execute(
                update(Meta).where(Meta.key == PLANNED_UNTIL_KEY).values(value=until.isoformat())
            )
        await _follow(database, now)
        later = now + 10 * MINUTE  # the next slice ends 20 min before: "1 hour before" in it
        errors: list[BaseException] = []
        holding = asyncio.Event()

        async def replica_sweep() -> None:
            await holding.wait()
            try:
                async with database.transaction() as session:
                    await Planner().advance(session, later)
            except Exception as exc:
                errors.append(exc)

        async def operators_save() -> None:
            try:
                async with database.transaction() as operator:
                    row = await load_event_row(operator, "test-summit")
                    assert row is not None
                    # save_event's first step, the summit's row locked, done here first so
                    # that the replica's planning comes in between.
                    await _load_event(operator, "test-summit", lock=True)
                    holding.set()
                    await asyncio.sleep(0.5)  # the replica is planning by now
                    await save_event(
                        operator,
                        changed(row, start="2026-12-01T10:10"),
                        before=row,
                        changed_by="operator",
                        now=later,
                        planner=Planner(),
                    )
            except Exception as exc:
                errors.append(exc)

        await asyncio.wait_for(asyncio.gather(replica_sweep(), operators_save()), 30)
    finally:
        await database.dispose()
    assert not errors, [repr(error)[:300] for error in errors]


async def test_a_chats_re_plan_keeps_a_reminder_due_but_not_yet_sent_and_drops_the_unfollowed(
    database_url: str,
) -> None:
    """A chat's re-plan (a new zone, new lead times) reads its pending rows and what it
    follows together: a "1 hour before" already due that the dispatcher has not sent
    yet stays, as does the "15 minutes before" still ahead; once the chat no longer
    follows the event, both go."""
    await load(database_url, TEST_EVENT, START - 70 * MINUTE)
    database = Database(database_url)
    now = START - 50 * MINUTE  # the "1 hour before" fell due ten minutes ago

    async def pending_of_102() -> list[tuple[int, dt.datetime]]:
        async with database.sessions() as session:
            rows = await session.execute(
                select(Delivery.slot, Delivery.due_at).where(
                    Delivery.chat_id == 102, Delivery.status == DeliveryStatus.PENDING
                )
            )
            return sorted((slot, due_at) for slot, due_at in rows.all())

    try:
        await _follow(database, START - 70 * MINUTE)
        expected = [(15, START - 15 * MINUTE), (60, START - HOUR)]
        assert await pending_of_102() == expected
        async with database.transaction() as session:
            await session.execute(update(Chat).where(Chat.id == 102).values(timezone="Asia/Tokyo"))
            await Planner().replan_chat(session, now, 102)
        assert await pending_of_102() == expected
        async with database.transaction() as session:
            await Planner().replan(session, now, chat_ids=[102])
        assert await pending_of_102() == expected
        async with database.transaction() as session:
            subscription = await session.scalar(
                select(Subscription).where(Subscription.chat_id == 102)
            )
            await session.delete(subscription)
            await session.flush()
            await Planner().replan_chat(session, now, 102)
        assert await pending_of_102() == []
    finally:
        await database.dispose()
