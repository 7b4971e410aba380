"""A minimal, fast Bot API server for the benchmarks, run in a process of its own.

It answers ``/bot<token>/<method>`` as Telegram would for what the benchmarks send
(``getMe``, ``sendMessage``, anything else with ``true``), counts every call, and, with
``--limits``, enforces Telegram's flood limits scaled by ``--scale``:

- about 30 messages a second overall (1000 a second for paid broadcasts,
  ``allow_paid_broadcast``, which are not scaled: they are the real limit already);
- 1 message a second in one private chat;
- 20 messages a minute in one group or channel (negative chat ids).

Each limit is a token bucket holding one period's worth (a second overall and per private
chat, a minute per group), the usual reading of "N per period". A message over a limit is
answered 429 with ``retry_after`` (whole seconds, as Telegram sends it) and not counted as
sent. With ``--round-trip-ms``, every Bot API call is answered that long after it
arrives, as Telegram's answers come back over a network. ``GET /stats`` returns the
counters; ``POST /reset`` clears them.

For the burst benchmark (bench/burst.py) it also plays the users: ``POST /burst``
queues a ``/start`` message from each of N new users (all at once, or ``rate`` a
second), served by ``getUpdates`` as Telegram serves them (long polling, offsets);
when the bot's reply to a user carries an inline button, the user taps it (a
``callback_query`` for the first button). A user is done when the tap has been
answered (``answerCallbackQuery``) and a message followed it. ``GET /burst`` returns
each user's times; every other ``sendMessage`` is counted as a delivery, with its time.

The test suite's server (tests/botapi.py) checks far more and is too slow to measure
against; this one only does what a benchmark needs to be honest.

Run: ``python -m bench.botapi_server [--limits] [--scale 10] [--round-trip-ms 50]``; it
prints its port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

BOT_ID = 4242
JSON_HEADERS = {"Content-Type": "application/json"}


class TokenBucket:
    """``capacity`` messages at once, refilled at ``rate`` a second."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def wait(self, now: float) -> float:
        """Seconds until one message fits (0: it fits now)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


@dataclass
class FloodLimits:
    scale: float
    overall: TokenBucket
    paid: TokenBucket
    chats: dict[int, TokenBucket] = field(default_factory=dict)

    @classmethod
    def telegram(cls, scale: float) -> FloodLimits:
        now = time.monotonic()
        return cls(scale, TokenBucket(30 * scale, 30 * scale, now), TokenBucket(1000, 1000, now))

    def admit(self, chat_id: int, paid: bool) -> float:
        """0 if the message may go now (and it is counted), else seconds to wait."""
        now = time.monotonic()
        chat = self.chats.get(chat_id)
        if chat is None:
            if chat_id < 0:  # groups, supergroups and channels: 20 a minute
                chat = TokenBucket(20 * self.scale / 60, 20, now)
            else:
                chat = TokenBucket(1 * self.scale, 1, now)
            self.chats[chat_id] = chat
        overall = self.paid if paid else self.overall
        wait = max(chat.wait(now), overall.wait(now))
        if wait == 0:
            chat.take()
            overall.take()
        return wait


@dataclass
class BurstUser:
    """One user of a burst: when each of their updates was queued and answered."""

    chat_id: int
    start_queued: float | None = None
    start_answered: float | None = None
    press_queued: float | None = None
    press_answered: float | None = None  # answerCallbackQuery
    after_press: float | None = None  # the first message to the chat after the tap

    @property
    def done(self) -> bool:
        return self.press_answered is not None and self.after_press is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "chat_id": self.chat_id,
            "start_queued": self.start_queued,
            "start_answered": self.start_answered,
            "press_queued": self.press_queued,
            "press_done": (
                max(self.press_answered or 0.0, self.after_press or 0.0) if self.done else None
            ),
        }


class UpdateFeed:
    """Updates waiting for ``getUpdates``, as Telegram keeps them: by id, until confirmed."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []
        self.next_id = 1
        self.arrived = asyncio.Event()
        self.polls = 0

    def add(self, update: dict[str, Any]) -> None:
        update["update_id"] = self.next_id
        self.next_id += 1
        self.pending.append(update)
        self.arrived.set()

    async def take(self, offset: int, limit: int, wait: float) -> list[dict[str, Any]]:
        self.polls += 1
        if offset:
            self.pending = [u for u in self.pending if u["update_id"] >= offset]
        if not self.pending and wait > 0:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(wait, 1.0))
        return self.pending[: max(1, min(limit, 100))]


class Burst:
    """The users of ``POST /burst`` and the updates they send."""

    def __init__(self, feed: UpdateFeed) -> None:
        self.feed = feed
        self.users: dict[int, BurstUser] = {}
        self.callbacks: dict[str, int] = {}  # callback query id → chat
        self.started: float | None = None
        self._feeder: asyncio.Task[None] | None = None

    def begin(self, first_chat_id: int, users: int, text: str, rate: float) -> None:
        self.started = time.monotonic()
        chat_ids = [first_chat_id + n for n in range(users)]
        for chat_id in chat_ids:
            self.users[chat_id] = BurstUser(chat_id)
        if rate <= 0:
            for chat_id in chat_ids:
                self._start(chat_id, text)
        else:
            self._feeder = asyncio.get_running_loop().create_task(self._paced(chat_ids, text, rate))

    async def _paced(self, chat_ids: list[int], text: str, rate: float) -> None:
        began = time.monotonic()
        for n, chat_id in enumerate(chat_ids):
            delay = began + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._start(chat_id, text)

    def _start(self, chat_id: int, text: str) -> None:
        user = self.users[chat_id]
        user.start_queued = time.monotonic()
        command = text.split()[0]
        self.feed.add(
            {
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private", "first_name": "Burst"},
                    "from": _user(chat_id),
                    "text": text,
                    "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
                }
            }
        )

    def replied(self, chat_id: int, message: dict[str, Any], markup: Any) -> bool:
        """A message to ``chat_id``; True if it was to a user of the burst."""
        user = self.users.get(chat_id)
        if user is None:
            return False
        now = time.monotonic()
        if user.start_answered is None:
            user.start_answered = now
            data = _first_button(markup)
            if data is not None:
                user.press_queued = now
                query_id = f"burst-{chat_id}"
                self.callbacks[query_id] = chat_id
                self.feed.add(
                    {
                        "callback_query": {
                            "id": query_id,
                            "from": _user(chat_id),
                            "message": message,
                            "chat_instance": f"burst-{chat_id}",
                            "data": data,
                        }
                    }
                )
        elif user.press_queued is not None and user.after_press is None:
            user.after_press = now
        return True

    def answered(self, query_id: str) -> None:
        chat_id = self.callbacks.get(query_id)
        if chat_id is not None and self.users[chat_id].press_answered is None:
            self.users[chat_id].press_answered = time.monotonic()

    def report(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "users": len(self.users),
            "done": sum(user.done for user in self.users.values()),
            "timeline": [user.as_dict() for user in self.users.values()],
        }


def _first_button(markup: Any) -> str | None:
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except json.JSONDecodeError:
            return None
    if not isinstance(markup, dict):
        return None
    for row in markup.get("inline_keyboard", []):
        for button in row:
            if "callback_data" in button:
                return str(button["callback_data"])
    return None


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": "Burst", "language_code": "en"}


class BenchBotApi:
    def __init__(self, limits_scale: float | None, round_trip_seconds: float = 0.0) -> None:
        self.limits_scale = limits_scale
        self.round_trip_seconds = round_trip_seconds
        self.feed = UpdateFeed()
        self.reset()

    def reset(self) -> None:
        self.calls: Counter[str] = Counter()
        self.sent = 0
        self.too_many = 0
        self.first_sent: float | None = None
        self.last_sent: float | None = None
        self.limits = (
            FloodLimits.telegram(self.limits_scale) if self.limits_scale is not None else None
        )
        self.cpu_at_reset = time.process_time()
        self.burst = Burst(self.feed)
        self.deliveries: list[float] = []  # when each message outside a burst was taken

    def stats(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "sent": self.sent,
            "too_many_requests": self.too_many,
            "sending_seconds": (
                self.last_sent - self.first_sent
                if self.first_sent is not None and self.last_sent is not None
                else 0.0
            ),
            "cpu_seconds": time.process_time() - self.cpu_at_reset,
            "limits_scale": self.limits_scale,
        }

    async def handle(self, request: web.BaseRequest) -> web.Response:
        path = request.path
        if path == "/stats":
            return _answer(200, self.stats())
        if path == "/reset":
            self.reset()
            return _answer(200, {"ok": True})
        if path == "/burst":
            return await self.burst_request(request)
        if path == "/deliveries":
            return _answer(200, {"times": self.deliveries, "polls": self.feed.polls})
        method = path.rpartition("/")[2]
        self.calls[method] += 1
        parameters = await _parameters(request)
        if method == "getUpdates":
            return await self.get_updates(parameters)
        if self.round_trip_seconds:
            await asyncio.sleep(self.round_trip_seconds)
        if method == "sendMessage":
            return self.send_message(parameters)
        if method == "getMe":
            return _answer(200, {"ok": True, "result": _bot_user()})
        if method == "answerCallbackQuery":
            self.burst.answered(parameters.get("callback_query_id", ""))
        return _answer(200, {"ok": True, "result": True})

    async def burst_request(self, request: web.BaseRequest) -> web.Response:
        if request.method == "GET":
            return _answer(200, self.burst.report())
        body = await request.json()
        self.burst.begin(
            int(body["first_chat_id"]), int(body["users"]), str(body["text"]), float(body["rate"])
        )
        return _answer(200, {"ok": True})

    async def get_updates(self, parameters: dict[str, str]) -> web.Response:
        updates = await self.feed.take(
            int(parameters.get("offset") or 0),
            int(parameters.get("limit") or 100),
            float(parameters.get("timeout") or 0),
        )
        return _answer(200, {"ok": True, "result": updates})

    def send_message(self, parameters: dict[str, str]) -> web.Response:
        chat_id = int(parameters["chat_id"])
        if self.limits is not None:
            paid = parameters.get("allow_paid_broadcast") in ("true", "True", "1")
            wait = self.limits.admit(chat_id, paid)
            if wait > 0:
                self.too_many += 1
                retry_after = max(1, math.ceil(wait))
                return _answer(
                    429,
                    {
                        "ok": False,
                        "error_code": 429,
                        "description": f"Too Many Requests: retry after {retry_after}",
                        "parameters": {"retry_after": retry_after},
                    },
                )
        self.sent += 1
        now = time.monotonic()
        if self.first_sent is None:
            self.first_sent = now
        self.last_sent = now
        chat_type = "private" if chat_id > 0 else "group"
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        message = {
            "message_id": self.sent,
            "date": int(time.time()),
            "chat": chat,
            "text": parameters.get("text", ""),
        }
        if chat_type == "private":  # as Telegram describes a user's chat
            chat["first_name"] = "Burst"
        if not self.burst.replied(chat_id, message, parameters.get("reply_markup")):
            self.deliveries.append(now)
        return _answer(200, {"ok": True, "result": message})


def _bot_user() -> dict[str, Any]:
    return {
        "id": BOT_ID,
        "is_bot": True,
        "first_name": "Bench",
        "username": "bench_bot",
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
    }


async def _parameters(request: web.BaseRequest) -> dict[str, str]:
    if request.content_type == "application/json":
        body = await request.json()
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raw = await request.read()
    return dict(parse_qsl(raw.decode())) if raw else dict(request.query)


def _answer(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), headers=JSON_HEADERS)


async def serve(port: int, limits_scale: float | None, round_trip_seconds: float = 0.0) -> None:
    api = BenchBotApi(limits_scale, round_trip_seconds)
    server = web.Server(api.handle, access_log=None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, "127.0.0.1", port, backlog=1024)
    bound = listener.sockets[0].getsockname()[1]
    print(json.dumps({"port": bound, "pid": os.getpid()}), flush=True)
    async with listener:
        await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--limits", action="store_true", help="enforce Telegram's flood limits")
    parser.add_argument("--scale", type=float, default=10.0, help="limits multiplied by this")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument(
        "--round-trip-ms", type=float, default=0.0, help="answer each call this much later"
    )
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    limits_scale = args.scale if args.limits else None
    asyncio.run(serve(args.port, limits_scale, args.round_trip_ms / 1000))


if __name__ == "__main__":
    main()
