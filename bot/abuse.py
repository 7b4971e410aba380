"""Keeping one person's flood from slowing everyone else.

A per-user limit on updates (commands, buttons, inline queries), checked before
anything touches the database, and a short cache of replies to read-only
requests, so repeating "/upcoming" ten times costs one query.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

from bot.presentation.text import Reply

# Read-only commands whose reply depends only on the chat and the text.
CACHEABLE_COMMANDS = frozenset(
    {"chairs", "org", "summits", "upcoming", "past", "next", "event", "search", "help", "start"}
)


class FloodGuard:
    """At most ``limit`` updates per user in any ``window`` seconds (sliding window)."""

    def __init__(self, limit: int, window: float, max_users: int = 50_000) -> None:
        self.limit = limit
        self.window = window
        self.max_users = max_users
        self._hits: OrderedDict[int, deque[float]] = OrderedDict()
        self._warned: dict[int, float] = {}

    def allow(self, user_id: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        hits = self._hits.get(user_id)
        if hits is None:
            hits = self._hits[user_id] = deque()
            if len(self._hits) > self.max_users:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(user_id)
        while hits and now - hits[0] >= self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def should_warn(self, user_id: int, now: float | None = None) -> bool:
        """Tell a flooding user once per window, not once per dropped update."""
        now = time.monotonic() if now is None else now
        if now - self._warned.get(user_id, -self.window) < self.window:
            return False
        self._warned[user_id] = now
        return True


class ReplyCache:
    """Replies to identical read-only requests from one chat, kept for ``ttl`` seconds."""

    def __init__(self, ttl: float, max_entries: int = 2_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, str], tuple[float, Reply]] = OrderedDict()

    def get(self, key: tuple[int, str], now: float | None = None) -> Reply | None:
        now = time.monotonic() if now is None else now
        found = self._entries.get(key)
        if found is None or found[0] <= now:
            self._entries.pop(key, None)
            return None
        return found[1]

    def put(self, key: tuple[int, str], reply: Reply, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._entries[key] = (now + self.ttl, reply)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear_chat(self, chat_id: int) -> None:
        for key in [k for k in self._entries if k[0] == chat_id]:
            del self._entries[key]


def cache_key(chat_id: int, text: str) -> tuple[int, str] | None:
    """The cache key of a message, if its reply may come from the cache: read-only
    commands only (plain text may be the answer to a question in a dialogue)."""
    text = text.strip()
    if not text.startswith("/"):
        return None
    command = text.split()[0][1:].split("@")[0].casefold()
    return (chat_id, text) if command in CACHEABLE_COMMANDS else None
