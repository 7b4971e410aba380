"""The dispatcher's side of the ledger: claiming due deliveries atomically, and
recording what became of each (sent, failed, skipped, to retry, moved).

On PostgreSQL a claim takes rows ``FOR UPDATE SKIP LOCKED``, so replicas share the
work; a claim is a lease, and rows a crashed replica held go back after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import chosen_once
from storage.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Event,
    UTCDateTime,
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
    # One statement: the due rows are found and claimed together, so no list of ids goes
    # back and forth. The status condition makes the claim safe without row locks.
    chosen = chosen_once(session, due, "due")
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
