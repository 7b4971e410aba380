"""Calendar feeds: one secret token per chat, looked up by the web server's feed route."""

from __future__ import annotations

import datetime as dt
import re
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import CalendarFeed

# 32 URL-safe characters (192 random bits): not guessable, short enough for a URL.
TOKEN_BYTES = 24
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32}$")


async def feed_token(
    session: AsyncSession, chat_id: int, now: dt.datetime, *, replace: bool = False
) -> str:
    """The chat's feed token, made on first use; ``replace`` makes a new one (the old
    address stops working at once). Never commits."""
    feed = await session.get(CalendarFeed, chat_id, with_for_update=True)
    if feed is None:
        feed = CalendarFeed(
            chat_id=chat_id, token=secrets.token_urlsafe(TOKEN_BYTES), created_at=now
        )
        session.add(feed)
    elif replace:
        feed.token = secrets.token_urlsafe(TOKEN_BYTES)
        feed.created_at = now
    await session.flush()
    return feed.token


async def chat_of_feed(session: AsyncSession, token: str) -> int | None:
    """The chat whose feed ``token`` opens, if any."""
    if not TOKEN_PATTERN.match(token):
        return None
    return await session.scalar(select(CalendarFeed.chat_id).where(CalendarFeed.token == token))
