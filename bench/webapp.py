"""The Mini App's JSON endpoints in the latency benchmark (``bench.latency``).

Each request goes through the real Starlette routes of :class:`bot.webapp.api.WebAppApi`
over the benchmark's application (its services, database and emulated Bot API), called
as an ASGI app in process: routing, the initData check, the handler, the queries and
the JSON encoding are timed, and no socket. Every request is signed as Telegram signs
initData, for a user among the seeded chats.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.types import Message

from bench.catalogue import Seeded
from bot.clock import Clock
from bot.context import BotApplication
from bot.webapp.api import WebAppApi
from bot.webapp.init_data import sign_init_data

READ_KINDS = ("app: session", "app: calendar", "app: event card", "app: chairs", "app: me")
WRITE_KINDS = ("app: follow", "app: settings")
KINDS = READ_KINDS + WRITE_KINDS
TARGET_P99_MS = 20.0
YEARS = (2026, 2027)
# The calendars asked for: a year of everything, or of one of these organisations.
ORGANISATIONS = (None, "bench-0000", "bench-0001")
# Requests per calendar in the warm-up: enough to meet every language of the seeded chats.
WARM_UP_PER_CALENDAR = 15
ZONES = ("Asia/Almaty", "Europe/Moscow", "Asia/Shanghai")


@dataclass(frozen=True)
class AppRequest:
    method: str
    url: str  # path and query
    user_id: int
    body: Any = None


class AppRequestFailed(Exception):
    pass


class InProcessApp:
    """The Mini App's routes over a running application, called without a network."""

    def __init__(self, application: BotApplication, clock: Clock) -> None:
        services = application.bot_data.services
        self.token = application.bot.token
        self.api = WebAppApi(services, application.bot, self.token)
        self.asgi = Starlette(routes=self.api.routes())
        self.clock = clock
        self._signed: dict[int, str] = {}

    def authorization(self, user_id: int) -> str:
        # As the page sends it: one initData per user for the whole session.
        found = self._signed.get(user_id)
        if found is None:
            user = {"id": user_id, "first_name": "Bench", "language_code": "en"}
            found = sign_init_data(self.token, user=user, auth_date=self.clock.now())
            self._signed[user_id] = found
        return f"tma {found}"

    async def call(self, request: AppRequest) -> tuple[int, bytes]:
        parts = urlsplit(request.url)
        body = json.dumps(request.body).encode() if request.body is not None else b""
        headers = [
            (b"authorization", self.authorization(request.user_id).encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": "http",
            "path": parts.path,
            "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if delivered:
                await asyncio.sleep(3600)  # the client stays connected
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = 0
        chunks: list[bytes] = []

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        await self.asgi(scope, receive, send)
        return status, b"".join(chunks)

    async def timed(self, request: AppRequest) -> float:
        """Seconds one request took; a refusal voids the run (raised)."""
        started = time.perf_counter()
        status, body = await self.call(request)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise AppRequestFailed(f"{request.method} {request.url}: {status} {body[:200]!r}")
        return elapsed


class AppWorkload:
    """Requests of each kind the page makes, from random seeded users."""

    def __init__(self, seeded: Seeded, event_keys: Sequence[str], rng: random.Random) -> None:
        self.seeded = seeded
        self.event_keys = list(event_keys)
        self.rng = rng

    def _user(self) -> int:
        return self.rng.choice(self.seeded.chat_ids)

    def _calendar(self, year: int, organisation: str | None, month: int | None) -> AppRequest:
        """A month's calendar, as the page asks for it (``month`` None: the whole year)."""
        query = f"year={year}" + (f"&org={organisation}" if organisation else "")
        query += f"&month={month}" if month else ""
        return AppRequest("GET", f"/app/api/calendar?{query}", self._user())

    def warm_up(self) -> list[AppRequest]:
        """Every calendar asked for, in each language: the first of a year after the
        catalogue changed gathers the year (a few hundred ms, once per revision, as the
        catalogue's own lists are read once), which is not what the p99 measures."""
        return [
            self._calendar(year, organisation, None)
            for year in YEARS
            for organisation in ORGANISATIONS
            for _ in range(WARM_UP_PER_CALENDAR)
        ]

    def builders(self) -> dict[str, Callable[[], AppRequest]]:
        rng = self.rng

        def calendar() -> AppRequest:
            month = rng.randint(1, 12)
            return self._calendar(rng.choice(YEARS), rng.choice(ORGANISATIONS), month)

        builders: dict[str, Callable[[], AppRequest]] = {
            "app: session": lambda: AppRequest("GET", "/app/api/session", self._user()),
            "app: calendar": calendar,
            "app: event card": lambda: AppRequest(
                "GET", f"/app/api/events/{rng.choice(self.event_keys)}", self._user()
            ),
            "app: chairs": lambda: AppRequest("GET", "/app/api/chairs", self._user()),
            "app: me": lambda: AppRequest("GET", "/app/api/me", self._user()),
            "app: follow": lambda: AppRequest(
                "POST",
                "/app/api/follow",
                self._user(),
                {"scope": "event", "key": rng.choice(self.event_keys)},
            ),
            "app: settings": lambda: AppRequest(
                "POST", "/app/api/settings", self._user(), {"timezone": rng.choice(ZONES)}
            ),
        }
        assert tuple(builders) == KINDS
        return builders
