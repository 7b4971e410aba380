"""Which Telegram updates a webhook replica has taken, so a repeat is handled once."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ProcessedUpdate
from storage.upsert import conflict_insert

# Telegram keeps trying an update for about a day; after that a repeat cannot come.
KEEP = dt.timedelta(days=2)


async def take_update(session: AsyncSession, update_id: int, now: dt.datetime) -> bool:
    """True the first time ``update_id`` is taken (by any process). Never commits."""
    values = {"update_id": update_id, "received_at": now}
    result = await session.execute(
        conflict_insert(session, ProcessedUpdate).values(**values).on_conflict_do_nothing()
    )
    return bool(getattr(result, "rowcount", 0))


async def forget_old_updates(session: AsyncSession, now: dt.datetime) -> int:
    """Drop records no repeat can match any more. Never commits."""
    result = await session.execute(
        delete(ProcessedUpdate).where(ProcessedUpdate.received_at < now - KEEP)
    )
    return max(getattr(result, "rowcount", 0) or 0, 0)
