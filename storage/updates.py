"""Which Telegram updates a webhook replica has taken, so a repeat is handled once."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ProcessedUpdate

# Telegram keeps trying an update for about a day; after that a repeat cannot come.
KEEP = dt.timedelta(days=2)


async def take_update(session: AsyncSession, update_id: int, now: dt.datetime) -> bool:
    """True the first time ``update_id`` is taken (by any process). Never commits."""
    values = {"update_id": update_id, "received_at": now}
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = await session.execute(
        insert(ProcessedUpdate).values(**values).on_conflict_do_nothing()
    )
    return bool(getattr(result, "rowcount", 0))


async def forget_old_updates(session: AsyncSession, now: dt.datetime) -> int:
    """Drop records no repeat can match any more. Never commits."""
    result = await session.execute(
        delete(ProcessedUpdate).where(ProcessedUpdate.received_at < now - KEEP)
    )
    return max(getattr(result, "rowcount", 0) or 0, 0)
