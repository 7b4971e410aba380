"""A local Bot API server on 127.0.0.1 for end-to-end tests.

It speaks Telegram's HTTP API (``/bot<token>/<method>``, form, multipart or JSON
bodies, ``{"ok": …}`` answers and Telegram's error format), serves updates the
test pushes through ``getUpdates`` long polling, records every call, and can be
told to fail the next calls of a method (403, 429 with ``retry_after``, 5xx).
Method results come from the same emulator the console uses.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web

from bot.transports.emulator import (
    ApiError,
    BotApiEmulator,
    UploadedFile,
    decode_parameters,
    resolve_files,
)


@dataclass(frozen=True)
class ApiCall:
    """One request the bot made."""

    method: str
    parameters: dict[str, Any]
    status: int = 200  # the HTTP status the server answered with
    at: float = field(default_factory=time.monotonic)

    @property
    def chat_id(self) -> int | None:
        value = self.parameters.get("chat_id")
        return int(value) if value is not None else None

    @property
    def text(self) -> str:
        return str(self.parameters.get("text", ""))

    @property
    def buttons(self) -> list[dict[str, Any]]:
        markup = self.parameters.get("reply_markup") or {}
        return [button for row in markup.get("inline_keyboard", []) for button in row]

    def button(self, label_part: str) -> dict[str, Any]:
        for button in self.buttons:
            if label_part in button["text"]:
                return button
        raise AssertionError(
            f"no button with {label_part!r} in {[b['text'] for b in self.buttons]}"
        )


@dataclass
class _Fault:
    error: ApiError
    times: int


class LocalBotApi:
    """The server. ``base_url`` goes into the bot's ``TELEGRAM_BASE_URL`` setting."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.emulator = BotApiEmulator()
        self.calls: list[ApiCall] = []
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._new_update = asyncio.Event()
        self._new_call = asyncio.Event()
        self._faults: dict[str, list[_Fault]] = {}
        self._runner: web.AppRunner | None = None
        self._index_at_push: dict[int, int] = {}
        self._closing = False
        # Documents "uploaded" by tests, served by getFile and /file/bot<token>/<path>.
        self.files: dict[str, bytes] = {}
        self.downloads: list[str] = []
        # Called with every recorded call (after it was answered): a test's trigger.
        self.on_call: Callable[[ApiCall], None] | None = None
        # sendMessage answers after this long (a network's round trip); how many at most
        # were being answered at once.
        self.send_delay = 0.0
        self.sending = 0
        self.most_sending_at_once = 0
        self._file_ids = itertools.count(1)
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def start(self) -> None:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        # aiohttp annotates ``_server`` as an AbstractServer, which has no sockets; a
        # TCPSite's is the asyncio.Server that ``loop.create_server`` returned.
        server = cast(asyncio.Server | None, site._server)
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._closing = True
        self._new_update.set()  # release a long poll in progress
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what tests do ----------------------------------------------------------

    def fail(
        self,
        method: str,
        error_code: int,
        description: str,
        *,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail the way Telegram fails them."""
        parameters: dict[str, Any] = {}
        if retry_after is not None:
            parameters["retry_after"] = retry_after
        if migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = migrate_to_chat_id
        error = ApiError(error_code, description, parameters or None)
        self._faults.setdefault(method, []).append(_Fault(error, times))

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update (its ``update_id`` is assigned here) for the bot to fetch."""
        update = {"update_id": next(self._update_ids), **update}
        for kind in ("message", "edited_message", "channel_post"):
            if kind in update and "chat" in update[kind]:
                self.emulator.register_chat(update[kind]["chat"])
        self._index_at_push[update["update_id"]] = len(self.calls)
        self._updates.append(update)
        self._new_update.set()
        return update

    def message(
        self,
        text: str,
        *,
        chat_id: int = 5001,
        user_id: int | None = None,
        language_code: str | None = "en",
        chat_type: str = "private",
        title: str | None = None,
        as_chat: bool = False,
    ) -> dict[str, Any]:
        """Push a text message as a user would send it (commands get their entity)."""
        user_id = user_id if user_id is not None else chat_id
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "Tester"}
        if language_code:
            user["language_code"] = language_code
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = "Tester"
        else:
            chat["title"] = title or "Summit watchers"
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            "text": text,
        }
        if as_chat:  # an anonymous group admin, or a channel, writing as the chat
            message["sender_chat"] = chat
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self.push({"message": message})

    def press(self, shown: ApiCall, data: str, *, user_id: int | None = None) -> dict[str, Any]:
        """Push a press of a button under the message ``shown`` (``data`` may be forged)."""
        chat_id = shown.chat_id or 0
        stored = [
            m
            for (chat, _), m in self.emulator.messages.items()
            if chat == chat_id and m.text == shown.text
        ]
        assert stored, "the bot never sent that message"
        message = stored[-1].payload(self.emulator.chat(chat_id))
        user_id = user_id if user_id is not None else chat_id
        return self.push(
            {
                "callback_query": {
                    "id": str(next(self._update_ids) * 7919),
                    "from": {"id": user_id, "is_bot": False, "first_name": "Tester"},
                    "message": message,
                    "chat_instance": "test",
                    "data": data,
                }
            }
        )

    async def wait_for(
        self,
        predicate: Callable[[ApiCall], bool],
        *,
        after: int = 0,
        timeout: float = 10.0,
    ) -> ApiCall:
        """The first call from index ``after`` on that matches, waiting for it if need be."""
        deadline = asyncio.get_running_loop().time() + timeout
        index = after
        while True:
            while index < len(self.calls):
                call = self.calls[index]
                index += 1
                if predicate(call):
                    return call
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                seen = [(c.method, c.text[:60]) for c in self.calls[after:]]
                raise AssertionError(f"no matching call within {timeout}s; calls since: {seen}")
            self._new_call.clear()
            try:
                await asyncio.wait_for(self._new_call.wait(), remaining)
            except TimeoutError:
                continue

    async def reply_to(
        self, update: dict[str, Any], *, method: str = "sendMessage", timeout: float = 10.0
    ) -> ApiCall:
        """The bot's first ``method`` call to the update's chat after the update was pushed."""
        start = self._index_at_push.get(update["update_id"], 0)
        if method == "answerCallbackQuery":
            query_id = update["callback_query"]["id"]
            return await self.wait_for(
                lambda call: (
                    call.method == method
                    and str(call.parameters.get("callback_query_id")) == query_id
                ),
                after=start,
                timeout=timeout,
            )
        chat_id = _chat_of(update)
        return await self.wait_for(
            lambda call: call.method == method and call.chat_id == chat_id,
            after=start,
            timeout=timeout,
        )

    def sent_to(self, chat_id: int, method: str = "sendMessage") -> list[ApiCall]:
        """What reached the chat: successful calls only."""
        return [
            c for c in self.calls if c.method == method and c.chat_id == chat_id and c.status == 200
        ]

    # --- HTTP ---------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _json(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        method = request.match_info["method"]
        raw, files = await _read_parameters(request)
        parameters = resolve_files(decode_parameters(raw), files)
        if method == "getUpdates":
            return _json(200, {"ok": True, "result": await self._get_updates(parameters)})
        if method == "sendMessage" and self.send_delay:
            self.sending += 1
            self.most_sending_at_once = max(self.most_sending_at_once, self.sending)
            try:
                await asyncio.sleep(self.send_delay)
            finally:
                self.sending -= 1
        status, body = self._answer(method, raw, files)
        call = ApiCall(method, parameters, status)
        self.calls.append(call)
        self._new_call.set()
        if self.on_call is not None:
            self.on_call(call)
        return _json(status, body)

    def _answer(
        self, method: str, raw: dict[str, Any], files: dict[str, UploadedFile]
    ) -> tuple[int, dict[str, Any]]:
        if method == "getFile":
            return self._get_file(str(raw.get("file_id", "")))
        faults = self._faults.get(method)
        if faults:
            fault = faults[0]
            fault.times -= 1
            if fault.times <= 0:
                faults.pop(0)
            return fault.error.error_code, fault.error.payload()
        try:
            result = self.emulator.call(method, raw, files)
        except ApiError as exc:
            return exc.error_code, exc.payload()
        return 200, {"ok": True, "result": result}

    def _get_file(self, file_id: str) -> tuple[int, dict[str, Any]]:
        if file_id not in self.files:
            error = ApiError(400, "Bad Request: invalid file_id")
            return error.error_code, error.payload()
        result = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(self.files[file_id]),
            "file_path": f"documents/{file_id}",
        }
        return 200, {"ok": True, "result": result}

    async def _download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        file_id = request.match_info["path"].removeprefix("documents/")
        if file_id not in self.files:
            return web.Response(status=404)
        self.downloads.append(file_id)
        return web.Response(body=self.files[file_id])

    def document(
        self, name: str, content: bytes, *, user_id: int, size: int | None = None
    ) -> dict[str, Any]:
        """Push a document sent in a private chat (``size`` may claim another size)."""
        file_id = f"file{next(self._file_ids)}"
        self.files[file_id] = content
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Tester"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Tester", "language_code": "en"},
            "document": {
                "file_id": file_id,
                "file_unique_id": f"u{file_id}",
                "file_name": name,
                "mime_type": "application/yaml",
                "file_size": len(content) if size is None else size,
            },
        }
        return self.push({"message": message})

    async def _get_updates(self, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(parameters.get("offset") or 0)
        timeout = float(parameters.get("timeout") or 0)
        # Updates below the offset are confirmed: Telegram forgets them.
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout > 0 and not self._closing:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), timeout)
            except TimeoutError:
                return []
        return [u for u in self._updates if u["update_id"] >= offset][:100]


def _chat_of(update: dict[str, Any]) -> int:
    if "callback_query" in update:
        return int(update["callback_query"]["message"]["chat"]["id"])
    for kind in ("message", "edited_message", "channel_post"):
        if kind in update:
            return int(update[kind]["chat"]["id"])
    raise ValueError(f"update without a chat: {update}")


async def _read_parameters(
    request: web.Request,
) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Form fields (as PTB sends them) and uploaded files, from any body Telegram accepts."""
    if request.content_type == "application/json":
        body = await request.json()
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}, {}
    form = await request.post()
    values: dict[str, Any] = dict(request.query)
    files: dict[str, UploadedFile] = {}
    for name, value in form.items():
        if isinstance(value, web.FileField):
            files[name] = UploadedFile(value.filename, value.file.read())
        else:
            values[name] = value
    return values, files


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)
