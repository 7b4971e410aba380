"""Following everything, an organisation or an event, and the lead times of reminders.

Every change re-plans the chat's reminders in the same transaction, so the
ledger never disagrees with what the chat follows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Database
from storage.followers import DEFAULT_LEAD_TIMES, LEAD_TIME_CHOICES
from storage.models import (
    Chat,
    Delivery,
    DeliveryStatus,
    Event,
    Organisation,
    Subscription,
    SubscriptionScope,
)
from storage.planning import Planner
from storage.views import OrganisationRef

MAX_SUBSCRIPTIONS_PER_CHAT = 200


class SubscriptionError(Exception):
    """A subscription request that cannot be honoured; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SubscriptionView:
    id: int
    scope: SubscriptionScope
    organisation: OrganisationRef | None
    event_key: str | None
    event_title: dict[str, str] | None
    lead_times: tuple[int, ...]  # in effect (its own, or the chat's default)
    own_lead_times: bool


@dataclass(frozen=True)
class FollowedTarget:
    """What one subscription follows, by key: all (both None), an organisation, an event."""

    subscription_id: int
    scope: SubscriptionScope
    organisation_key: str | None
    event_key: str | None


@dataclass(frozen=True)
class Followed:
    """What :meth:`Subscriptions.follow` did."""

    subscription: SubscriptionView
    created: bool  # a new subscription (else the chat followed it already)
    # When the earliest reminder it planned is due (None: none in the planned window).
    first_due: dt.datetime | None
    # Reminders already planned were planned again (the chat followed some of the same
    # events another way): what is due first is not known here.
    replanned: bool = False


# The statements of a follow, built once: building one cost as much as running it.
_ORGANISATION_BY_KEY = select(Organisation).where(Organisation.key == bindparam("key"))
_EVENT_BY_KEY = select(Event.id, Event.key, Event.title, Event.organisation_id).where(
    Event.key == bindparam("key")
)
_CHAT_FOLLOWS = (
    select(
        Chat.lead_times,
        Subscription.id,
        Subscription.scope,
        Subscription.organisation_id,
        Subscription.event_id,
        Subscription.lead_times.label("own_lead_times"),
        Planner.watermark_column().label("watermark"),
    )
    .select_from(Chat)
    .outerjoin(Subscription, Subscription.chat_id == Chat.id)
    .where(Chat.id == bindparam("chat_id"))
)
_CHAT_LEAD_TIMES = select(Chat.lead_times).where(Chat.id == bindparam("chat_id"))
_CHAT_TARGETS = (
    select(
        Subscription.id,
        Subscription.scope,
        Organisation.key.label("organisation_key"),
        Event.key.label("event_key"),
    )
    .outerjoin(Organisation, Organisation.id == Subscription.organisation_id)
    .outerjoin(Event, Event.id == Subscription.event_id)
    .where(Subscription.chat_id == bindparam("chat_id"))
)
# With the followed event's names and the watermark: a lead-time toggle re-plans from
# this one read.
_SUBSCRIPTION_OF_CHAT = (
    select(
        Subscription.id,
        Subscription.scope,
        Subscription.organisation_id,
        Subscription.event_id,
        Subscription.lead_times,
        Chat.lead_times.label("chat_lead_times"),
        Event.key.label("event_key"),
        Event.title.label("event_title"),
        Planner.watermark_column().label("watermark"),
    )
    .join(Chat, Chat.id == Subscription.chat_id)
    .outerjoin(Event, Event.id == Subscription.event_id)
    .where(
        Subscription.id == bindparam("subscription_id"),
        Subscription.chat_id == bindparam("chat_id"),
    )
)
_SUBSCRIPTIONS = cast(Table, Subscription.__table__)
_INSERT_SUBSCRIPTION = insert(_SUBSCRIPTIONS).returning(_SUBSCRIPTIONS.c.id)


@dataclass(frozen=True)
class LeadTimesChanged:
    """What :meth:`Subscriptions.toggle_lead_time` did."""

    subscription: SubscriptionView | None  # None: the chat's default lead times
    lead_times: tuple[int, ...]
    first_due: dt.datetime | None  # the earliest reminder it planned, if any


@dataclass(frozen=True)
class _LeadTarget:
    view: SubscriptionView | None  # None: the chat's default
    # What the subscription follows: (scope, organisation id, event id).
    covers: tuple[SubscriptionScope, int | None, int | None] | None
    lead_times: tuple[int, ...]  # in effect
    watermark: str | None = None  # read along with a subscription


def _clean_lead_times(minutes: Iterable[int]) -> list[int]:
    chosen = sorted({m for m in minutes if m in LEAD_TIME_CHOICES}, reverse=True)
    if not chosen:
        raise SubscriptionError("no_lead_times")
    return chosen


async def _events_of(
    session: AsyncSession,
    scope: SubscriptionScope,
    organisation_id: int | None,
    event_id: int | None,
) -> list[int] | None:
    """The events a subscription to this target covers; None for everything."""
    if scope is SubscriptionScope.EVENT and event_id is not None:
        return [event_id]
    if scope is SubscriptionScope.ORGANISATION and organisation_id is not None:
        found = await session.scalars(
            select(Event.id).where(Event.organisation_id == organisation_id)
        )
        return list(found)
    return None


def _may_overlap(
    held: Sequence[Any], scope: SubscriptionScope, organisation_id: int | None
) -> bool:
    """Whether a subscription the chat ``held`` may cover events a new one does (the
    new one of ``scope``, of ``organisation_id`` or of an event of it): only then can
    reminders for them be pending already."""
    for row in held:
        if row.scope is SubscriptionScope.ALL:
            return True
        if row.scope is SubscriptionScope.ORGANISATION and row.organisation_id == organisation_id:
            return True
        if row.scope is SubscriptionScope.EVENT and scope is SubscriptionScope.ORGANISATION:
            return True  # perhaps one of the organisation's events
    return False


async def _pending_for(session: AsyncSession, chat_id: int, event_ids: Sequence[int]) -> bool:
    """Whether the chat has a reminder pending for any of ``event_ids`` already (it
    follows them another way, perhaps with other lead times)."""
    if not event_ids:
        return False
    found = await session.scalar(
        select(Delivery.id)
        .where(
            Delivery.chat_id == chat_id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.event_id.in_(event_ids),
        )
        .limit(1)
    )
    return found is not None


class Subscriptions:
    """What a chat follows. Methods take the chat id and never trust ids from buttons."""

    def __init__(self, database: Database, planner: Planner) -> None:
        self.database = database
        self.planner = planner

    async def _views(self, session: AsyncSession, chat_id: int) -> list[SubscriptionView]:
        chat = await session.get(Chat, chat_id)
        default = tuple(chat.lead_times) if chat and chat.lead_times else DEFAULT_LEAD_TIMES
        rows = list(
            await session.scalars(
                select(Subscription)
                .where(Subscription.chat_id == chat_id)
                .order_by(Subscription.scope, Subscription.id)
            )
        )
        org_ids = {row.organisation_id for row in rows if row.organisation_id}
        event_ids = {row.event_id for row in rows if row.event_id}
        orgs = {
            o.id: o
            for o in await session.scalars(select(Organisation).where(Organisation.id.in_(org_ids)))
        }
        events = {
            e.id: e for e in await session.scalars(select(Event).where(Event.id.in_(event_ids)))
        }
        views = []
        for row in rows:
            org = orgs.get(row.organisation_id) if row.organisation_id else None
            event = events.get(row.event_id) if row.event_id else None
            views.append(
                SubscriptionView(
                    id=row.id,
                    scope=row.scope,
                    organisation=OrganisationRef.of(org) if org else None,
                    event_key=event.key if event else None,
                    event_title=dict(event.title) if event else None,
                    lead_times=tuple(row.lead_times) if row.lead_times else default,
                    own_lead_times=bool(row.lead_times),
                )
            )
        return views

    async def of_chat(self, chat_id: int) -> list[SubscriptionView]:
        async with self.database.sessions() as session:
            return await self._views(session, chat_id)

    async def targets_of(self, chat_id: int) -> list[FollowedTarget]:
        """What the chat follows, by key, in one statement: for marking what it follows
        (the Mini App's calendar), where :meth:`of_chat`'s titles and lead times are not
        needed."""
        async with self.database.sessions() as session:
            rows = (await session.execute(_CHAT_TARGETS, {"chat_id": chat_id})).all()
        return [FollowedTarget(*row) for row in rows]

    async def default_lead_times(self, chat_id: int) -> tuple[int, ...]:
        async with self.database.sessions() as session:
            chat = await session.get(Chat, chat_id)
            return tuple(chat.lead_times) if chat and chat.lead_times else DEFAULT_LEAD_TIMES

    async def follow(
        self,
        chat_id: int,
        scope: SubscriptionScope,
        key: str | None,
        now: dt.datetime,
    ) -> Followed:
        """Follow a target: the subscription, whether it is new, and when its first
        reminder planned now is due.

        Raises :class:`SubscriptionError` ("unknown_target", "too_many").
        """
        # A burst of new followers (a channel post's 🔔) makes this the busiest write:
        # it reads what it needs once and builds the one view it returns.
        async with self.database.transaction() as session:
            organisation: Organisation | None = None
            event: Any = None  # (id, key, title, organisation_id)
            if scope is SubscriptionScope.ORGANISATION:
                organisation = await session.scalar(_ORGANISATION_BY_KEY, {"key": key})
                if organisation is None:
                    raise SubscriptionError("unknown_target")
            elif scope is SubscriptionScope.EVENT:
                event = (await session.execute(_EVENT_BY_KEY, {"key": key})).first()
                if event is None:
                    raise SubscriptionError("unknown_target")
            organisation_id = organisation.id if organisation else None
            event_id = event.id if event else None
            # The chat's subscriptions (few), its default lead times and the planner's
            # watermark, in one statement.
            rows = (await session.execute(_CHAT_FOLLOWS, {"chat_id": chat_id})).all()
            chat_lead_times = rows[0].lead_times if rows else None
            default = tuple(chat_lead_times) if chat_lead_times else DEFAULT_LEAD_TIMES
            held = [row for row in rows if row.id is not None]
            existing = next(
                (
                    row
                    for row in held
                    if row.scope == scope
                    and row.organisation_id == organisation_id
                    and row.event_id == event_id
                ),
                None,
            )
            created_due: list[dt.datetime] = []
            replanned = False
            if existing is not None:
                subscription_id, own = existing.id, existing.own_lead_times
            else:
                if len(held) >= MAX_SUBSCRIPTIONS_PER_CHAT:
                    raise SubscriptionError("too_many")
                subscription_id = (
                    await session.execute(
                        _INSERT_SUBSCRIPTION,
                        {
                            "chat_id": chat_id,
                            "scope": scope,
                            "organisation_id": organisation_id,
                            "event_id": event_id,
                            "created_at": now,
                        },
                    )
                ).scalar_one()
                own = None
                # Only the followed target's reminders can change: re-planning the chat's
                # whole calendar read every event in the window (most of a /subscribe).
                target_org = organisation_id or (event.organisation_id if event else None)
                covered = await _events_of(session, scope, organisation_id, event_id)
                overlap = _may_overlap(held, scope, target_org)
                if covered is not None and not (
                    overlap and await _pending_for(session, chat_id, covered)
                ):
                    # Nothing planned for them yet (the usual case): nothing to prune.
                    stored = rows[0].watermark if rows else None
                    await self.planner.plan(
                        session,
                        now,
                        until=await self.planner.reach_from(session, stored, now),
                        chat_ids=[chat_id],
                        event_ids=covered,
                        created_due=created_due,
                    )
                else:
                    await self.planner.replan(session, now, chat_ids=[chat_id], event_ids=covered)
                    replanned = True
            view = SubscriptionView(
                id=subscription_id,
                scope=scope,
                organisation=OrganisationRef.of(organisation) if organisation else None,
                event_key=event.key if event else None,
                event_title=dict(event.title) if event else None,
                lead_times=tuple(own) if own else default,
                own_lead_times=bool(own),
            )
        return Followed(view, existing is None, min(created_due, default=None), replanned)

    async def unfollow(
        self, chat_id: int, subscription_id: int, now: dt.datetime
    ) -> SubscriptionView | None:
        """Stop following; None if this chat has no such subscription."""
        async with self.database.transaction() as session:
            views = await self._views(session, chat_id)
            view = next((v for v in views if v.id == subscription_id), None)
            if view is None:
                return None
            row = await session.get(Subscription, subscription_id)
            await session.delete(row)
            await session.flush()
            await self.planner.replan(session, now, chat_ids=[chat_id])
            return view

    async def set_lead_times(
        self,
        chat_id: int,
        subscription_id: int | None,
        minutes: Sequence[int],
        now: dt.datetime,
    ) -> tuple[int, ...]:
        """Set the lead times of one subscription, or the chat's default (``None``)."""
        chosen = _clean_lead_times(minutes)
        async with self.database.transaction() as session:
            target = await self._lead_target(session, chat_id, subscription_id)
            await self._store_lead_times(session, chat_id, target, chosen, now, [])
            return tuple(chosen)

    async def toggle_lead_time(
        self, chat_id: int, subscription_id: int | None, minutes: int, now: dt.datetime
    ) -> LeadTimesChanged:
        """Switch one lead time on or off, for one subscription or the chat's default.

        Reads and writes in one transaction, and returns what the lead-time menu shows.
        Raises :class:`SubscriptionError` ("unknown_target"; "no_lead_times" when it
        was the last one).
        """
        async with self.database.transaction() as session:
            target = await self._lead_target(session, chat_id, subscription_id)
            chosen = _clean_lead_times(set(target.lead_times) ^ {minutes})
            created_due: list[dt.datetime] = []
            await self._store_lead_times(session, chat_id, target, chosen, now, created_due)
        view = target.view
        if view is not None:
            view = replace(view, lead_times=tuple(chosen), own_lead_times=True)
        return LeadTimesChanged(view, tuple(chosen), min(created_due, default=None))

    async def lead_times_of(
        self, chat_id: int, subscription_id: int | None
    ) -> tuple[SubscriptionView | None, tuple[int, ...]] | None:
        """A subscription (None: the chat's default) and its lead times in effect; None
        if the chat has no such subscription."""
        async with self.database.sessions() as session:
            try:
                target = await self._lead_target(session, chat_id, subscription_id)
            except SubscriptionError:
                return None
        return target.view, target.lead_times

    async def _lead_target(
        self, session: AsyncSession, chat_id: int, subscription_id: int | None
    ) -> _LeadTarget:
        """The chat's default lead times, or one of its subscriptions (never trusting an
        id from a button): one statement, two for an organisation's or event's names."""
        if subscription_id is None:
            chat_lead_times = await session.scalar(_CHAT_LEAD_TIMES, {"chat_id": chat_id})
            if chat_lead_times is None and await session.get(Chat, chat_id) is None:
                raise SubscriptionError("unknown_target")
            default = tuple(chat_lead_times) if chat_lead_times else DEFAULT_LEAD_TIMES
            return _LeadTarget(None, None, default)
        row = (
            await session.execute(
                _SUBSCRIPTION_OF_CHAT, {"chat_id": chat_id, "subscription_id": subscription_id}
            )
        ).first()
        if row is None:
            raise SubscriptionError("unknown_target")
        default = tuple(row.chat_lead_times) if row.chat_lead_times else DEFAULT_LEAD_TIMES
        organisation = (
            await session.get(Organisation, row.organisation_id) if row.organisation_id else None
        )
        lead_times = tuple(row.lead_times) if row.lead_times else default
        view = SubscriptionView(
            id=row.id,
            scope=row.scope,
            organisation=OrganisationRef.of(organisation) if organisation else None,
            event_key=row.event_key,
            event_title=dict(row.event_title) if row.event_title is not None else None,
            lead_times=lead_times,
            own_lead_times=bool(row.lead_times),
        )
        covers = (row.scope, row.organisation_id, row.event_id)
        return _LeadTarget(view, covers, lead_times, row.watermark)

    async def _store_lead_times(
        self,
        session: AsyncSession,
        chat_id: int,
        target: _LeadTarget,
        chosen: Sequence[int],
        now: dt.datetime,
        created_due: list[dt.datetime],
    ) -> None:
        """Write new lead times and re-plan what they change: a subscription's own only
        its events' reminders (an organisation's or one event's, not the chat's whole
        calendar); the chat's default, every reminder of the chat."""
        if target.view is None:
            await session.execute(
                update(Chat).where(Chat.id == chat_id).values(lead_times=list(chosen))
            )
            await self.planner.replan_chat(session, now, chat_id, created_due=created_due)
        else:
            await session.execute(
                update(Subscription)
                .where(Subscription.id == target.view.id, Subscription.chat_id == chat_id)
                .values(lead_times=list(chosen))
            )
            assert target.covers is not None
            event_ids = await _events_of(session, *target.covers)
            await self.planner.replan(
                session,
                now,
                chat_ids=[chat_id],
                event_ids=event_ids,
                created_due=created_due,
                until=await self.planner.reach_from(session, target.watermark, now),
            )
