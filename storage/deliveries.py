"""The delivery ledger: which reminders and notices are due, claimed, sent, failed or skipped.

The database is the source of truth. The *planner* writes one ledger row per
(chat, event occurrence, kind, lead time) shortly before it is due (a few hours
ahead, so the table stays small however far events lie in the future). A
*dispatcher* claims due rows atomically (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so replicas share the work), sends them and records the outcome.
Nothing here talks to Telegram.

When a row is due:
- exact-time events: ``lead`` minutes before the start;
- day-precision events: at 09:00 in the chat's time zone, ``lead // 1440`` days
  before the day (leads under a day are dropped: there is no hour to count from);
- month-precision events: one "this month" notice at 09:00 on the month's first day;
- year-precision events: nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    SQLColumnExpression,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.dates import UTC, Precision
from storage.models import (
    Chat,
    ChatType,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    DigestFrequency,
    Event,
    EventChange,
    EventStatus,
    Meta,
    Subscription,
    SubscriptionScope,
    UTCDateTime,
)
from storage.views import EventView, OrganisationRef, PlaceView

DEFAULT_LEAD_TIMES: tuple[int, ...] = (7 * 1440, 1440, 60)
LEAD_TIME_CHOICES: tuple[int, ...] = (30 * 1440, 7 * 1440, 3 * 1440, 1440, 180, 60, 15)
MAX_LEAD = max(LEAD_TIME_CHOICES)
DAY_NOTICE_HOUR = 9
GRACE = dt.timedelta(hours=1)
PLANNED_UNTIL_KEY = "deliveries_planned_until"
_REMINDER_KINDS = (DeliveryKind.REMINDER, DeliveryKind.MONTH_NOTICE)


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


def _at_local(day: dt.date, hour: int, zone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def reminders_for(
    event_id: int, occurrence: EventView, chat_id: int, chat_zone: str, lead_times: Iterable[int]
) -> list[PlannedDelivery]:
    """Every reminder a chat with these lead times should get for one event occurrence."""
    start = occurrence.start
    planned: list[PlannedDelivery] = []

    def add(kind: DeliveryKind, slot: int, due: dt.datetime, expires: dt.datetime) -> None:
        planned.append(
            PlannedDelivery(chat_id, event_id, kind, occurrence.starts_at, slot, due, expires)
        )

    if start.precision is Precision.TIME:
        for lead in sorted(set(lead_times)):
            due = occurrence.starts_at - dt.timedelta(minutes=lead)
            add(DeliveryKind.REMINDER, lead, due, occurrence.starts_at)
    elif start.precision is Precision.DAY:
        by_days: dict[int, int] = {}
        for lead in sorted(set(lead_times), reverse=True):
            if lead >= 1440:
                by_days[lead // 1440] = lead  # the smallest lead of each day count wins
        for days, lead in by_days.items():
            due = _at_local(start.first_day - dt.timedelta(days=days), DAY_NOTICE_HOUR, chat_zone)
            # Stale once the day has begun at the venue, but never before it is due: far
            # west of the venue, 09:00 the day before can be after the venue's midnight.
            add(DeliveryKind.REMINDER, lead, due, max(occurrence.starts_at, due + GRACE))
    elif start.precision is Precision.MONTH:
        due = _at_local(start.first_day, DAY_NOTICE_HOUR, chat_zone)
        add(DeliveryKind.MONTH_NOTICE, 0, due, occurrence.ends_at)
    return planned


def _event_view(event: Event) -> EventView:
    org = OrganisationRef.of(event.organisation) if event.organisation else None
    place = PlaceView.of(event.place) if event.place else None
    return EventView.of(event, org, place)


@dataclass(frozen=True)
class _Follower:
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


def _following(event_ids: Sequence[int], org_ids: Iterable[int]) -> ColumnElement[bool]:
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


async def _followers(
    session: AsyncSession,
    events: Sequence[Event],
    chat_ids: Sequence[int] | None,
    default_lead_times: tuple[int, ...],
) -> dict[int, list[_Follower]]:
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
        .where(_following(event_ids, by_organisation))
    )
    if chat_ids is not None:
        statement = statement.where(Subscription.chat_id.in_(chat_ids))
    known = set(event_ids)
    offered = {*LEAD_TIME_CHOICES, *default_lead_times}
    by_event: dict[int, dict[int, _Follower]] = defaultdict(dict)
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
        follower = _Follower(chat_id, zone, leads, _SPECIFICITY[scope], since)
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


async def _insert_new(
    session: AsyncSession, rows: Sequence[dict[str, Any]], model: type[Any] = Delivery
) -> int:
    """Insert rows, leaving alone any that exist already (another planner was first).

    Both bundled dialects have INSERT … ON CONFLICT DO NOTHING; each gets its own.
    """
    if not rows:
        return 0
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(model).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(model).on_conflict_do_nothing()
    else:
        statement = insert(model)
    inserted = 0
    for start in range(0, len(rows), 1000):
        result = await session.execute(statement, rows[start : start + 1000])
        inserted += max(getattr(result, "rowcount", 0) or 0, 0)
    return inserted


async def _insert_for_chats(
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
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(Delivery).from_select(["chat_id", *columns], rows)
    else:
        statement = sqlite.insert(Delivery).from_select(["chat_id", *columns], rows)
    result = await session.execute(statement.on_conflict_do_nothing())
    return max(getattr(result, "rowcount", 0) or 0, 0)


async def _sent_earlier(
    session: AsyncSession, followed: dict[tuple[int, int], _Followed]
) -> dict[tuple[int, int | None, int], list[dt.datetime]]:
    """Occurrences each (chat, event, lead) reminder was already sent for."""
    earlier: dict[tuple[int, int | None, int], list[dt.datetime]] = defaultdict(list)
    reminded = [
        key
        for key, each in followed.items()
        if any(p.kind is DeliveryKind.REMINDER for p in each.reminders)
    ]
    if not reminded:
        return earlier
    chat_ids = {chat_id for chat_id, _ in reminded}
    statement = select(
        Delivery.chat_id, Delivery.event_id, Delivery.slot, Delivery.occurrence_at
    ).where(
        Delivery.kind == DeliveryKind.REMINDER,
        Delivery.status == DeliveryStatus.SENT,
        Delivery.event_id.in_({event_id for _, event_id in reminded}),
    )
    if len(chat_ids) <= _MAX_LISTED:
        statement = statement.where(Delivery.chat_id.in_(chat_ids))
    for chat_id, event_id, slot, occurrence_at in await session.execute(statement):
        if chat_id in chat_ids:
            earlier[(chat_id, event_id, slot)].append(occurrence_at)
    return earlier


def _repeats(
    p: PlannedDelivery, chat_id: int, earlier: dict[tuple[int, int | None, int], list[dt.datetime]]
) -> bool:
    """Whether a reminder was sent for an occurrence less than its lead away.

    When a meeting moves by half an hour, its "1 day before" reminder, already sent,
    is not sent again (the change notice tells the news); when it moves by a week, it is.
    """
    if p.kind is not DeliveryKind.REMINDER:
        return False
    lead = dt.timedelta(minutes=p.slot)
    return any(
        o != p.occurrence_at and abs(o - p.occurrence_at) < lead
        for o in earlier.get((chat_id, p.event_id, p.slot), ())
    )


# Above this many ids, a query reads a little more and filters in Python, rather than
# send a list of ids as parameters (SQLite allows 32,766 of them).
_MAX_LISTED = 500


@dataclass(frozen=True)
class _Followed:
    """A chat following an event, and the reminders it should get for its occurrence."""

    follower: _Follower
    reminders: list[PlannedDelivery]  # for chat 0: shared by followers alike

    def wants(self, kind: DeliveryKind, occurrence_at: dt.datetime, slot: int) -> bool:
        return any(
            p.kind is kind
            and p.slot == slot
            and p.occurrence_at == occurrence_at
            and p.due_at > self.follower.since
            for p in self.reminders
        )


def _could_be_due(
    event: Event, leads: Iterable[int], since: dt.datetime, until: dt.datetime
) -> bool:
    """Whether any chat could have a reminder of ``event`` due in (``since``, ``until``].

    A reminder is due a lead time before the start; for a day or a month, at 09:00 in
    the chat's zone, which zones put within two days of the start less the lead. A cheap
    test, so a sweep does not compute every follower's reminders for events with
    nothing due.
    """
    if event.recurrence is not None:
        return True  # its next occurrence is computed later
    margin = dt.timedelta(0)
    if event.date_precision is not Precision.TIME:
        margin, leads = dt.timedelta(days=2), (0, *leads)
    return any(
        since - margin < event.starts_at - dt.timedelta(minutes=lead) <= until + margin
        for lead in leads
    )


class Planner:
    """Decides which reminders should exist and keeps the ledger in step with it."""

    def __init__(
        self,
        default_lead_times: tuple[int, ...] = DEFAULT_LEAD_TIMES,
        horizon: dt.timedelta = dt.timedelta(hours=6),
        operator_ids: Collection[int] = (),
    ) -> None:
        self.default_lead_times = default_lead_times
        self.horizon = horizon
        # Whose private chats get the weekly review notice.
        self.operator_ids = frozenset(operator_ids)

    async def _followed(
        self,
        session: AsyncSession,
        now: dt.datetime,
        *,
        latest_due: dt.datetime | None,
        chat_ids: Sequence[int] | None = None,
        event_ids: Sequence[int] | None = None,
        since: dt.datetime | None = None,
        window: tuple[dt.datetime, dt.datetime] | None = None,
    ) -> dict[tuple[int, int], _Followed]:
        """Each (chat, event) followed, with the reminders the chat should get.

        With ``window``, only reminders due in it, and only events that may have some.
        """
        # Catching up after downtime (``since`` in the past) includes events that ended
        # meanwhile: their reminders are recorded, then skipped as stale.
        since = min(since or now, now)
        statement = (
            select(Event)
            .options(selectinload(Event.organisation), selectinload(Event.place))
            .where(
                Event.status != EventStatus.CANCELLED,
                Event.date_precision != Precision.YEAR,
                or_(Event.ends_at > since, Event.recurrence.is_not(None)),
            )
        )
        if latest_due is not None:
            # A reminder is due at most MAX_LEAD (plus a day for 09:00 notices) before.
            latest_start = latest_due + dt.timedelta(minutes=MAX_LEAD) + dt.timedelta(days=2)
            statement = statement.where(
                or_(Event.starts_at <= latest_start, Event.recurrence.is_not(None))
            )
        if event_ids is not None:
            statement = statement.where(Event.id.in_(event_ids))
        events = list((await session.scalars(statement)).all())
        if window is not None:
            leads = {*LEAD_TIME_CHOICES, *self.default_lead_times}
            events = [e for e in events if _could_be_due(e, leads, *window)]
        if not events:
            return {}
        followers = await _followers(session, events, chat_ids, self.default_lead_times)
        followed: dict[tuple[int, int], _Followed] = {}
        for event in events:
            occurrence = _event_view(event).next_occurrence(since)
            if occurrence is None:
                continue
            # Reminders depend on the chat only through its zone and lead times: chats
            # alike share one list (a popular event has many followers, few kinds of them).
            shared: dict[tuple[str, tuple[int, ...]], list[PlannedDelivery]] = {}
            for follower in followers.get(event.id, []):
                alike = (follower.zone, follower.lead_times)
                reminders = shared.get(alike)
                if reminders is None:
                    reminders = reminders_for(event.id, occurrence, 0, *alike)
                    if window is not None:
                        reminders = [p for p in reminders if window[0] < p.due_at <= window[1]]
                    shared[alike] = reminders
                if reminders:
                    followed[(follower.chat_id, event.id)] = _Followed(follower, reminders)
        return followed

    async def plan(
        self,
        session: AsyncSession,
        now: dt.datetime,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        chat_ids: Sequence[int] | None = None,
        event_ids: Sequence[int] | None = None,
    ) -> int:
        """Create the ledger rows due in (``since``, ``until``]. Never commits.

        ``since`` defaults to ``now``: a reminder whose time has passed is not created,
        so subscribing an hour before a summit does not bring its "7 days before".
        Returns how many rows were created.
        """
        since = since or now
        until = until or await self._watermark(session, now)
        followed = await self._followed(
            session,
            now,
            latest_due=until,
            chat_ids=chat_ids,
            event_ids=event_ids,
            since=since,
            window=(since, until),
        )
        earlier = await _sent_earlier(session, followed)
        # Rows differ mostly by chat: each distinct reminder goes in as one statement for
        # all its chats (a moved event's "1 day before" for 100,000 chats is one INSERT).
        chats: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for (chat_id, _), each in followed.items():
            for p in each.reminders:
                if p.due_at > each.follower.since and not (
                    earlier and _repeats(p, chat_id, earlier)
                ):
                    key = (p.event_id, p.kind, p.occurrence_at, p.slot, p.due_at, p.expires_at)
                    chats[key].append(chat_id)
        created = 0
        for (event_id, kind, occurrence_at, slot, due_at, expires_at), ids in sorted(
            chats.items(), key=lambda item: item[0][:4]
        ):
            values = {
                "event_id": event_id,
                "kind": kind,
                "occurrence_at": occurrence_at,
                "slot": slot,
                "due_at": due_at,
                "expires_at": expires_at,
                "status": DeliveryStatus.PENDING,
                "attempts": 0,
                "created_at": now,
            }
            created += await _insert_for_chats(session, sorted(ids), values)
        return created

    async def prune(
        self,
        session: AsyncSession,
        now: dt.datetime,
        *,
        chat_ids: Sequence[int] | None = None,
        event_ids: Sequence[int] | None = None,
    ) -> int:
        """Delete pending reminders nobody wants any more. Never commits.

        After an unsubscription, a change of lead times or zone, or an event moved or
        cancelled. Reminders already due but not yet sent stay if still wanted.
        """
        deleted = 0
        if event_ids is not None:
            deleted = await self._drop_other_occurrences(session, now, chat_ids, event_ids)
        statement = select(
            Delivery.id,
            Delivery.chat_id,
            Delivery.event_id,
            Delivery.kind,
            Delivery.occurrence_at,
            Delivery.slot,
        ).where(Delivery.status == DeliveryStatus.PENDING, Delivery.kind.in_(_REMINDER_KINDS))
        if chat_ids is not None:
            statement = statement.where(Delivery.chat_id.in_(chat_ids))
        if event_ids is not None:
            statement = statement.where(Delivery.event_id.in_(event_ids))
        pending = (await session.execute(statement)).all()
        if not pending:
            return deleted
        pending_chats = {d.chat_id for d in pending}
        followed = await self._followed(
            session,
            now,
            latest_due=None,
            chat_ids=sorted(pending_chats) if len(pending_chats) <= _MAX_LISTED else chat_ids,
            event_ids=sorted({d.event_id for d in pending if d.event_id is not None}),
        )
        unwanted = []
        for d in pending:
            each = followed.get((d.chat_id, d.event_id)) if d.event_id is not None else None
            if each is None or not each.wants(d.kind, d.occurrence_at, d.slot):
                unwanted.append(d.id)
        for start in range(0, len(unwanted), _MAX_LISTED):
            await session.execute(
                delete(Delivery).where(
                    Delivery.id.in_(unwanted[start : start + _MAX_LISTED]),
                    Delivery.status == DeliveryStatus.PENDING,
                )
            )
        return deleted + len(unwanted)

    async def _drop_other_occurrences(
        self,
        session: AsyncSession,
        now: dt.datetime,
        chat_ids: Sequence[int] | None,
        event_ids: Sequence[int],
    ) -> int:
        """Delete pending reminders of these events for any occurrence but the next one.

        No chat wants those (the event moved, or has no next occurrence: cancelled, over,
        known only to the year), so they go in one statement per event, without reading
        them: a moved event may have a reminder pending for each of 100,000 chats.
        """
        events: dict[int, Event] = {}
        for start in range(0, len(event_ids), _MAX_LISTED):
            found = await session.scalars(
                select(Event)
                .options(selectinload(Event.organisation), selectinload(Event.place))
                .where(Event.id.in_(event_ids[start : start + _MAX_LISTED]))
            )
            events.update((event.id, event) for event in found)
        deleted = 0
        for event_id in event_ids:
            event = events.get(event_id)
            occurrence = None
            if (
                event is not None
                and event.status is not EventStatus.CANCELLED
                and event.date_precision is not Precision.YEAR
                and (event.ends_at > now or event.recurrence is not None)
            ):
                occurrence = _event_view(event).next_occurrence(now)
            statement = delete(Delivery).where(
                Delivery.status == DeliveryStatus.PENDING,
                Delivery.kind.in_(_REMINDER_KINDS),
                Delivery.event_id == event_id,
            )
            if occurrence is not None:
                statement = statement.where(Delivery.occurrence_at != occurrence.starts_at)
            if chat_ids is not None:
                statement = statement.where(Delivery.chat_id.in_(chat_ids))
            result = await session.execute(statement)
            deleted += max(getattr(result, "rowcount", 0) or 0, 0)
        return deleted

    async def replan(
        self,
        session: AsyncSession,
        now: dt.datetime,
        *,
        chat_ids: Sequence[int] | None = None,
        event_ids: Sequence[int] | None = None,
        moved: Mapping[int, dt.datetime] | None = None,
    ) -> None:
        """After a subscription, a chat's settings or an event changed: drop what is
        unwanted, add what is due (a chat's digests too, at its zone and frequency).

        ``moved`` names events that only moved in time, with their earlier start: where
        nothing but the times of their pending reminders changes, those move in place.
        """
        if moved and event_ids is not None and chat_ids is None:
            done = await self._move_pending(
                session, now, {e: moved[e] for e in event_ids if e in moved}
            )
            event_ids = [e for e in event_ids if e not in done]
            if not event_ids:
                return
        await self.prune(session, now, chat_ids=chat_ids, event_ids=event_ids)
        await self.plan(session, now, chat_ids=chat_ids, event_ids=event_ids)
        if chat_ids is not None and event_ids is None:
            await session.execute(
                delete(Delivery).where(
                    Delivery.chat_id.in_(chat_ids),
                    Delivery.kind == DeliveryKind.DIGEST,
                    Delivery.status == DeliveryStatus.PENDING,
                    Delivery.due_at > now,
                )
            )
            until = await self._watermark(session, now)
            await plan_digests(session, now, until, now, chat_ids=chat_ids)

    async def _move_pending(
        self, session: AsyncSession, now: dt.datetime, moved: Mapping[int, dt.datetime]
    ) -> set[int]:
        """Move the pending reminders of events that only moved in time, in place.

        The general re-plan reads every follower and rewrites their rows; an event followed
        by 100,000 chats that moves by an hour needs neither: the same chats keep the same
        reminders, a lead time earlier than the new start. This applies only where that
        is certain to give the ledger the general re-plan would: a one-off event known to
        the minute, still ahead, whose every lead time is due in the planned window after
        the move only if it was before it (else the planner must find who gets the one
        that now falls due), with no reminder recorded for another occurrence (the rule
        against repeating a reminder sent shortly before would apply). Returns the events
        handled; the others go through the general re-plan.
        """
        if not moved:
            return set()
        until = await self._watermark(session, now, lock=True)

        def planned(due: dt.datetime) -> bool:
            return now < due <= until

        events = await session.scalars(select(Event).where(Event.id.in_(list(moved))))
        done: set[int] = set()
        for event in events:
            before, after = moved[event.id], event.starts_at
            if (
                event.date_precision is not Precision.TIME
                or event.recurrence is not None
                or event.status is EventStatus.CANCELLED
                or after <= now
                or event.ends_at <= now
            ):
                continue
            rows = await session.execute(
                select(Delivery.occurrence_at, Delivery.status, Delivery.slot)
                .where(Delivery.event_id == event.id, Delivery.kind == DeliveryKind.REMINDER)
                .group_by(Delivery.occurrence_at, Delivery.status, Delivery.slot)
            )
            recorded = rows.all()
            if any(occurrence != before for occurrence, _, _ in recorded):
                continue  # reminders of another occurrence: the general rules decide
            slots = {slot for _, status, slot in recorded if status is DeliveryStatus.PENDING}
            leads = {*LEAD_TIME_CHOICES, *self.default_lead_times, *slots}
            delta = dt.timedelta
            if any(
                planned(after - delta(minutes=lead)) and not planned(before - delta(minutes=lead))
                for lead in leads
            ):
                continue  # a reminder falls due in the window: whose it is needs the followers
            if after != before:
                for slot in sorted(slots):
                    pending = (
                        Delivery.event_id == event.id,
                        Delivery.kind == DeliveryKind.REMINDER,
                        Delivery.status == DeliveryStatus.PENDING,
                        Delivery.occurrence_at == before,
                        Delivery.slot == slot,
                    )
                    due = after - delta(minutes=slot)
                    if planned(due):
                        await session.execute(
                            update(Delivery)
                            .where(*pending)
                            .values(occurrence_at=after, due_at=due, expires_at=after)
                            .execution_options(synchronize_session=False)
                        )
                    else:  # now past, or beyond the window: planned again when it comes
                        await session.execute(
                            delete(Delivery)
                            .where(*pending)
                            .execution_options(synchronize_session=False)
                        )
            done.add(event.id)
        return done

    async def _watermark(
        self, session: AsyncSession, now: dt.datetime, *, lock: bool = False
    ) -> dt.datetime:
        """Up to when the ledger is planned; set to ``now + horizon`` the first time.

        With ``lock`` the row stays locked to the end of the transaction (PostgreSQL), so
        planners of several replicas take turns instead of racing.
        """
        until = now + self.horizon
        await _insert_new(session, [{"key": PLANNED_UNTIL_KEY, "value": until.isoformat()}], Meta)
        statement = select(Meta.value).where(Meta.key == PLANNED_UNTIL_KEY)
        if lock:
            statement = statement.with_for_update()
        stored = await session.scalar(statement)
        return dt.datetime.fromisoformat(stored) if stored else until

    async def advance(self, session: AsyncSession, now: dt.datetime) -> int:
        """Plan everything due up to ``now + horizon`` not planned yet. Never commits.

        Rows due while the bot was down are created too (from where the last run
        stopped): the dispatcher then decides whether they are still worth sending.
        """
        watermark = await self._watermark(session, now, lock=True)
        until = now + self.horizon
        if watermark >= until:
            return 0
        # From the watermark on: after downtime it lies in the past (catch-up).
        created = await self.plan(session, now, since=watermark, until=until)
        created += await plan_digests(session, watermark, until, now)
        created += await plan_review_notices(session, watermark, until, now, self.operator_ids)
        await session.execute(
            update(Meta).where(Meta.key == PLANNED_UNTIL_KEY).values(value=until.isoformat())
        )
        return created


# --- digests ---------------------------------------------------------------------

# What a digest covers from its instant on, by frequency.
DIGEST_DAYS = {DigestFrequency.DAILY: 7, DigestFrequency.WEEKLY: 28}
MONDAY = 0


def digest_instants(
    frequency: DigestFrequency, zone: str, since: dt.datetime, until: dt.datetime
) -> list[dt.datetime]:
    """Digest times in (``since``, ``until``]: 09:00 in the chat's zone, daily or on Mondays."""
    tz = ZoneInfo(zone)
    day = since.astimezone(tz).date() - dt.timedelta(days=1)
    last = until.astimezone(tz).date() + dt.timedelta(days=1)
    instants = []
    while day <= last:
        if frequency is DigestFrequency.DAILY or day.weekday() == MONDAY:
            instant = _at_local(day, DAY_NOTICE_HOUR, zone)
            if since < instant <= until:
                instants.append(instant)
        day += dt.timedelta(days=1)
    return instants


async def plan_digests(
    session: AsyncSession,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime,
    *,
    chat_ids: Sequence[int] | None = None,
) -> int:
    """Ledger rows for the digests due in (``since``, ``until``]. Never commits.

    Whether a digest has anything to say is decided when it is due: an empty one is
    recorded as skipped, not sent.
    """
    statement = select(Chat.id, Chat.timezone, Chat.digest).where(
        Chat.digest != DigestFrequency.OFF, Chat.is_active.is_(True), Chat.paused.is_(False)
    )
    if chat_ids is not None:
        statement = statement.where(Chat.id.in_(chat_ids))
    chats = await session.execute(statement)
    rows = []
    for chat_id, zone, stored in chats.all():
        frequency = DigestFrequency(stored)
        for instant in digest_instants(frequency, zone, since, until):
            rows.append(
                {
                    "chat_id": chat_id,
                    "event_id": None,
                    "kind": DeliveryKind.DIGEST,
                    "occurrence_at": instant,
                    "slot": DIGEST_DAYS[frequency],
                    "due_at": instant,
                    "expires_at": instant + dt.timedelta(hours=12),
                    "status": DeliveryStatus.PENDING,
                    "attempts": 0,
                    "created_at": now,
                }
            )
    return await _insert_new(session, rows)


# --- review notices ----------------------------------------------------------------

# A review notice says what the queue holds when it is sent, so it is never stale news
# within its week; a week later the next one is due.
REVIEW_NOTICE_FOR = dt.timedelta(days=7)


def week_of(instant: dt.datetime, zone: str) -> dt.datetime:
    """The start of the week ``instant`` falls in, at the chat's zone: its Monday, as
    midnight UTC of that date (so a change of zone within the week keeps the same key)."""
    day = instant.astimezone(ZoneInfo(zone)).date()
    monday = day - dt.timedelta(days=day.weekday())
    return dt.datetime.combine(monday, dt.time(0), tzinfo=UTC)


async def plan_review_notices(
    session: AsyncSession,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime,
    operator_ids: Collection[int],
) -> int:
    """Ledger rows for the weekly review notices due in (``since``, ``until``]: Mondays at
    09:00 in each operator's private chat (operators who never wrote have none). Never
    commits.

    Like a digest, whether there is anything to say is decided when it is due: with the
    review queue empty it is recorded as skipped, not sent.
    """
    if not operator_ids:
        return 0
    chats = await session.execute(
        select(Chat.id, Chat.timezone).where(
            Chat.id.in_(sorted(operator_ids)),
            Chat.type == ChatType.PRIVATE,
            Chat.is_active.is_(True),
            Chat.paused.is_(False),
        )
    )
    rows = []
    for chat_id, zone in chats.all():
        for instant in digest_instants(DigestFrequency.WEEKLY, zone, since, until):
            week = week_of(instant, zone)
            rows.append(
                {
                    "chat_id": chat_id,
                    "event_id": None,
                    "kind": DeliveryKind.REVIEW_NOTICE,
                    "occurrence_at": week,
                    "slot": 0,
                    "due_at": instant,
                    "expires_at": week + REVIEW_NOTICE_FOR,
                    "status": DeliveryStatus.PENDING,
                    "attempts": 0,
                    "created_at": now,
                }
            )
    return await _insert_new(session, rows)


# --- notices and announcements -----------------------------------------------------


def _notice_row(
    chat_id: int, event: Event, kind: DeliveryKind, slot: int, now: dt.datetime
) -> dict[str, Any]:
    return {
        "chat_id": chat_id,
        "event_id": event.id,
        "kind": kind,
        "occurrence_at": event.starts_at,
        "slot": slot,
        "due_at": now,
        "expires_at": max(event.ends_at, now) + dt.timedelta(days=7),
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "created_at": now,
    }


async def _notify_followers(
    session: AsyncSession,
    event: Event,
    kind: DeliveryKind,
    slot: int,
    now: dt.datetime,
    change_id: int | None = None,
) -> int:
    """One ``kind`` notice of ``event`` to every active chat following it. Never commits.

    A single INSERT … SELECT: a popular event's followers never pass through Python.
    """
    org_ids = [event.organisation_id] if event.organisation_id is not None else []
    row = _notice_row(0, event, kind, slot, now) | {"change_id": change_id}
    columns = [name for name in row if name != "chat_id"]
    table = Delivery.__table__
    followers = (
        select(
            Subscription.chat_id,
            *(literal(row[name], table.c[name].type).label(name) for name in columns),
        )
        .join(Chat, Chat.id == Subscription.chat_id)
        .where(_following([event.id], org_ids))
        .distinct()
    )
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    statement: Any
    if dialect == "postgresql":
        statement = postgresql.insert(Delivery).from_select(["chat_id", *columns], followers)
    else:
        statement = sqlite.insert(Delivery).from_select(["chat_id", *columns], followers)
    result = await session.execute(statement.on_conflict_do_nothing())
    return max(getattr(result, "rowcount", 0) or 0, 0)


async def plan_new_event_notices(session: AsyncSession, event: Event, now: dt.datetime) -> int:
    """Tell chats following the event's organisation (or everything) about a new event."""
    if event.recurrence is None and event.ends_at <= now:
        return 0
    return await _notify_followers(session, event, DeliveryKind.NEW_EVENT, 0, now)


async def announce(
    session: AsyncSession, event: Event, channel_ids: Sequence[int], now: dt.datetime
) -> dict[int, Delivery]:
    """One announcement of ``event`` per channel, however often it is asked. Never commits.

    Returns each channel's announcement row (new, or the one from an earlier /announce).
    """
    rows = [_notice_row(c, event, DeliveryKind.ANNOUNCEMENT, 0, now) for c in channel_ids]
    await _insert_new(session, rows)
    # One that failed or was skipped (no rights then) is tried again; sent ones stay sent.
    await session.execute(
        update(Delivery)
        .where(
            Delivery.kind == DeliveryKind.ANNOUNCEMENT,
            Delivery.event_id == event.id,
            Delivery.occurrence_at == event.starts_at,
            Delivery.chat_id.in_(channel_ids),
            Delivery.status.in_([DeliveryStatus.FAILED, DeliveryStatus.SKIPPED]),
        )
        .values(
            status=DeliveryStatus.PENDING,
            attempts=0,
            not_before=None,
            due_at=now,
            expires_at=max(event.ends_at, now) + dt.timedelta(days=7),
            error=None,
        )
    )
    found = await session.scalars(
        select(Delivery).where(
            Delivery.kind == DeliveryKind.ANNOUNCEMENT,
            Delivery.event_id == event.id,
            Delivery.occurrence_at == event.starts_at,
            Delivery.chat_id.in_(channel_ids),
        )
    )
    return {row.chat_id: row for row in found}


# --- change notices ------------------------------------------------------------


async def plan_change_notices(
    session: AsyncSession, change: EventChange, event: Event, now: dt.datetime
) -> int:
    """One notice of ``change`` to every chat following the event. Never commits.

    An event that is over gets none: correcting history is not news.
    """
    if event.recurrence is None and event.ends_at <= now:
        return 0
    return await _notify_followers(
        session, event, DeliveryKind.CHANGE_NOTICE, change.revision, now, change.id
    )


# --- dispatching ---------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedDelivery:
    """A due delivery claimed by one dispatcher, with what it needs to render."""

    id: int
    chat_id: int
    event_key: str | None  # None for digests
    kind: DeliveryKind
    slot: int
    occurrence_at: dt.datetime
    attempts: int
    change_id: int | None
    due_at: dt.datetime | None = None  # for the dispatcher-lag metric


@dataclass(frozen=True)
class ClaimedBatch:
    deliveries: list[ClaimedDelivery]
    skipped: int
    # Due rows claimed, the stale ones included; 0: none is due, or (PostgreSQL) every one
    # due is being claimed by another replica.
    candidates: int


def _unindexed(column: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    """``column`` as an expression no index matches (``status || ''``). Beside "id IN (…)",
    SQLite, which has no statistics, would search ix_deliveries_status_due instead of the
    primary key and read every pending row, once per batch: a fan-out grew with the
    square of its audience (20,000 chats: 10 ms a batch). PostgreSQL plans by statistics
    and uses the primary key either way."""
    return column.concat("")


# For each reminder claimed, the smallest lead time (slot) of its chat and occurrence
# already due: a later reminder supersedes the earlier ones. In the claim's RETURNING, as
# a lookup per row through uq_deliveries_key (its columns as the index has them, so the
# chat id leads the search); a second statement with the batch's chat ids bound to an IN
# list cost a third of a claim on SQLite, most of it in Python. The claimed row's columns
# are named with their table: SQLAlchemy writes RETURNING columns without it (SQLite
# allows no other table there), and inside the subquery a bare name is the alias's own.
_LATER = Delivery.__table__.alias("later")


def _claimed(column: str) -> ColumnElement[Any]:
    return literal_column(f"{Delivery.__tablename__}.{column}")


_SMALLEST_DUE_SLOT = (
    select(func.min(_LATER.c.slot))
    .where(
        _LATER.c.chat_id == _claimed("chat_id"),
        # (0 written out: beside a bound parameter SQLite would not see the index expression)
        func.coalesce(_LATER.c.event_id, literal_column("0"))
        == func.coalesce(_claimed("event_id"), literal_column("0")),
        _LATER.c.kind == DeliveryKind.REMINDER,
        _LATER.c.occurrence_at == _claimed("occurrence_at"),
        _LATER.c.due_at <= bindparam("now", type_=Delivery.due_at.type),
    )
    .scalar_subquery()
)
_EVENT_KEY = select(Event.key).where(Event.id == _claimed("event_id")).scalar_subquery()


async def claim_due(
    session: AsyncSession, now: dt.datetime, worker: str, limit: int
) -> ClaimedBatch:
    """Claim up to ``limit`` due deliveries for ``worker``; skip stale ones. Never commits.

    A reminder is stale once its event occurrence has
    started (or its month is over), or when a later lead time of the same event
    is due as well: after downtime the chat gets the latest reminder, not all.
    """
    due = (
        select(Delivery.id)
        .where(
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.due_at <= now,
            or_(Delivery.not_before.is_(None), Delivery.not_before <= now),
        )
        .order_by(Delivery.due_at, Delivery.id)
        .limit(limit)
    )
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    if dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    # One statement: the due rows are found and claimed together, so no list of ids goes
    # back and forth. MATERIALIZED: the rows are chosen once, whatever the plan (as a
    # subquery PostgreSQL may rescan, and each rescan may lock other rows past the limit).
    # The status condition makes the claim safe where row locks do not exist.
    chosen = due.cte("due").prefix_with("MATERIALIZED")
    claimed_rows = (
        await session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(select(chosen.c.id)),
                _unindexed(Delivery.status) == DeliveryStatus.PENDING,
            )
            .values(status=DeliveryStatus.CLAIMED, claimed_by=worker, claimed_at=now)
            .returning(
                Delivery.id,
                Delivery.chat_id,
                _EVENT_KEY,
                Delivery.kind,
                Delivery.slot,
                Delivery.occurrence_at,
                Delivery.due_at,
                Delivery.attempts,
                Delivery.change_id,
                (Delivery.expires_at <= now).label("expired"),
                case(
                    (Delivery.kind == DeliveryKind.REMINDER, _SMALLEST_DUE_SLOT), else_=None
                ).label("smallest_due_slot"),
            )
            # Nothing claimed is in the session: the ORM has nothing to bring up to date.
            .execution_options(synchronize_session=False),
            {"now": now},
        )
    ).all()
    if not claimed_rows:
        return ClaimedBatch([], 0, 0)
    stale: dict[int, str] = {}
    claimed = []
    for row in claimed_rows:
        delivery_id, chat_id, event_key, kind, slot, occurrence_at, due_at, attempts = row[:8]
        change_id, expired, smallest_due_slot = row[8:]
        if expired:
            stale[delivery_id] = "stale: the event had started or the period was over"
        elif smallest_due_slot is not None and slot > smallest_due_slot:
            stale[delivery_id] = "stale: a later reminder of the same event was due as well"
        else:
            claimed.append(
                ClaimedDelivery(
                    delivery_id,
                    chat_id,
                    event_key,
                    kind,
                    slot,
                    occurrence_at,
                    attempts,
                    change_id,
                    due_at,
                )
            )
    for reason in set(stale.values()):
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_([i for i, r in stale.items() if r == reason]))
            .values(status=DeliveryStatus.SKIPPED, error=reason, finished_at=now)
        )
    return ClaimedBatch(claimed, len(stale), len(claimed_rows))


async def requeue_abandoned(session: AsyncSession, older_than: dt.datetime) -> int:
    """Put back claims a dead dispatcher left (claimed before ``older_than``). Never commits.

    This is the one window where a message can go out twice: the process died after
    Telegram accepted it and before its row was marked sent.
    """
    result = await session.execute(
        update(Delivery)
        .where(Delivery.status == DeliveryStatus.CLAIMED, Delivery.claimed_at < older_than)
        .values(status=DeliveryStatus.PENDING, claimed_by=None, claimed_at=None)
    )
    return max(getattr(result, "rowcount", 0) or 0, 0)


async def mark_skipped(
    session: AsyncSession, delivery_id: int, reason: str, now: dt.datetime
) -> None:
    await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(status=DeliveryStatus.SKIPPED, error=reason[:500], finished_at=now)
    )


async def mark_failed(
    session: AsyncSession, delivery_id: int, reason: str, now: dt.datetime
) -> None:
    await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id)
        .values(status=DeliveryStatus.FAILED, error=reason[:500], finished_at=now)
    )


async def retry_later(
    session: AsyncSession,
    delivery_id: int,
    not_before: dt.datetime,
    reason: str,
    *,
    count_attempt: bool = True,
) -> None:
    """Back to pending, to be tried again from ``not_before``."""
    values: dict[str, Any] = {
        "status": DeliveryStatus.PENDING,
        "not_before": not_before,
        "claimed_by": None,
        "claimed_at": None,
        "error": reason[:500],
    }
    if count_attempt:
        values["attempts"] = Delivery.attempts + 1
    await session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


async def move_delivery(session: AsyncSession, delivery_id: int, chat_id: int) -> None:
    await session.execute(
        update(Delivery).where(Delivery.id == delivery_id).values(chat_id=chat_id)
    )


async def next_due_at(session: AsyncSession) -> dt.datetime | None:
    """When the next pending delivery comes due (for the dispatcher's wake-up)."""
    earliest = func.min(func.coalesce(Delivery.not_before, Delivery.due_at), type_=UTCDateTime())
    return await session.scalar(select(earliest).where(Delivery.status == DeliveryStatus.PENDING))


async def release_claims(session: AsyncSession, worker: str, keep: Collection[int] = ()) -> int:
    """Put back the claims ``worker`` holds, except ``keep``. Never commits.

    For a dispatcher that has nothing in flight (between sweeps, or stopping): claims
    it could not send, e.g. because the database went away mid-batch, become pending
    again at once instead of waiting for the lease to expire. ``keep``: deliveries
    Telegram may have although their outcome is not recorded; those wait for the lease.
    """
    statement = update(Delivery).where(
        Delivery.status == DeliveryStatus.CLAIMED, Delivery.claimed_by == worker
    )
    if keep:
        statement = statement.where(Delivery.id.not_in(list(keep)))
    result = await session.execute(
        statement.values(status=DeliveryStatus.PENDING, claimed_by=None, claimed_at=None)
    )
    return max(getattr(result, "rowcount", 0) or 0, 0)


async def count_due(session: AsyncSession, now: dt.datetime) -> int:
    """Deliveries due now and not yet sent or claimed (the queue depth)."""
    due = func.coalesce(Delivery.not_before, Delivery.due_at, type_=UTCDateTime())
    count = await session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.status == DeliveryStatus.PENDING, due <= now)
    )
    return int(count or 0)
