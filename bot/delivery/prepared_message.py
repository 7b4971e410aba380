"""One rendered message for many chats, encoded once.

A fan-out sends the same reminder text and button to thousands of chats. Through
``Bot.send_message`` every send would rebuild and re-encode the parameters and parse
the answer into a ``Message`` with its ``Chat`` and ``User``, which costs more CPU than
the send's database work. Here the parameters are encoded once (as PTB's own
``RequestParameter``s, which any transport reads), each send adds only its
``chat_id``, and the answer is read for its ``message_id``. On our aiohttp transport
the whole JSON body is encoded once too and posted as it is
(``AiohttpRequest.post_encoded``); on any transport every Bot API error goes through
python-telegram-bot's ``BaseRequest``, so it becomes the same exception as through
``Bot.send_message`` (``RetryAfter``, ``ChatMigrated``, ``Forbidden``, ``BadRequest``,
``NetworkError``, ``TimedOut``).
"""

from __future__ import annotations

import json
from typing import Any

from telegram import Bot, TelegramObject
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from bot.transports.aiohttp_request import AiohttpRequest


class PreparedMessage:
    """``sendMessage`` parameters shared by every chat: HTML text, no link preview, a
    keyboard if any, and ``allow_paid_broadcast`` when asked."""

    __slots__ = ("_body_tail", "_parameters")

    def __init__(
        self,
        text: str,
        keyboard: TelegramObject | None = None,
        *,
        allow_paid_broadcast: bool = False,
    ) -> None:
        values: dict[str, Any] = {
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        if keyboard is not None:
            values["reply_markup"] = keyboard.to_dict()
        if allow_paid_broadcast:
            values["allow_paid_broadcast"] = True
        # Encoded once, as PTB encodes them: a string value is sent as it is.
        self._parameters = [
            RequestParameter(name, value if isinstance(value, str) else json.dumps(value), None)
            for name, value in values.items()
        ]
        # The JSON body PTB would send, less its opening brace: a chat id goes in front.
        self._body_tail = RequestData(self._parameters).json_payload[1:]

    def request_for(self, chat_id: int) -> RequestData:
        return RequestData(
            [RequestParameter("chat_id", str(int(chat_id)), None), *self._parameters]
        )

    def body_for(self, chat_id: int) -> bytes:
        """The JSON body of ``request_for(chat_id)``, byte for byte."""
        return b'{"chat_id": "%d", ' % int(chat_id) + self._body_tail

    async def send(self, bot: Bot, chat_id: int) -> int:
        """Send to ``chat_id`` through ``bot``'s transport; Telegram's message id."""
        url = f"{bot.base_url}/sendMessage"
        request = bot.request
        if isinstance(request, AiohttpRequest):
            result = await request.post_encoded(url, self.body_for(chat_id))
        else:
            result = await request.post(url, self.request_for(chat_id))
        assert isinstance(result, dict), result
        return int(result["message_id"])
