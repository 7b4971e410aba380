"""The real application driven in process: update JSON in, Bot API calls out.

The application is the one ``summitbot run`` builds (:func:`bot.app.build_application`),
with the in-process Bot API emulator of ``summitbot console`` in place of the network,
so a timing covers the handlers, the database, the rendering and the reply, and
nothing else.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from telegram import Update

from bench.catalogue import BENCH_USER_NAME
from bot.app import build_application, running
from bot.clock import FixedClock
from bot.context import BotApplication
from bot.transports.emulated import EmulatedRequest
from bot.transports.emulator import BotApiEmulator
from config.settings import Settings

OPERATOR_ID = 777


class ErrorCounter(logging.Handler):
    """Counts log records at ERROR and above: a benchmark of failing handlers is void."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def bench_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings that measure real work: no reply cache, no flood limit, no .env file."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "operator_ids": [OPERATOR_ID],
        "reply_cache_seconds": 0,
        "requests_per_minute": 1_000_000,
        "delivery_rate_limit": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


class InProcessBot:
    """One application and its emulated Bot API; remembers the last message per chat."""

    def __init__(self, settings: Settings, clock: FixedClock) -> None:
        self.emulator = BotApiEmulator()
        self.calls: Counter[str] = Counter()
        self.last_message: dict[int, dict[str, Any]] = {}
        self.request = EmulatedRequest(self.emulator, self._observe)
        self.clock = clock
        self.application: BotApplication = build_application(
            settings, clock=clock, request=self.request, with_updater=False, rate_limit=False
        )
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)

    def _observe(self, method: str, parameters: dict[str, Any], result: Any) -> None:
        self.calls[method] += 1
        if method in ("sendMessage", "editMessageText") and isinstance(result, dict):
            self.last_message[int(result["chat"]["id"])] = result

    @asynccontextmanager
    async def running(self) -> AsyncIterator[InProcessBot]:
        async with running(self.application, polling=False):
            yield self

    # --- updates as Telegram sends them ------------------------------------------------

    def user(self, user_id: int, language: str = "en") -> dict[str, Any]:
        return {
            "id": user_id,
            "is_bot": False,
            "first_name": BENCH_USER_NAME,
            "language_code": language,
        }

    def message(self, user_id: int, text: str) -> dict[str, Any]:
        chat = {"id": user_id, "type": "private", "first_name": BENCH_USER_NAME}
        self.emulator.register_chat(chat)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": self.user(user_id),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": next(self._update_ids), "message": message}

    def inline_query(self, user_id: int, query: str) -> dict[str, Any]:
        update_id = next(self._update_ids)
        return {
            "update_id": update_id,
            "inline_query": {
                "id": str(update_id),
                "from": self.user(user_id),
                "query": query,
                "offset": "",
                "chat_type": "private",
            },
        }

    def press(self, user_id: int, shown: dict[str, Any], data: str) -> dict[str, Any]:
        update_id = next(self._update_ids)
        return {
            "update_id": update_id,
            "callback_query": {
                "id": str(update_id),
                "from": self.user(user_id),
                "message": shown,
                "chat_instance": "bench",
                "data": data,
            },
        }

    async def process(self, data: dict[str, Any]) -> float:
        """Handle one update end to end; the seconds it took."""
        update = Update.de_json(data, self.application.bot)
        started = time.perf_counter()
        await self.application.process_update(update)
        return time.perf_counter() - started
