"""Notices in the ledger: digests, weekly review notices to operators, new-event and
change notices to followers, and announcements to channels.

Each is one ledger row per chat and what it is about, written once (its key), sent
by the same dispatcher as reminders; what it says is rendered when it is sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.dates import UTC
from storage.followers import DAY_NOTICE_HOUR, at_local, following_condition, insert_new
from storage.models import (
    Chat,
    ChatType,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    DigestFrequency,
    Event,
    EventChange,
    Subscription,
)
from storage.upsert import conflict_insert

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
            instant = at_local(day, DAY_NOTICE_HOUR, zone)
            if since < instant <= until:
                instants.append(instant)
        day += dt.timedelta(days=1)
    return instants


async def plan_digests(
    session: AsyncSession,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime,
) -> int:
    """Every chat's digests due in (``since``, ``until``], as ledger rows (the sweep; a
    chat's own re-plan goes through :func:`digest_rows`). Never commits.

    Whether a digest has anything to say is decided when it is due: an empty one is
    recorded as skipped, not sent.
    """
    statement = select(Chat.id, Chat.timezone, Chat.digest).where(
        Chat.digest != DigestFrequency.OFF, Chat.is_active.is_(True), Chat.paused.is_(False)
    )
    chats = await session.execute(statement)
    rows = []
    for chat_id, zone, stored in chats.all():
        rows.extend(digest_rows(chat_id, DigestFrequency(stored), zone, since, until, now))
    return await insert_new(session, rows)


def digest_rows(
    chat_id: int,
    frequency: DigestFrequency,
    zone: str,
    since: dt.datetime,
    until: dt.datetime,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The ledger rows of a chat's digests due in (``since``, ``until``]."""
    if frequency is DigestFrequency.OFF:
        return []
    return [
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
        for instant in digest_instants(frequency, zone, since, until)
    ]


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
    return await insert_new(session, rows)


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
        .where(following_condition([event.id], org_ids))
        .distinct()
    )
    statement = conflict_insert(session, Delivery).from_select(["chat_id", *columns], followers)
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
    await insert_new(session, rows)
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
