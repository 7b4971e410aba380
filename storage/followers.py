"""Who follows an event, and ledger rows written once: what planning reminders and
notices share.

A chat follows an event directly, through its organisation, or by following
everything; the most specific subscription decides its lead times. Rows are inserted
only where their key (chat, event, kind, occurrence, slot) is not in the ledger yet,
so planning twice writes nothing twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dates import UTC
from storage.models import (
    Chat,
    Delivery,
    DeliveryKind,
    Event,
    Subscription,
    SubscriptionScope,
)
from storage.upsert import conflict_insert
from storage.views import EventView, OrganisationRef, PlaceView

DEFAULT_LEAD_TIMES: tuple[int, ...] = (7 * 1440, 1440, 60)
LEAD_TIME_CHOICES: tuple[int, ...] = (30 * 1440, 7 * 1440, 3 * 1440, 1440, 180, 60, 15)
MAX_LEAD = max(LEAD_TIME_CHOICES)
DAY_NOTICE_HOUR = 9
GRACE = dt.timedelta(hours=1)


@dataclass(frozen=True)
class PlannedDelivery:
    """A reminder or notice as the planner wants it to exist."""

    chat_id: int
    event_id: int
    kind: DeliveryKind
    occurrence_at: dt.datetime
    slot: int
    due_at: dt.datetime
    expires_at: dt.datetime

    @property
    def key(self) -> tuple[int, int, DeliveryKind, dt.datetime, int]:
        return (self.chat_id, self.event_id, self.kind, self.occurrence_at, self.slot)


def at_local(day: dt.date, hour: int, zone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def event_view(event: Event) -> EventView:
    org = OrganisationRef.of(event.organisation) if event.organisation else None
    place = PlaceView.of(event.place) if event.place else None
    return EventView.of(event, org, place)


@dataclass(frozen=True)
class Follower:
    chat_id: int
    zone: str
    lead_times: tuple[int, ...]
    specificity: int  # event 2 > organisation 1 > all 0: the most specific subscription wins
    # When the chat began following: nothing due before is planned, even when catching up.
    since: dt.datetime


_SPECIFICITY = {
    SubscriptionScope.ALL: 0,
    SubscriptionScope.ORGANISATION: 1,
    SubscriptionScope.EVENT: 2,
}


def following_condition(event_ids: Sequence[int], org_ids: Iterable[int]) -> ColumnElement[bool]:
    """Subscriptions of active, unpaused chats covering any of these events."""
    return and_(
        Chat.is_active.is_(True),
        Chat.paused.is_(False),
        or_(
            Subscription.scope == SubscriptionScope.ALL,
            and_(
                Subscription.scope == SubscriptionScope.ORGANISATION,
                Subscription.organisation_id.in_(org_ids),
            ),
            and_(
                Subscription.scope == SubscriptionScope.EVENT,
                Subscription.event_id.in_(event_ids),
            ),
        ),
    )


async def followers_of(
    session: AsyncSession,
    events: Sequence[Event],
    chat_ids: Sequence[int] | None,
    default_lead_times: tuple[int, ...],
) -> dict[int, list[Follower]]:
    """Active chats following each event (directly, by organisation, or everything)."""
    event_ids = [e.id for e in events]
    by_organisation: dict[int, list[int]] = defaultdict(list)
    for event in events:
        if event.organisation_id is not None:
            by_organisation[event.organisation_id].append(event.id)
    # Plain columns, not ORM objects: this reads every subscriber of a popular event.
    statement = (
        select(
            Subscription.chat_id,
            Subscription.scope,
            Subscription.organisation_id,
            Subscription.event_id,
            Subscription.lead_times,
            Subscription.created_at,
            Chat.timezone,
            Chat.lead_times,
        )
        .join(Chat, Chat.id == Subscription.chat_id)
        .where(following_condition(event_ids, by_organisation))
    )
    if chat_ids is not None:
        statement = statement.where(Subscription.chat_id.in_(chat_ids))
    known = set(event_ids)
    offered = {*LEAD_TIME_CHOICES, *default_lead_times}
    by_event: dict[int, dict[int, Follower]] = defaultdict(dict)
    rows = await session.execute(statement)
    for chat_id, scope, org_id, event_id, own_leads, since, zone, chat_leads in rows:
        covered: Sequence[int] = []
        if scope is SubscriptionScope.ALL:
            covered = event_ids
        elif scope is SubscriptionScope.ORGANISATION and org_id is not None:
            covered = by_organisation.get(org_id, [])
        if event_id in known:
            covered = [*covered, event_id]
        if not covered:
            continue
        # Only lead times the bot offers (all it stores): the planner's window checks
        # (``_could_be_due``, the in-place move of a re-dated event) count on that.
        leads = tuple(
            lead for lead in own_leads or chat_leads or default_lead_times if lead in offered
        )
        follower = Follower(chat_id, zone, leads, _SPECIFICITY[scope], since)
        for covered_id in covered:
            chats = by_event[covered_id]
            current = chats.get(chat_id)
            if current is None:
                chats[chat_id] = follower
                continue
            # The most specific lead times, from the earliest time the chat followed.
            winner = follower if follower.specificity > current.specificity else current
            chats[chat_id] = replace(winner, since=min(current.since, follower.since))
    return {event_id: list(chats.values()) for event_id, chats in by_event.items()}


async def insert_new(
    session: AsyncSession, rows: Sequence[dict[str, Any]], model: type[Any] = Delivery
) -> int:
    """Insert rows, leaving alone any that exist already (another planner was first)."""
    if not rows:
        return 0
    statement = conflict_insert(session, model).on_conflict_do_nothing()
    inserted = 0
    for start in range(0, len(rows), 1000):
        result = await session.execute(statement, rows[start : start + 1000])
        inserted += max(getattr(result, "rowcount", 0) or 0, 0)
    return inserted


async def insert_for_chats(
    session: AsyncSession, chat_ids: Sequence[int], values: dict[str, Any]
) -> int:
    """One ledger row per chat with these ``values``, leaving alone rows that exist.

    The chat ids travel as one parameter (a JSON array on SQLite, an array on
    PostgreSQL) and every other value once, instead of a row of parameters per chat.
    """
    if not chat_ids:
        return 0
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    ids: Any
    if dialect == "postgresql":
        ids = func.unnest(bindparam("chat_ids", list(chat_ids), ARRAY(BigInteger))).column_valued()
    else:
        ids = func.json_each(json.dumps(list(chat_ids))).table_valued("value").c.value
    table = Delivery.__table__
    columns = list(values)
    rows = select(
        ids, *(literal(values[name], table.c[name].type).label(name) for name in columns)
    ).where(true())  # SQLite reads "ON CONFLICT" after a FROM without WHERE as a join
    statement = conflict_insert(session, Delivery).from_select(["chat_id", *columns], rows)
    result = await session.execute(statement.on_conflict_do_nothing())
    return max(getattr(result, "rowcount", 0) or 0, 0)
