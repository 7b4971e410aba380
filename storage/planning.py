"""Planning reminders: which ledger rows are due, for whom, and when.

The database is the source of truth. The *planner* writes one ledger row per
(chat, event occurrence, kind, lead time) shortly before it is due (a few hours
ahead, so the table stays small however far events lie in the future); a
dispatcher (bot/delivery/) claims and sends them (storage/claims.py). Nothing here
talks to Telegram.

When a row is due:
- exact-time events: ``lead`` minutes before the start;
- day-precision events: at 09:00 in the chat's time zone, ``lead // 1440`` days
  before the day (leads under a day are dropped: there is no hour to count from);
- month-precision events: one "this month" notice at 09:00 on the month's first day;
- year-precision events: nothing.

Most of the module is one class, the :class:`Planner`, whose passes share its state.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    ScalarSelect,
    Select,
    bindparam,
    delete,
    exists,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from storage.dates import Precision
from storage.followers import (
    DAY_NOTICE_HOUR,
    DEFAULT_LEAD_TIMES,
    GRACE,
    LEAD_TIME_CHOICES,
    MAX_LEAD,
    Follower,
    PlannedDelivery,
    at_local,
    event_view,
    followers_of,
    insert_for_chats,
    insert_new,
)
from storage.models import (
    Chat,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    DigestFrequency,
    Event,
    EventStatus,
    Meta,
    Subscription,
    SubscriptionScope,
)
from storage.notices import digest_rows, plan_digests, plan_review_notices
from storage.views import EventView

PLANNED_UNTIL_KEY = "deliveries_planned_until"
_REMINDER_KINDS = (DeliveryKind.REMINDER, DeliveryKind.MONTH_NOTICE)


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
            due = at_local(start.first_day - dt.timedelta(days=days), DAY_NOTICE_HOUR, chat_zone)
            # Stale once the day has begun at the venue, but never before it is due: far
            # west of the venue, 09:00 the day before can be after the venue's midnight.
            add(DeliveryKind.REMINDER, lead, due, max(occurrence.starts_at, due + GRACE))
    elif start.precision is Precision.MONTH:
        due = at_local(start.first_day, DAY_NOTICE_HOUR, chat_zone)
        add(DeliveryKind.MONTH_NOTICE, 0, due, occurrence.ends_at)
    return planned


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

    follower: Follower
    reminders: list[PlannedDelivery]  # for chat 0: shared by followers alike

    def wants(self, kind: DeliveryKind, occurrence_at: dt.datetime, slot: int) -> bool:
        return any(
            p.kind is kind
            and p.slot == slot
            and p.occurrence_at == occurrence_at
            and p.due_at > self.follower.since
            for p in self.reminders
        )


# A day's or a month's reminder is due at 09:00 in the chat's zone, which zones put within
# this much of the start less the lead.
_ZONE_MARGIN = dt.timedelta(days=2)


def _could_be_due(
    recurrence: str | None,
    precision: Precision,
    starts_at: dt.datetime,
    leads: Iterable[int],
    since: dt.datetime,
    until: dt.datetime,
) -> bool:
    """Whether any chat could have a reminder of an event due in (``since``, ``until``].

    A reminder is due a lead time before the start (:func:`reminders_for`): a day's
    only for leads of a day or more, a month's once, as it begins. A cheap test on three
    columns, so a sweep or a re-plan neither loads nor computes every follower's
    reminders for events with nothing due.
    """
    if recurrence is not None:
        return True  # its next occurrence is computed later
    margin = dt.timedelta(0)
    if precision is Precision.MONTH:
        margin, leads = _ZONE_MARGIN, (0,)
    elif precision is Precision.DAY:
        margin, leads = _ZONE_MARGIN, [lead for lead in leads if lead >= 1440]
    return any(
        since - margin < starts_at - dt.timedelta(minutes=lead) <= until + margin for lead in leads
    )


def _plannable(bounded: bool, listed: bool) -> list[ColumnElement[bool]]:
    """The events whose reminders may be due, with their bounds as parameters
    (``since``; ``latest_start`` if ``bounded``; ``event_ids`` if ``listed``)."""
    conditions = [
        Event.status != EventStatus.CANCELLED,
        Event.date_precision != Precision.YEAR,
        or_(Event.ends_at > bindparam("since"), Event.recurrence.is_not(None)),
    ]
    if bounded:
        conditions.append(
            or_(Event.starts_at <= bindparam("latest_start"), Event.recurrence.is_not(None))
        )
    if listed:
        conditions.append(Event.id.in_(bindparam("event_ids", expanding=True)))
    return conditions


def _followed_by_chat() -> ColumnElement[bool]:
    """Events the chat ``chat_id`` (a parameter) follows: by name, by organisation, or
    everything. As subqueries, so a chat's re-plan needs no statement to list them."""
    mine = Subscription.chat_id == bindparam("chat_id")
    return or_(
        exists().where(mine, Subscription.scope == SubscriptionScope.ALL),
        Event.id.in_(
            select(Subscription.event_id).where(mine, Subscription.scope == SubscriptionScope.EVENT)
        ),
        Event.organisation_id.in_(
            select(Subscription.organisation_id).where(
                mine, Subscription.scope == SubscriptionScope.ORGANISATION
            )
        ),
    )


@functools.cache
def _candidates_to_plan(
    listed: bool, of_chat: bool = False
) -> CompoundSelect[int, str | None, Precision, dt.datetime]:
    """The events that may have a reminder due in a window, only what
    :func:`_could_be_due` reads: the month ahead of a window holds hundreds of events
    and a window's reminders few, so whole events are loaded for those few.

    Parameters as for :func:`_plannable` (bounded), and ``earliest_start``: no lead
    puts a reminder before its start less the zones' margin; with ``of_chat``, only
    events the chat ``chat_id`` follows. One-off events by a range of ``starts_at``,
    recurring ones by their partial index: two index ranges (as an OR, SQLite scanned
    the table).
    """
    columns = (Event.id, Event.recurrence, Event.date_precision, Event.starts_at)
    alive = [Event.status != EventStatus.CANCELLED, Event.date_precision != Precision.YEAR]
    if listed:
        alive.append(Event.id.in_(bindparam("event_ids", expanding=True)))
    if of_chat:
        alive.append(_followed_by_chat())
    one_off = select(*columns).where(
        *alive,
        Event.recurrence.is_(None),
        Event.starts_at > bindparam("earliest_start"),
        Event.starts_at <= bindparam("latest_start"),
        Event.ends_at > bindparam("since"),
    )
    return one_off.union_all(select(*columns).where(*alive, Event.recurrence.is_not(None)))


@functools.cache
def _events_to_plan(bounded: bool, listed: bool) -> Select[Event]:
    """:func:`_plannable` events, whole: built once for each shape, since a follow plans
    one event and building the query cost as much as running it."""
    # (Both relationships are many-to-one: joined, not a statement more each.)
    return (
        select(Event)
        .options(joinedload(Event.organisation), joinedload(Event.place))
        .where(*_plannable(bounded, listed))
    )


async def _pending(
    session: AsyncSession,
    chat_ids: Sequence[int] | None,
    event_ids: Sequence[int] | None,
    kinds: Sequence[DeliveryKind] = _REMINDER_KINDS,
) -> Sequence[Any]:
    """The pending reminders (or other ``kinds``) of these chats and events (None: all)."""
    statement = select(
        Delivery.id,
        Delivery.chat_id,
        Delivery.event_id,
        Delivery.kind,
        Delivery.occurrence_at,
        Delivery.slot,
        Delivery.due_at,
    ).where(Delivery.status == DeliveryStatus.PENDING, Delivery.kind.in_(kinds))
    if chat_ids is not None:
        statement = statement.where(Delivery.chat_id.in_(chat_ids))
    if event_ids is not None:
        statement = statement.where(Delivery.event_id.in_(event_ids))
    return (await session.execute(statement)).all()


async def _drop_unwanted(
    session: AsyncSession, pending: Sequence[Any], followed: dict[tuple[int, int], _Followed]
) -> int:
    """Delete the ``pending`` rows no follower wants (any more). Returns how many."""
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
    return len(unwanted)


@functools.cache
def _chat_to_replan() -> Select[Any]:
    """What a chat's digests depend on, and the watermark, in one row (the chat's
    columns NULL if it is not stored): parameter ``chat_id``."""
    anchor = select(literal(1).label("one")).subquery("anchor")
    return select(
        Planner.watermark_column().label("planned_until"),
        Chat.timezone,
        Chat.digest,
        Chat.is_active,
        Chat.paused,
    ).select_from(anchor.outerjoin(Chat, Chat.id == bindparam("chat_id")))


async def _replan_digests(
    session: AsyncSession,
    now: dt.datetime,
    chat_id: int,
    chat: Any,
    pending: Sequence[Any],
    until: dt.datetime,
) -> None:
    """A chat's digests due in (``now``, ``until``] as its settings (``chat``, a row of
    :func:`_chat_to_replan`) want them, given its ``pending`` digests: those still ahead
    and unwanted (another zone, another frequency, off, paused) go, missing ones are
    added, the rest stay as they are."""
    wanted: list[dict[str, Any]] = []
    if chat.digest is not None and chat.is_active and not chat.paused:
        frequency = DigestFrequency(chat.digest)
        wanted = digest_rows(chat_id, frequency, chat.timezone, now, until, now)
    keys = {(row["occurrence_at"], row["slot"]) for row in wanted}
    unwanted = [d.id for d in pending if d.due_at > now and (d.occurrence_at, d.slot) not in keys]
    if unwanted:
        await session.execute(
            delete(Delivery).where(
                Delivery.id.in_(unwanted), Delivery.status == DeliveryStatus.PENDING
            )
        )
    there = {(d.occurrence_at, d.slot) for d in pending}
    await insert_new(session, [r for r in wanted if (r["occurrence_at"], r["slot"]) not in there])


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
        keep: Collection[int] = (),
        following_chat: int | None = None,
    ) -> dict[tuple[int, int], _Followed]:
        """Each (chat, event) followed, with the reminders the chat should get.

        With ``window``, only reminders due in it, and only events that may have some
        (with ``following_chat``, that chat follows); but the events in ``keep`` (a few
        chats' pending rows are of them) come with every reminder, whatever their dates.
        """
        # Catching up after downtime (``since`` in the past) includes events that ended
        # meanwhile: their reminders are recorded, then skipped as stale.
        since = min(since or now, now)
        if window is not None:
            latest_due = latest_due or window[1]
        parameters: dict[str, Any] = {"since": since}
        if latest_due is not None:
            # A reminder is due at most MAX_LEAD (plus a day for 09:00 notices) before.
            latest = latest_due + dt.timedelta(minutes=MAX_LEAD) + dt.timedelta(days=2)
            parameters["latest_start"] = latest
        if event_ids is not None:
            parameters["event_ids"] = list(event_ids)
        bounded = latest_due is not None
        if window is not None:
            leads = {*LEAD_TIME_CHOICES, *self.default_lead_times}
            bounds = {**parameters, "earliest_start": window[0] - _ZONE_MARGIN}
            if following_chat is not None:
                bounds["chat_id"] = following_chat
            candidates = await session.execute(
                _candidates_to_plan(event_ids is not None, following_chat is not None), bounds
            )
            due_ids = {
                row.id
                for row in candidates
                if _could_be_due(row.recurrence, row.date_precision, row.starts_at, leads, *window)
            }
            due_ids.update(keep)
            if not due_ids:
                return {}
            # Kept events are read whatever their start (an event moved far off).
            bounded = bounded and not keep
            if len(due_ids) <= _MAX_LISTED:
                parameters["event_ids"] = sorted(due_ids)
                events = list(
                    (await session.scalars(_events_to_plan(bounded, True), parameters)).all()
                )
            else:  # a busy window: the same events again, whole, rather than many ids
                wanted = due_ids
                statement = _events_to_plan(bounded, event_ids is not None)
                events = [
                    e for e in (await session.scalars(statement, parameters)) if e.id in wanted
                ]
        else:
            statement = _events_to_plan(bounded, event_ids is not None)
            events = list((await session.scalars(statement, parameters)).all())
        if not events:
            return {}
        followers = await followers_of(session, events, chat_ids, self.default_lead_times)
        followed: dict[tuple[int, int], _Followed] = {}
        for event in events:
            occurrence = event_view(event).next_occurrence(since)
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
                    if window is not None and event.id not in keep:
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
        created_due: list[dt.datetime] | None = None,
    ) -> int:
        """Create the ledger rows due in (``since``, ``until``]. Never commits.

        ``since`` defaults to ``now``: a reminder whose time has passed is not created,
        so subscribing an hour before a summit does not bring its "7 days before".
        ``until`` defaults to :meth:`reach`. Returns how many rows were created; the
        instants they are due are added to ``created_due`` if given.
        """
        since = since or now
        until = until or await self.reach(session, now)
        followed = await self._followed(
            session,
            now,
            latest_due=until,
            chat_ids=chat_ids,
            event_ids=event_ids,
            since=since,
            window=(since, until),
        )
        return await self._create(session, now, followed, (since, until), created_due)

    async def _create(
        self,
        session: AsyncSession,
        now: dt.datetime,
        followed: dict[tuple[int, int], _Followed],
        window: tuple[dt.datetime, dt.datetime],
        created_due: list[dt.datetime] | None,
    ) -> int:
        """Create the rows of ``followed``'s reminders due in ``window``."""
        since, until = window
        earlier = await _sent_earlier(session, followed)
        # Rows differ mostly by chat: each distinct reminder goes in as one statement for
        # all its chats (a moved event's "1 day before" for 100,000 chats is one INSERT).
        chats: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for (chat_id, _), each in followed.items():
            for p in each.reminders:
                if (
                    since < p.due_at <= until
                    and p.due_at > each.follower.since
                    and not (earlier and _repeats(p, chat_id, earlier))
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
            inserted = await insert_for_chats(session, sorted(ids), values)
            if inserted and created_due is not None:
                created_due.append(due_at)
            created += inserted
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
        if event_ids is not None and chat_ids is None:
            # Many chats' rows at once, a statement per event; a few chats' pending rows
            # are read below and judged one by one, other occurrences included.
            deleted = await self._drop_other_occurrences(session, now, chat_ids, event_ids)
        pending = await _pending(session, chat_ids, event_ids)
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
        return deleted + await _drop_unwanted(session, pending, followed)

    async def _replan_few(
        self,
        session: AsyncSession,
        now: dt.datetime,
        chat_ids: Sequence[int],
        event_ids: Sequence[int] | None,
        until: dt.datetime,
        created_due: list[dt.datetime] | None,
        *,
        pending: Sequence[Any] | None = None,
        following_chat: int | None = None,
    ) -> None:
        """:meth:`prune` and :meth:`plan` for a few chats, from one read of what they
        follow: the events with a reminder in the window and those of their pending
        rows, the chats as their followers. ``pending``, if given, are the chats'
        pending reminders of any event, all judged (else those of ``event_ids`` are
        read); ``following_chat`` as for :meth:`_followed`."""
        if pending is None:
            pending = await _pending(session, chat_ids, event_ids)
        followed = await self._followed(
            session,
            now,
            latest_due=until,
            chat_ids=chat_ids,
            event_ids=event_ids,
            window=(now, until),
            keep={d.event_id for d in pending if d.event_id is not None},
            following_chat=following_chat,
        )
        await _drop_unwanted(session, pending, followed)
        await self._create(session, now, followed, (now, until), created_due)

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
                .options(joinedload(Event.organisation), joinedload(Event.place))
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
                occurrence = event_view(event).next_occurrence(now)
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
        created_due: list[dt.datetime] | None = None,
        until: dt.datetime | None = None,
    ) -> None:
        """After a subscription, its lead times or an event changed: drop what is
        unwanted, add what is due. (Digests depend on none of these, only on a chat's
        settings: :meth:`replan_chat` plans them again.)

        ``until`` (for a few chats): :meth:`reach`, if already known from a watermark
        read along with something else (:meth:`reach_from`).

        ``moved`` names events that only moved in time, with their earlier start: where
        nothing but the times of their pending reminders changes, those move in place.
        ``created_due`` as for :meth:`plan` (reminders only).
        """
        if moved and event_ids is not None and chat_ids is None:
            done = await self._move_pending(
                session, now, {e: moved[e] for e in event_ids if e in moved}
            )
            event_ids = [e for e in event_ids if e not in done]
            if not event_ids:
                return
        if chat_ids is not None and len(chat_ids) <= _MAX_LISTED:
            until = until or await self.reach(session, now)
            await self._replan_few(session, now, chat_ids, event_ids, until, created_due)
            return
        await self.prune(session, now, chat_ids=chat_ids, event_ids=event_ids)
        await self.plan(
            session, now, chat_ids=chat_ids, event_ids=event_ids, created_due=created_due
        )

    async def replan_chat(
        self,
        session: AsyncSession,
        now: dt.datetime,
        chat_id: int,
        *,
        created_due: list[dt.datetime] | None = None,
    ) -> None:
        """Everything one chat gets, planned again (its zone, default lead times, digest,
        pause or reachability changed). Never commits. Only the events it follows are
        read, not every event in the planned window, unless it follows everything.

        Interactive (/tz, the Mini App's settings), so in few statements: the chat and
        the watermark in one; its pending rows, reminders and digests, in one (few rows,
        those of events it no longer follows too; dropping other occurrences event by
        event, as for a moved event, would be a statement each); then the reminders it
        should get, and a write only for what differs.
        """
        state = (await session.execute(_chat_to_replan(), {"chat_id": chat_id})).one()
        until = await self.reach_from(session, state.planned_until, now)
        pending = await _pending(session, [chat_id], None, (*_REMINDER_KINDS, DeliveryKind.DIGEST))
        reminders = [d for d in pending if d.kind is not DeliveryKind.DIGEST]
        await self._replan_few(
            session,
            now,
            [chat_id],
            None,
            until,
            created_due,
            pending=reminders,
            following_chat=chat_id,
        )
        digests = [d for d in pending if d.kind is DeliveryKind.DIGEST]
        await _replan_digests(session, now, chat_id, state, digests, until)

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
        statement = select(Meta.value).where(Meta.key == PLANNED_UNTIL_KEY)
        if lock:
            statement = statement.with_for_update()
        stored = await session.scalar(statement)
        if stored is None:  # the first time only: one statement on every later call
            await insert_new(
                session, [{"key": PLANNED_UNTIL_KEY, "value": until.isoformat()}], Meta
            )
            stored = await session.scalar(statement)
        return dt.datetime.fromisoformat(stored) if stored else until

    @staticmethod
    def watermark_column() -> ScalarSelect[Any]:
        """The stored watermark as a scalar subquery, for a statement to read along
        (hand the value to :meth:`reach_from`)."""
        return select(Meta.value).where(Meta.key == PLANNED_UNTIL_KEY).scalar_subquery()

    async def reach_from(
        self, session: AsyncSession, stored: str | None, now: dt.datetime
    ) -> dt.datetime:
        """:meth:`reach` from a watermark read along with something else."""
        if stored is None:  # never planned: the first planner stores it
            return await self.reach(session, now)
        return max(dt.datetime.fromisoformat(stored), now + self.horizon)

    async def reach(self, session: AsyncSession, now: dt.datetime) -> dt.datetime:
        """Up to when a change to some chats or events (a follow, new lead times) plans:
        the watermark, or ``now + horizon`` if that is later.

        The watermark read is the last committed one. A sweep advancing it at the same
        moment read the followers before this change was committed, and plans only up to
        its own ``now + horizon``: planning at least that far leaves no gap between the
        two. (Rows both create are inserted once.)
        """
        return max(await self._watermark(session, now), now + self.horizon)

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
