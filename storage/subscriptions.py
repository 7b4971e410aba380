"""Following everything, an organisation or an event, and the lead times of reminders.

Every change re-plans the chat's reminders in the same transaction, so the
ledger never disagrees with what the chat follows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Database
from storage.followers import DEFAULT_LEAD_TIMES, LEAD_TIME_CHOICES
from storage.models import Chat, Event, Organisation, Subscription, SubscriptionScope
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


def _clean_lead_times(minutes: Sequence[int]) -> list[int]:
    chosen = sorted({m for m in minutes if m in LEAD_TIME_CHOICES}, reverse=True)
    if not chosen:
        raise SubscriptionError("no_lead_times")
    return chosen


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

    async def get(self, chat_id: int, subscription_id: int) -> SubscriptionView | None:
        return next((s for s in await self.of_chat(chat_id) if s.id == subscription_id), None)

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
    ) -> tuple[SubscriptionView, bool]:
        """Follow a target; returns (the subscription, whether it is new).

        Raises :class:`SubscriptionError` ("unknown_target", "too_many").
        """
        async with self.database.transaction() as session:
            organisation_id = event_id = None
            if scope is SubscriptionScope.ORGANISATION:
                organisation_id = await session.scalar(
                    select(Organisation.id).where(Organisation.key == key)
                )
                if organisation_id is None:
                    raise SubscriptionError("unknown_target")
            elif scope is SubscriptionScope.EVENT:
                event_id = await session.scalar(select(Event.id).where(Event.key == key))
                if event_id is None:
                    raise SubscriptionError("unknown_target")
            existing = await session.scalar(
                select(Subscription).where(
                    Subscription.chat_id == chat_id,
                    Subscription.scope == scope,
                    Subscription.organisation_id.is_(None)
                    if organisation_id is None
                    else Subscription.organisation_id == organisation_id,
                    Subscription.event_id.is_(None)
                    if event_id is None
                    else Subscription.event_id == event_id,
                )
            )
            created = existing is None
            if existing is None:
                count = await session.scalar(
                    select(func.count()).where(Subscription.chat_id == chat_id)
                )
                if (count or 0) >= MAX_SUBSCRIPTIONS_PER_CHAT:
                    raise SubscriptionError("too_many")
                existing = Subscription(
                    chat_id=chat_id,
                    scope=scope,
                    organisation_id=organisation_id,
                    event_id=event_id,
                    created_at=now,
                )
                session.add(existing)
                await session.flush()
                await self.planner.replan(session, now, chat_ids=[chat_id])
            views = await self._views(session, chat_id)
            return next(v for v in views if v.id == existing.id), created

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
            if subscription_id is None:
                chat = await session.get(Chat, chat_id)
                if chat is None:
                    raise SubscriptionError("unknown_target")
                chat.lead_times = chosen
            else:
                row = await session.scalar(
                    select(Subscription).where(
                        Subscription.id == subscription_id, Subscription.chat_id == chat_id
                    )
                )
                if row is None:
                    raise SubscriptionError("unknown_target")
                row.lead_times = chosen
            await session.flush()
            await self.planner.replan(session, now, chat_ids=[chat_id])
            return tuple(chosen)
