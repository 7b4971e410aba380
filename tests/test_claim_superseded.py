"""Which claimed deliveries a later reminder supersedes: a chat's reminder is skipped
when a reminder of the same chat, event and occurrence with a shorter lead time is due
as well, whatever that one's status; other kinds, digests and other events are never
superseded. The check runs per row in the claim's RETURNING; these cases come from the
second engineer's review of that change, and passed on the two-statement version before
it too, on both databases."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from typing import Literal

import pytest
from sqlalchemy import select, text

from storage.claims import claim_due
from storage.database import Database
from storage.models import Chat, ChatType, Delivery, DeliveryKind, DeliveryStatus, Event
from tests.conftest import NOW
from tests.factories import TEST_EVENT, claimed_by_replicas, load

OTHER_EVENT = """
events:
  - id: other-summit
    organisation: sco
    title: {en: Other summit}
    place: astana
    start: 2026-12-01T10:00
    status: confirmed
    sources: [test]
"""
FIRST = NOW + dt.timedelta(days=9)


async def _events(database: Database, database_url: str) -> dict[str, int]:
    await load(database_url, TEST_EVENT, NOW)
    await load(database_url, OTHER_EVENT, NOW, name="other.yaml")
    async with database.sessions() as session:
        rows = await session.execute(
            select(Event.key, Event.id).where(Event.key.in_(["test-summit", "other-summit"]))
        )
        return dict(rows.all())


def _row(
    chat_id: int,
    event_id: int | None,
    kind: DeliveryKind,
    slot: int,
    ago: int,
    status: DeliveryStatus = DeliveryStatus.PENDING,
    **extra: object,
) -> Delivery:
    return Delivery(
        chat_id=chat_id,
        event_id=event_id,
        kind=kind,
        occurrence_at=FIRST,
        slot=slot,
        due_at=NOW - dt.timedelta(minutes=ago),
        expires_at=FIRST,
        status=status,
        **extra,
    )


async def _chats(database: Database, ids: list[int]) -> None:
    async with database.transaction() as session:
        session.add_all(
            Chat(id=i, type=ChatType.PRIVATE, language="en", timezone="UTC") for i in ids
        )


async def test_only_reminders_are_superseded_and_only_within_their_event(
    database: Database, database_url: str
) -> None:
    events = await _events(database, database_url)
    summit, other = events["test-summit"], events["other-summit"]
    await _chats(database, [801])
    async with database.transaction() as session:
        session.add_all(
            [
                _row(801, summit, DeliveryKind.REMINDER, 60, 1),  # due, smallest slot
                # Other kinds of the same chat, event and occurrence, larger slots: all sent.
                _row(801, summit, DeliveryKind.ANNOUNCEMENT, 100_000, 90),
                _row(801, summit, DeliveryKind.NEW_EVENT, 100_000, 90),
                _row(801, summit, DeliveryKind.CHANGE_NOTICE, 100_000, 90),
                # A change notice (slot: the revision) smaller than the reminder's lead time
                # supersedes nothing: only reminders count.
                _row(801, summit, DeliveryKind.CHANGE_NOTICE, 2, 90),
                _row(801, summit, DeliveryKind.MONTH_NOTICE, 100_000, 90),
                _row(801, None, DeliveryKind.DIGEST, 100_000, 90),  # no event
                # Another event's day-ahead reminder: not superseded by test-summit's.
                _row(801, other, DeliveryKind.REMINDER, 1440, 90),
            ]
        )
    async with database.transaction() as session:
        batch = await claim_due(session, NOW, "worker", 50)
    assert (batch.candidates, batch.skipped) == (8, 0)
    keys = {(d.kind, d.event_key) for d in batch.deliveries}
    assert (DeliveryKind.DIGEST, None) in keys
    assert (DeliveryKind.REMINDER, "other-summit") in keys


@pytest.mark.parametrize(
    "sibling",
    [
        DeliveryStatus.SENT,
        DeliveryStatus.SKIPPED,
        DeliveryStatus.FAILED,
        DeliveryStatus.CLAIMED,
        "retrying",
    ],
)
async def test_a_due_sibling_supersedes_whatever_its_status(
    database: Database, database_url: str, sibling: DeliveryStatus | Literal["retrying"]
) -> None:
    """As bdd663d had it: any due hour-ahead reminder of the occurrence, sent, skipped,
    failed, claimed by another worker or pending a retry, supersedes the day-ahead one."""
    events = await _events(database, database_url)
    await _chats(database, [802])
    extra: dict[str, object] = {}
    if sibling == "retrying":
        status, extra = DeliveryStatus.PENDING, {"not_before": NOW + dt.timedelta(hours=1)}
    else:
        status = sibling
        if sibling is DeliveryStatus.CLAIMED:
            extra = {"claimed_by": "someone-else", "claimed_at": NOW}
    async with database.transaction() as session:
        session.add_all(
            [
                _row(802, events["test-summit"], DeliveryKind.REMINDER, 1440, 90),
                _row(802, events["test-summit"], DeliveryKind.REMINDER, 60, 1, status, **extra),
            ]
        )
    async with database.transaction() as session:
        batch = await claim_due(session, NOW, "worker", 50)
    assert (batch.candidates, batch.skipped, batch.deliveries) == (1, 1, [])


async def test_a_sibling_locked_by_another_transaction_neither_blocks_nor_is_missed(
    database: Database, database_url: str
) -> None:
    if database.is_sqlite:
        pytest.skip("row locks: PostgreSQL")
    events = await _events(database, database_url)
    await _chats(database, [803])
    async with database.transaction() as session:
        session.add_all(
            [
                _row(803, events["test-summit"], DeliveryKind.REMINDER, 1440, 90),
                _row(803, events["test-summit"], DeliveryKind.REMINDER, 60, 1),
            ]
        )
    other = Database(database_url)
    try:
        async with other.transaction() as holder:  # another replica's claim in progress
            await holder.execute(text("SELECT id FROM deliveries WHERE slot = 60 FOR UPDATE"))
            async with database.transaction() as session:
                batch = await asyncio.wait_for(claim_due(session, NOW, "worker", 50), 10)
    finally:
        await other.dispose()
    assert (batch.candidates, batch.skipped, batch.deliveries) == (1, 1, [])


CHATS, REPLICAS, LIMIT = 150, 4, 9


async def test_replicas_claiming_reminders_at_once_send_each_chat_its_latest_once(
    database: Database, database_url: str
) -> None:
    events = await _events(database, database_url)
    ids = [8600 + n for n in range(CHATS)]
    await _chats(database, ids)
    async with database.transaction() as session:
        session.add_all(
            _row(chat_id, events["test-summit"], DeliveryKind.REMINDER, slot, slot - n % 7)
            for n, chat_id in enumerate(ids)
            for slot in (60, 1440, 10080)
        )
    batches = await claimed_by_replicas(database_url, NOW, REPLICAS, LIMIT)
    claimed: dict[int, list[str]] = collections.defaultdict(list)
    for name, batch in batches:
        for d in batch.deliveries:
            claimed[d.chat_id].append(f"{name}:{d.slot}")
    skipped = sum(batch.skipped for _, batch in batches)
    assert sorted(claimed) == ids
    assert all(len(v) == 1 and v[0].endswith(":60") for v in claimed.values()), claimed
    assert skipped == 2 * CHATS
