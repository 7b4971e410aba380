"""The chats the bot talks to: first contact, blocked or removed, group upgrades."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Row, ScalarSelect, Select, bindparam, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Database
from storage.models import (
    Chat,
    ChatType,
    Delivery,
    DeliveryStatus,
    DigestFrequency,
    Subscription,
)
from storage.planning import Planner
from storage.upsert import conflict_insert
from storage.views import ChatView

# A value read in the same statement as a chat: one round trip for both.
ReadAlong = ScalarSelect[Any]

# What a ChatView shows, and ``ensure`` compares, read as columns (see ``Chats._read``).
_VIEW_COLUMNS = tuple(
    Chat.__table__.c[name]
    for name in (
        "id",
        "type",
        "title",
        "language",
        "timezone",
        "is_active",
        "paused",
        "digest",
        "linked_by",
        "lead_times",
    )
)


# The ids are bound at execution ("expanding"): compiled once, and a batch's chat ids
# (500) are not coerced one by one into SQL literals.
_VIEWS_OF = select(*_VIEW_COLUMNS).where(
    Chat.__table__.c.id.in_(bindparam("chat_ids", expanding=True))
)


async def chat_views(database: Database, chat_ids: Iterable[int]) -> dict[int, ChatView]:
    """The chats of ``chat_ids`` that exist, read as the columns a view needs (no ORM
    objects: the dispatcher reads a batch's chats this way)."""
    wanted = list(set(chat_ids))
    if not wanted:
        return {}
    async with database.sessions() as session:
        rows = await session.execute(_VIEWS_OF, {"chat_ids": wanted})
        return {row.id: ChatView.of(row) for row in rows}


async def deactivate_chat(
    session: AsyncSession, chat_id: int, reason: str, now: dt.datetime
) -> None:
    """The bot can no longer write here (blocked, removed, chat deleted). Never commits.

    Deliveries already due are recorded as skipped with the reason; later ones are
    dropped, to be planned again if the chat comes back. Subscriptions stay.
    """
    await session.execute(update(Chat).where(Chat.id == chat_id).values(is_active=False))
    await session.execute(
        update(Delivery)
        .where(
            Delivery.chat_id == chat_id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.due_at <= now,
        )
        .values(status=DeliveryStatus.SKIPPED, error=reason[:500], finished_at=now)
    )
    await session.execute(
        delete(Delivery).where(
            Delivery.chat_id == chat_id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.due_at > now,
        )
    )


async def migrate_chat(
    session: AsyncSession, old_id: int, new_id: int, *, planner: Planner, now: dt.datetime
) -> None:
    """A group became a supergroup with a new id: move everything to it. Never commits.

    When the supergroup already followed things of its own, its wishes win: pending
    reminders of the group it does not want (other lead times) are dropped.
    """
    old = await session.get(Chat, old_id)
    if old is None:
        return
    new = await session.get(Chat, new_id)
    existing = {
        (s.scope, s.organisation_id, s.event_id)
        for s in await session.scalars(select(Subscription).where(Subscription.chat_id == new_id))
    }
    if new is None:
        new = Chat(id=new_id, type=ChatType.SUPERGROUP, title=old.title, is_active=True)
        session.add(new)
    if not existing:
        # The supergroup is the same community: it keeps the group's settings.
        new.language, new.timezone, new.lead_times = old.language, old.timezone, old.lead_times
    await session.flush()
    # Subscriptions the new chat already has win; the rest move.
    for subscription in await session.scalars(
        select(Subscription).where(Subscription.chat_id == old_id)
    ):
        target = (subscription.scope, subscription.organisation_id, subscription.event_id)
        if target in existing:
            await session.delete(subscription)
        else:
            subscription.chat_id = new_id
    # Pending deliveries move, except where the new chat has the same one already.
    taken = select(Delivery.event_id, Delivery.kind, Delivery.occurrence_at, Delivery.slot).where(
        Delivery.chat_id == new_id
    )
    keys = {tuple(row) for row in (await session.execute(taken)).all()}
    for delivery in await session.scalars(
        select(Delivery).where(
            Delivery.chat_id == old_id, Delivery.status == DeliveryStatus.PENDING
        )
    ):
        key = (delivery.event_id, delivery.kind, delivery.occurrence_at, delivery.slot)
        if key in keys:
            await session.delete(delivery)
        else:
            delivery.chat_id = new_id
    old.is_active = False
    old.migrated_to_id = new_id
    if existing:
        await session.flush()
        await planner.prune(session, now, chat_ids=[new_id])


async def insert_chat(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Store a new chat; False if it exists already (another replica was first)."""
    statement = (
        conflict_insert(session, Chat).values(**values).on_conflict_do_nothing().returning(Chat.id)
    )
    return (await session.execute(statement)).first() is not None


class Chats:
    """Chat records: created on first contact with their language and zone."""

    def __init__(
        self,
        database: Database,
        default_language: str,
        default_timezone: str,
        planner: Planner | None = None,
    ) -> None:
        self.database = database
        self.default_language = default_language
        self.default_timezone = default_timezone
        self.planner = planner or Planner()
        self._statements: dict[tuple[ReadAlong, ...], Select[Any]] = {}

    async def view_for_user(
        self, user_id: int, language: str | None, *, read_along: Sequence[ReadAlong] = ()
    ) -> tuple[ChatView, Row[Any] | None]:
        """Settings for a user seen outside any chat (inline mode): their private chat's
        if they have one, else the defaults in their language. Nothing is stored.

        ``read_along``: scalar subqueries read in the same statement as the chat (see
        :meth:`ensure`), and their values.
        """
        chat, along = await self._read(user_id, read_along)
        if chat is not None:
            return ChatView.of(chat), along
        view = ChatView(
            user_id,
            ChatType.PRIVATE,
            None,
            language or self.default_language,
            self.default_timezone,
            True,
        )
        return view, along

    async def _read(
        self, chat_id: int, read_along: Sequence[ReadAlong]
    ) -> tuple[Row[Any] | None, Row[Any] | None]:
        # The columns a view needs, not the ORM entity: nearly every update reads its chat,
        # and loading an identity-mapped object cost more than the statement. Built once
        # for each set of values read along (statements hash by identity; the catalogue
        # hands out one tuple of its revision's).
        along = tuple(read_along)
        statement = self._statements.get(along)
        if statement is None:
            chat_id_column = Chat.__table__.c.id
            matches = chat_id_column == bindparam("chat_id")
            if along:
                # Read along even for a chat not stored yet (a new user's first update):
                # one row always, the chat's columns NULL when there is none.
                anchor = select(literal(1).label("one")).subquery("anchor")
                statement = select(*_VIEW_COLUMNS, *along).select_from(
                    anchor.outerjoin(Chat.__table__, matches)
                )
            else:
                statement = select(*_VIEW_COLUMNS).where(matches)
            self._statements[along] = statement
        async with self.database.single_reads() as session:
            row = (await session.execute(statement, {"chat_id": chat_id})).first()
        if row is None:
            return None, None
        values = row[len(_VIEW_COLUMNS) :]
        return (row if row.id is not None else None), values

    async def set_language(self, chat_id: int, language: str) -> None:
        async with self.database.transaction() as session:
            await session.execute(update(Chat).where(Chat.id == chat_id).values(language=language))

    async def set_timezone(self, chat_id: int, zone: str, now: dt.datetime) -> dt.datetime | None:
        """A new zone moves the chat's 09:00 notices: its reminders are planned again.

        Returns when the earliest reminder planned anew is due (None: none was), so the
        dispatcher can be woken by then without reading the ledger."""
        created_due: list[dt.datetime] = []
        async with self.database.transaction() as session:
            await session.execute(update(Chat).where(Chat.id == chat_id).values(timezone=zone))
            await self.planner.replan_chat(session, now, chat_id, created_due=created_due)
        return min(created_due, default=None)

    async def ensure(
        self,
        chat_id: int,
        chat_type: ChatType,
        title: str | None,
        language: str | None,
        now: dt.datetime,
        *,
        reactivate: bool = True,
        read_along: Sequence[ReadAlong] = (),
    ) -> tuple[ChatView, Row[Any] | None]:
        """The chat, created on first contact; a group keeps its language whoever writes.

        A chat already stored as it is (nearly every update) is only read, with no write
        lock or commit; ``read_along`` (scalar subqueries, e.g. the catalogue's revision)
        are read in that same statement, and their values returned (None when a stored
        chat had to be written again).
        """
        chat, along = await self._read(chat_id, read_along)
        if chat is not None and chat.is_active and chat.title == title and chat.type == chat_type:
            return ChatView.of(chat), along
        if chat is None:
            # First contact (a burst of new users): one INSERT, nothing read back.
            view = ChatView(
                chat_id,
                chat_type,
                title,
                language or self.default_language,
                self.default_timezone,
                True,
            )
            values = {
                "id": chat_id,
                "type": chat_type,
                "title": title,
                "language": view.language,
                "timezone": view.timezone,
                "is_active": True,
            }
            async with self.database.transaction() as session:
                created = await insert_chat(session, values)
            if created:
                return view, along
            # Another replica stored it first: take it as stored, below.
        async with self.database.transaction() as session:
            stored = await session.get(Chat, chat_id)
            if stored is None:
                stored = Chat(
                    id=chat_id,
                    type=chat_type,
                    title=title,
                    language=language or self.default_language,
                    timezone=self.default_timezone,
                    is_active=True,
                )
                session.add(stored)
            elif not stored.is_active or stored.title != title or stored.type != chat_type:
                if reactivate and not stored.is_active and stored.migrated_to_id is None:
                    # A message from the chat means the bot can write there again.
                    stored.is_active = True
                    await session.flush()
                    await self.planner.replan_chat(session, now, chat_id)
                stored.title = title
                stored.type = chat_type
            return ChatView.of(stored), None

    async def set_active(self, chat_id: int, active: bool, reason: str, now: dt.datetime) -> None:
        """Record that the bot was added back (active) or blocked/removed (inactive)."""
        async with self.database.transaction() as session:
            if active:
                await session.execute(update(Chat).where(Chat.id == chat_id).values(is_active=True))
                await self.planner.replan_chat(session, now, chat_id)
            else:
                await deactivate_chat(session, chat_id, reason, now)

    async def set_digest(self, chat_id: int, frequency: DigestFrequency, now: dt.datetime) -> None:
        async with self.database.transaction() as session:
            await session.execute(update(Chat).where(Chat.id == chat_id).values(digest=frequency))
            await self.planner.replan_chat(session, now, chat_id)

    async def set_paused(self, chat_id: int, paused: bool, now: dt.datetime) -> None:
        """A paused chat is sent nothing; its reminders are planned again on resume."""
        async with self.database.transaction() as session:
            await session.execute(update(Chat).where(Chat.id == chat_id).values(paused=paused))
            await self.planner.replan_chat(session, now, chat_id)

    async def unlink_channel(self, chat_id: int, now: dt.datetime) -> None:
        """Forget a channel's link and subscriptions; its delivery history stays."""
        async with self.database.transaction() as session:
            await session.execute(delete(Subscription).where(Subscription.chat_id == chat_id))
            await session.execute(
                update(Chat).where(Chat.id == chat_id).values(linked_by=None, is_active=False)
            )
            await self.planner.prune(session, now, chat_ids=[chat_id])

    async def migrate(self, old_id: int, new_id: int, now: dt.datetime) -> None:
        async with self.database.transaction() as session:
            await migrate_chat(session, old_id, new_id, planner=self.planner, now=now)


async def link_channel(
    session: AsyncSession,
    channel_id: int,
    title: str | None,
    linked_by: int,
    language: str,
    timezone: str,
    now: dt.datetime,
) -> Chat:
    """Record a channel linked by a user (again, if it was linked before). Never commits."""
    chat = await session.get(Chat, channel_id)
    if chat is None:
        chat = Chat(id=channel_id, type=ChatType.CHANNEL, language=language, timezone=timezone)
        session.add(chat)
    chat.type = ChatType.CHANNEL
    chat.title = title
    chat.linked_by = linked_by
    chat.is_active = True
    chat.updated_at = now
    await session.flush()
    return chat


async def linked_channels(session: AsyncSession, user_id: int | None = None) -> list[Chat]:
    """Channels linked (by ``user_id``, or by anyone), newest first."""
    statement = select(Chat).where(Chat.type == ChatType.CHANNEL, Chat.linked_by.is_not(None))
    if user_id is not None:
        statement = statement.where(Chat.linked_by == user_id)
    return list((await session.scalars(statement.order_by(Chat.title))).all())


async def forget_chat(session: AsyncSession, chat_id: int) -> None:
    """Delete everything stored about a chat (its settings, subscriptions, deliveries).

    Channels the person linked stay linked, without their id on them: ``linked_by``
    then holds the channel's own id ("linked; who did it is forgotten"). Never commits.
    """
    await session.execute(delete(Chat).where(Chat.id == chat_id))  # cascades
    await session.execute(update(Chat).where(Chat.linked_by == chat_id).values(linked_by=Chat.id))
