"""The aiohttp transport on its own: what a local server sees, and the errors the bot gets.

A ``Bot`` on :class:`AiohttpRequest` must behave like one on PTB's HTTPX transport:
time-outs are ``TimedOut``, a server that is not there is a ``NetworkError``, and
Telegram's error answers become PTB's exceptions (PTB maps the status and body this
transport returns).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import RequestData

from bot.delivery.prepared_message import PreparedMessage
from bot.transports.aiohttp_request import AiohttpRequest
from tests.botapi import LocalBotApi
from tests.conftest import TEST_TOKEN

CHAT = 5001
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PlainServer:
    """An HTTP server on 127.0.0.1 that answers every path with ``handler`` and notes
    which client connection (its port) each request came on."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.client_ports: list[int] = []
        self.connections: list[asyncio.BaseTransport] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        self.client_ports.append(request.transport.get_extra_info("peername")[1])
        if request.transport not in self.connections:
            self.connections.append(request.transport)
        return await self.handler(request)

    async def __aenter__(self) -> PlainServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        # aiohttp annotates ``_server`` as an AbstractServer, which has no sockets; a
        # TCPSite's is the asyncio.Server that ``loop.create_server`` returned.
        server = cast(asyncio.Server | None, site._server)
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def url(self, method: str = "getMe") -> str:
        return f"http://127.0.0.1:{self.port}/bot{TEST_TOKEN}/{method}"


async def answer_true(_: web.Request) -> web.Response:
    return web.json_response({"ok": True, "result": True})


def slow(seconds: float) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        await asyncio.sleep(seconds)
        return web.json_response({"ok": True, "result": True})

    return handler


@pytest.fixture
async def api_bot(bot_api: LocalBotApi) -> AsyncIterator[Bot]:
    """A plain PTB Bot on the aiohttp transport, talking to the test suite's Bot API."""
    bot_api.emulator.register_chat({"id": CHAT, "type": "private", "first_name": "Tester"})
    bot = Bot(TEST_TOKEN, base_url=bot_api.base_url, request=AiohttpRequest())
    async with bot:
        yield bot


async def test_a_message_and_its_buttons_reach_the_server(
    api_bot: Bot, bot_api: LocalBotApi
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Саммит", callback_data="e:sco")]])
    message = await api_bot.send_message(
        CHAT, "<b>Astana</b>, 3 July", parse_mode="HTML", reply_markup=keyboard
    )
    [call] = bot_api.sent_to(CHAT)
    assert call.text == "<b>Astana</b>, 3 July"
    assert call.buttons == [{"text": "Саммит", "callback_data": "e:sco"}]
    assert message.message_id > 0 and message.chat.id == CHAT


async def test_an_ics_file_arrives_intact_as_a_multipart_upload(
    api_bot: Bot, bot_api: LocalBotApi
) -> None:
    calendar = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nSUMMARY:Саммит ШОС — 上合\r\nEND:VCALENDAR\r\n"
    ).encode() + bytes(range(256))
    await api_bot.send_document(
        CHAT, InputFile(calendar, filename="summits.ics"), caption="Your calendar"
    )
    [call] = bot_api.sent_to(CHAT, "sendDocument")
    document = call.parameters["document"]
    assert document.filename == "summits.ics"
    assert document.content == calendar
    assert call.parameters["caption"] == "Your calendar"


@pytest.mark.parametrize(
    ("status", "description", "extra", "expected"),
    [
        (403, "Forbidden: bot was blocked by the user", {}, Forbidden),
        (400, "Bad Request: chat not found", {}, BadRequest),
        (429, "Too Many Requests: retry after 7", {"retry_after": 7}, RetryAfter),
        (400, "Bad Request: group chat was upgraded", {"migrate_to_chat_id": -1001}, ChatMigrated),
        (502, "Bad Gateway", {}, NetworkError),
    ],
)
@pytest.mark.parametrize("sender", ["send_message", "prepared message"])
async def test_telegram_errors_become_ptb_exceptions(
    api_bot: Bot,
    bot_api: LocalBotApi,
    status: int,
    description: str,
    extra: dict[str, int],
    expected: type[TelegramError],
    sender: str,
) -> None:
    """Through PTB's ``Bot`` and through a fan-out's prepared message (its lean path)."""
    bot_api.fail("sendMessage", status, description, **extra)
    with pytest.raises(expected) as raised:
        if sender == "send_message":
            await api_bot.send_message(CHAT, "hello")
        else:
            await PreparedMessage("hello").send(api_bot, CHAT)
    error = raised.value
    if isinstance(error, RetryAfter):
        assert error.retry_after in (7, dt.timedelta(seconds=7))
    elif isinstance(error, ChatMigrated):
        assert error.new_chat_id == -1001
    else:
        # PTB drops Telegram's "Bad Request: " and capitalises what follows.
        assert description.rpartition(": ")[2].lower() in error.message.lower()
    assert bot_api.sent_to(CHAT) == []


async def test_a_prepared_message_posts_what_send_message_would(
    api_bot: Bot, bot_api: LocalBotApi
) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Саммит", callback_data="e:sco")]])
    prepared = PreparedMessage("<b>Астана</b>, 3 July", keyboard, allow_paid_broadcast=True)
    assert prepared.body_for(CHAT) == prepared.request_for(CHAT).json_payload
    message_id = await prepared.send(api_bot, CHAT)
    [call] = bot_api.sent_to(CHAT)
    assert call.text == "<b>Астана</b>, 3 July"
    assert call.buttons == [{"text": "Саммит", "callback_data": "e:sco"}]
    assert call.parameters["allow_paid_broadcast"] is True
    assert call.parameters["parse_mode"] == "HTML"
    assert message_id > 0


async def test_a_prepared_message_times_out_and_fails_as_a_send_does() -> None:
    async with PlainServer(slow(2.0)) as server, AiohttpRequest(read_timeout=0.2) as request:
        bot = Bot(TEST_TOKEN, base_url=f"http://127.0.0.1:{server.port}/bot", request=request)
        with pytest.raises(TimedOut):
            await PreparedMessage("hello").send(bot, CHAT)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with AiohttpRequest() as request:
        bot = Bot(TEST_TOKEN, base_url=f"http://127.0.0.1:{port}/bot", request=request)
        with pytest.raises(NetworkError) as raised:
            await PreparedMessage("hello").send(bot, CHAT)
    assert not isinstance(raised.value, TimedOut)


async def test_a_wrong_token_is_an_invalid_token(bot_api: LocalBotApi) -> None:
    bot = Bot("42:wrong", base_url=bot_api.base_url, request=AiohttpRequest())
    try:
        with pytest.raises(InvalidToken):
            await bot.initialize()  # asks getMe
    finally:
        await bot.shutdown()


async def test_an_answer_slower_than_the_read_timeout_is_timed_out() -> None:
    async with PlainServer(slow(2.0)) as server:
        request = AiohttpRequest(read_timeout=0.2)
        async with request:
            started = asyncio.get_running_loop().time()
            with pytest.raises(TimedOut):
                await request.post(server.url(), RequestData())
            assert asyncio.get_running_loop().time() - started < 1.5


async def test_a_read_timeout_given_for_one_call_wins_over_the_default() -> None:
    async with PlainServer(slow(0.5)) as server, AiohttpRequest(read_timeout=0.1) as request:
        assert await request.post(server.url(), RequestData(), read_timeout=3.0) is True
        with pytest.raises(TimedOut):
            await request.post(server.url(), RequestData(), read_timeout=0.1)


async def test_waiting_longer_than_the_pool_timeout_for_a_connection_is_timed_out() -> None:
    async with (
        PlainServer(slow(1.0)) as server,
        # Waiting for a free connection and opening one share aiohttp's connect bound.
        AiohttpRequest(connection_pool_size=1, pool_timeout=0.1, connect_timeout=0.1) as request,
    ):
        busy = asyncio.create_task(request.post(server.url(), RequestData()))
        await asyncio.sleep(0.1)
        with pytest.raises(TimedOut):
            await request.post(server.url(), RequestData())
        assert await busy is True


async def test_a_server_that_is_not_there_is_a_network_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with AiohttpRequest() as request:
        with pytest.raises(NetworkError) as raised:
            await request.post(f"http://127.0.0.1:{port}/bot{TEST_TOKEN}/getMe", RequestData())
    assert not isinstance(raised.value, TimedOut)


async def test_sequential_calls_reuse_one_kept_alive_connection() -> None:
    async with PlainServer(answer_true) as server, AiohttpRequest() as request:
        for _ in range(20):
            assert await request.post(server.url(), RequestData()) is True
    assert len(server.client_ports) == 20
    assert len(set(server.client_ports)) == 1


async def test_concurrent_calls_stay_within_the_connection_pool() -> None:
    async with PlainServer(slow(0.05)) as server:
        async with AiohttpRequest(connection_pool_size=4, pool_timeout=5.0) as request:
            results = await asyncio.gather(
                *(request.post(server.url(), RequestData()) for _ in range(40))
            )
        assert results == [True] * 40
        assert len(set(server.client_ports)) == 4


async def test_shutdown_closes_the_connections() -> None:
    async with PlainServer(answer_true) as server:
        request = AiohttpRequest()
        await request.initialize()
        await request.post(server.url(), RequestData())
        [connection] = server.connections
        assert not connection.is_closing()
        await request.shutdown()
        for _ in range(50):
            if connection.is_closing():
                break
            await asyncio.sleep(0.02)
        assert connection.is_closing()
        with pytest.raises(RuntimeError, match="not initialized"):
            await request.do_request(server.url(), "POST")


async def test_a_proxy_named_in_the_environment_carries_the_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY is honoured as with PTB's HTTPX transport, and NO_PROXY exempts a host."""
    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.host}{request.path}")
        return web.json_response({"ok": True, "result": True})

    for name in ("HTTPS_PROXY", "https_proxy", "http_proxy", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with PlainServer(proxy) as server:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("NO_PROXY", "exempt.invalid")
        async with AiohttpRequest() as request:
            for _ in range(2):
                url = f"http://api.summitbot.invalid/bot{TEST_TOKEN}/getMe"
                assert await request.post(url, RequestData()) is True
            with pytest.raises(NetworkError):  # straight to a host that does not exist
                await request.post(f"http://exempt.invalid/bot{TEST_TOKEN}/getMe", RequestData())
    assert seen == [f"POST api.summitbot.invalid/bot{TEST_TOKEN}/getMe"] * 2
