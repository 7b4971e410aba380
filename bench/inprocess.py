"""The real application driven in process: update JSON in, Bot API calls out.

The application is the one ``summitbot run`` builds (:func:`bot.app.build_application`),
with the in-process Bot API emulator of ``summitbot console`` in place of the network,
so a timing covers the handlers, the database, the rendering and the reply, and
nothing else.

The emulator's own checks of an inline answer (Telegram's HTML rules for every card,
decoding the JSON the bot sent) are test infrastructure, not the bot's work, and were
about a sixth of an inline query's time: an ``answerInlineQuery`` is answered ``True``
at once, as Telegram does, and checked right after the timer stops (:meth:`InProcessBot.
process`); a refused answer is logged at ERROR, which voids a benchmark as a failing
handler does. Encoding the request is still timed: a real transport does that too.
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
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import ODVInput
from telegram.request import RequestData

from bench.catalogue import BENCH_USER_NAME
from bot.app import build_application, running
from bot.clock import FixedClock
from bot.context import BotApplication
from bot.transports.emulated import CallObserver, EmulatedRequest
from bot.transports.emulator import ApiError, BotApiEmulator, decode_parameters
from config.settings import Settings

OPERATOR_ID = 777
log = logging.getLogger(__name__)


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


class CheckAfterwardsRequest(EmulatedRequest):
    """Answers ``answerInlineQuery`` at once and lets the emulator check it later
    (:meth:`check_deferred`); every other method as :class:`EmulatedRequest` does."""

    DEFERRED = "answerInlineQuery"  # Telegram's answer is always True: nothing waits on it

    def __init__(self, emulator: BotApiEmulator, observer: CallObserver | None = None) -> None:
        super().__init__(emulator, observer)
        self.deferred: list[tuple[str, dict[str, Any]]] = []

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        api_method = url.rsplit("/", 1)[-1]
        if api_method == self.DEFERRED and request_data is not None:
            # Encoded here, as a real transport would (timed); checked later (not timed).
            self.deferred.append((api_method, request_data.json_parameters))
            return 200, b'{"ok":true,"result":true}'
        return await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )

    def check_deferred(self) -> list[ApiError]:
        """Let the emulator check the calls answered early; the errors it would have
        answered (each also logged at ERROR)."""
        refused: list[ApiError] = []
        calls, self.deferred = self.deferred, []
        for api_method, raw in calls:
            try:
                result = self.emulator.call(api_method, raw)
            except ApiError as exc:
                log.error("the Bot API would have refused %s: %s", api_method, exc.description)
                refused.append(exc)
                continue
            if self.observer is not None:
                self.observer(api_method, decode_parameters(raw), result)
        return refused


class InProcessBot:
    """One application and its emulated Bot API; remembers the last message per chat."""

    def __init__(self, settings: Settings, clock: FixedClock) -> None:
        self.emulator = BotApiEmulator()
        self.calls: Counter[str] = Counter()
        self.last_message: dict[int, dict[str, Any]] = {}
        self.request = CheckAfterwardsRequest(self.emulator, self._observe)
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
        """Handle one update end to end; the seconds it took (the emulator's checks of
        an inline answer run after the timer stops, see the module's docstring)."""
        update = Update.de_json(data, self.application.bot)
        started = time.perf_counter()
        await self.application.process_update(update)
        elapsed = time.perf_counter() - started
        self.request.check_deferred()
        return elapsed
