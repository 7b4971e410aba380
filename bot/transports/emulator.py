"""An in-memory Bot API: answers methods with Telegram's JSON shapes and error format.

It keeps the messages it "sent" so edits work, and checks what Telegram checks
(HTML entities, the 4096-character limit, callback data size, "message is not
modified"), so a rendering mistake fails here as it would fail in Telegram.
The terminal console talks to it in process; the tests' local Bot API server
serves it over HTTP.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
BOT_USER = {
    "id": 100000001,
    "is_bot": True,
    "first_name": "Summit Bot",
    "username": "summit_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": True,
}

# Parameters PTB sends JSON-encoded in form fields.
_JSON_PARAMETERS = {
    "results",
    "reply_markup",
    "entities",
    "link_preview_options",
    "commands",
    "scope",
    "reply_parameters",
    "allowed_updates",
    "menu_button",
}
_ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "a",
    "code",
    "pre",
    "tg-spoiler",
    "span",
    "blockquote",
    "tg-emoji",
}


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": …, "description": …}``."""

    def __init__(
        self, error_code: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


class _TelegramHtml(HTMLParser):
    """Parses Telegram's HTML subset into plain text, rejecting what Telegram rejects."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.stack: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED_TAGS:
            self.error = f'unsupported start tag "{tag}"'
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.error = f'unexpected end tag "{tag}"'
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(text: str) -> str:
    """The plain text Telegram would show; :class:`ApiError` 400 where it would refuse."""
    # Telegram accepts only these named entities; html.parser knows many more.
    for match in itertools.islice(_entities(text), 10_000):
        if match not in ("&lt;", "&gt;", "&amp;", "&quot;") and not match.startswith("&#"):
            raise ApiError(400, f"Bad Request: can't parse entities: unsupported entity {match}")
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.error is None and parser.stack:
        parser.error = f'can\'t find end tag corresponding to start tag "{parser.stack[-1]}"'
    if parser.error:
        raise ApiError(400, f"Bad Request: can't parse entities: {parser.error}")
    return "".join(parser.text)


def _entities(text: str) -> Any:
    start = text.find("&")
    while start != -1:
        end = text.find(";", start)
        if end == -1 or end - start > 10 or " " in text[start:end]:
            raise ApiError(400, "Bad Request: can't parse entities: unclosed entity")
        yield text[start : end + 1]
        start = text.find("&", end)


def utf16_length(text: str) -> int:
    """Telegram counts lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def decode_parameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Form fields as PTB sends them (JSON-encoded where not plain strings) to values."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, str) and (name in _JSON_PARAMETERS or name.endswith("_id")):
            try:
                values[name] = json.loads(value)
                continue
            except json.JSONDecodeError:
                pass
        if value in ("true", "false"):
            values[name] = value == "true"
        else:
            values[name] = value
    return values


def _admin_rights(can_post: bool) -> dict[str, Any]:
    """The fields of a ChatMemberAdministrator in a channel."""
    rights = dict.fromkeys(
        (
            "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
            "can_restrict_members", "can_promote_members", "can_change_info",
            "can_invite_users", "can_post_stories", "can_edit_stories", "can_delete_stories",
            "can_edit_messages",
        ),
        True,
    )  # fmt: skip
    return {**rights, "can_be_edited": False, "is_anonymous": False, "can_post_messages": can_post}


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    content: bytes


def resolve_files(parameters: dict[str, Any], files: Mapping[str, UploadedFile]) -> dict[str, Any]:
    """Put uploaded files where their parameters are ("attach://name" or the part name)."""
    resolved = dict(parameters)
    for name, value in parameters.items():
        if isinstance(value, str) and value.startswith("attach://"):
            part = value.removeprefix("attach://")
            if part in files:
                resolved[name] = files[part]
    for name, upload in files.items():
        if name not in parameters:
            resolved[name] = upload
    return resolved


@dataclass
class StoredMessage:
    chat_id: int
    message_id: int
    text: str
    reply_markup: dict[str, Any] | None
    date: int

    def payload(self, chat: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_id": self.message_id,
            "date": self.date,
            "chat": chat,
            "from": BOT_USER,
            "text": self.text,
        }
        # Messages carry inline keyboards only; a reply keyboard belongs to the client.
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            body["reply_markup"] = self.reply_markup
        return body


@dataclass
class BotApiEmulator:
    """The state of a pretend Telegram: chats, sent messages, blocked chats."""

    chats: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[tuple[int, int], StoredMessage] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    commands: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # chat id -> user ids who administer it (getChatMember answers "creator" for them)
    admins: dict[int, set[int]] = field(default_factory=dict)
    # channel id -> (the bot's status there, whether it may post)
    bot_rights: dict[int, tuple[str, bool]] = field(default_factory=dict)
    # setWebhook's parameters as last registered (url, secret_token, allowed_updates)
    webhook: dict[str, Any] = field(default_factory=dict)
    # setChatMenuButton's buttons: by chat id, None for the default of private chats
    menu_buttons: dict[int | None, dict[str, Any]] = field(default_factory=dict)
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def chat(self, chat_id: int) -> dict[str, Any]:
        """The chat object for ``chat_id`` (private for positive ids unless registered)."""
        known = self.chats.get(chat_id)
        if known is not None:
            return known
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}

    def register_chat(self, chat: dict[str, Any]) -> None:
        self.chats[int(chat["id"])] = chat

    def next_message_id(self) -> int:
        return next(self._message_ids)

    def call(
        self,
        method: str,
        raw_parameters: Mapping[str, Any],
        files: Mapping[str, UploadedFile] | None = None,
    ) -> Any:
        """The ``result`` of a Bot API method, or :class:`ApiError`."""
        parameters = resolve_files(decode_parameters(raw_parameters), files or {})
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            raise ApiError(404, "Not Found")
        return handler(parameters)

    # --- methods --------------------------------------------------------------

    def _getMe(self, _: dict[str, Any]) -> Any:
        return BOT_USER

    def _setMyCommands(self, parameters: dict[str, Any]) -> Any:
        commands = parameters.get("commands") or []
        for command in commands:
            if not 1 <= len(command.get("description", "")) <= 256:
                raise ApiError(400, "Bad Request: command description must be 1-256 characters")
        self.commands[parameters.get("language_code", "")] = commands
        return True

    def _getMyCommands(self, parameters: dict[str, Any]) -> Any:
        return self.commands.get(parameters.get("language_code", ""), [])

    def _deleteMyCommands(self, parameters: dict[str, Any]) -> Any:
        self.commands.pop(parameters.get("language_code", ""), None)
        return True

    def _setWebhook(self, parameters: dict[str, Any]) -> Any:
        url = str(parameters.get("url") or "")
        if not url.startswith(("https://", "http://")):
            raise ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided")
        self.webhook = {
            "url": url,
            "secret_token": parameters.get("secret_token"),
            "allowed_updates": parameters.get("allowed_updates"),
        }
        return True

    def _deleteWebhook(self, _: dict[str, Any]) -> Any:
        self.webhook = {}
        return True

    def _getWebhookInfo(self, _: dict[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }
        if self.webhook.get("allowed_updates"):
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    def _setChatMenuButton(self, parameters: dict[str, Any]) -> Any:
        button = parameters.get("menu_button") or {"type": "default"}
        if button.get("type") == "web_app":
            url = str((button.get("web_app") or {}).get("url", ""))
            if not url.startswith("https://") or not button.get("text"):
                raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")
        chat_id = parameters.get("chat_id")
        self.menu_buttons[int(chat_id) if chat_id is not None else None] = button
        return True

    def _getChatMenuButton(self, parameters: dict[str, Any]) -> Any:
        chat_id = parameters.get("chat_id")
        key = int(chat_id) if chat_id is not None else None
        return self.menu_buttons.get(key) or self.menu_buttons.get(None) or {"type": "default"}

    def _close(self, _: dict[str, Any]) -> Any:
        return True

    def add_channel(
        self,
        chat_id: int,
        title: str,
        username: str | None = None,
        *,
        admins: set[int] | None = None,
        bot_status: str = "administrator",
        bot_can_post: bool = True,
    ) -> None:
        """A channel the tests can link: who administers it, and what the bot may do there."""
        chat: dict[str, Any] = {"id": chat_id, "type": "channel", "title": title}
        if username:
            chat["username"] = username
        self.register_chat(chat)
        self.admins[chat_id] = set(admins or ())
        self.bot_rights[chat_id] = (bot_status, bot_can_post)

    def _resolve_chat_id(self, value: Any) -> int:
        if isinstance(value, str) and value.startswith("@"):
            for chat in self.chats.values():
                if str(chat.get("username", "")).casefold() == value[1:].casefold():
                    return int(chat["id"])
            raise ApiError(400, "Bad Request: chat not found")
        chat_id = int(value)
        if chat_id < 0 and chat_id not in self.chats and str(chat_id).startswith("-100"):
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    def _getChat(self, parameters: dict[str, Any]) -> Any:
        chat = self.chat(self._resolve_chat_id(parameters["chat_id"]))
        return {**chat, "accent_color_id": 0, "max_reaction_count": 11}

    def _getChatMember(self, parameters: dict[str, Any]) -> Any:
        chat_id = self._resolve_chat_id(parameters["chat_id"])
        user_id = int(parameters["user_id"])
        user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
        if user_id == BOT_USER["id"] and chat_id in self.bot_rights:
            status, can_post = self.bot_rights[chat_id]
            if status != "administrator":
                return {
                    "status": status,
                    "user": BOT_USER,
                    **({"until_date": 0} if status == "kicked" else {}),
                }
            return {"status": "administrator", "user": BOT_USER, **_admin_rights(can_post)}
        if chat_id > 0 and chat_id == user_id:
            return {"status": "member", "user": user}
        if user_id in self.admins.get(chat_id, set()):
            return {"status": "creator", "user": user, "is_anonymous": False}
        if chat_id in self.bot_rights:  # a channel: readers are members
            return {"status": "left", "user": user}
        return {"status": "member", "user": user}

    def _check_reachable(self, chat_id: int) -> None:
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def _check_web_app_buttons(self, chat_id: int, markup: Any) -> None:
        """Telegram allows ``web_app`` buttons only in private chats with the bot."""
        if not markup or self.chat(chat_id).get("type") == "private":
            return
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if "web_app" in button:
                    raise ApiError(400, "Bad Request: BUTTON_TYPE_INVALID")

    def _check_text(self, parameters: dict[str, Any]) -> str:
        text = parameters.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        shown = parse_html(text) if parameters.get("parse_mode") == "HTML" else text
        if not shown.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_length(shown) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        self._check_markup(parameters.get("reply_markup"))
        return text

    @staticmethod
    def _check_markup(markup: Any) -> None:
        if not markup:
            return
        for row in markup.get("inline_keyboard", []):
            for button in row:
                if not button.get("text"):
                    raise ApiError(
                        400, "Bad Request: text buttons are unallowed in the inline keyboard"
                    )
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")

    def _sendMessage(self, parameters: dict[str, Any]) -> Any:
        chat_id = int(parameters["chat_id"])
        self._check_reachable(chat_id)
        text = self._check_text(parameters)
        self._check_web_app_buttons(chat_id, parameters.get("reply_markup"))
        message = StoredMessage(
            chat_id,
            self.next_message_id(),
            text,
            parameters.get("reply_markup"),
            int(time.time()),
        )
        self.messages[(chat_id, message.message_id)] = message
        return message.payload(self.chat(chat_id))

    def _editMessageText(self, parameters: dict[str, Any]) -> Any:
        if parameters.get("inline_message_id"):
            # Messages sent through inline mode belong to other chats: Telegram answers True.
            self._check_text(parameters)
            return True
        chat_id = int(parameters["chat_id"])
        self._check_reachable(chat_id)
        stored = self.messages.get((chat_id, int(parameters["message_id"])))
        if stored is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        text = self._check_text(parameters)
        markup = parameters.get("reply_markup")
        self._check_web_app_buttons(chat_id, markup)
        if text == stored.text and markup == stored.reply_markup:
            raise ApiError(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup are exactly the same as a current content and reply markup "
                "of the message",
            )
        stored.text, stored.reply_markup = text, markup
        return stored.payload(self.chat(chat_id))

    def _sendDocument(self, parameters: dict[str, Any]) -> Any:
        chat_id = int(parameters["chat_id"])
        self._check_reachable(chat_id)
        document = parameters.get("document")
        if not isinstance(document, UploadedFile):
            raise ApiError(400, "Bad Request: there is no document in the request")
        if len(document.content) > 50 * 1024 * 1024:
            raise ApiError(413, "Request Entity Too Large")
        caption = str(parameters.get("caption", ""))
        shown = parse_html(caption) if parameters.get("parse_mode") == "HTML" else caption
        if utf16_length(shown) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
        message_id = self.next_message_id()
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": self.chat(chat_id),
            "from": BOT_USER,
            "caption": caption,
            "document": {
                "file_id": f"doc{message_id}",
                "file_unique_id": f"u{message_id}",
                "file_name": document.filename,
                "mime_type": "text/calendar",
                "file_size": len(document.content),
            },
        }

    def _answerInlineQuery(self, parameters: dict[str, Any]) -> Any:
        results = parameters.get("results") or []
        if len(results) > 50:
            raise ApiError(400, "Bad Request: RESULTS_TOO_MUCH")
        seen: set[str] = set()
        for result in results:
            result_id = str(result.get("id", ""))
            if not 1 <= len(result_id.encode()) <= 64 or result_id in seen:
                raise ApiError(400, "Bad Request: RESULT_ID_INVALID")
            seen.add(result_id)
            content = result.get("input_message_content") or {}
            self._check_text(
                {
                    "text": content.get("message_text"),
                    "parse_mode": content.get("parse_mode"),
                    "reply_markup": result.get("reply_markup"),
                }
            )
        return True

    def _answerCallbackQuery(self, parameters: dict[str, Any]) -> Any:
        if len(str(parameters.get("text", ""))) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        return True
