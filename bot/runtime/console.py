"""``summitbot console``: a chat with the bot in the terminal, with no token and no network.

Each input line is one message (a command or plain text). The bot's replies are
printed as text with their buttons numbered; typing a shown number presses that
button. Updates go through the very handlers Telegram updates go through, with
an in-process Bot API emulator in place of Telegram. Works with a pipe, so it
can be scripted: ``printf '/chairs 2024\\n' | summitbot console``.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from typing import Any, TextIO

from telegram import Update

from bot.app import build_application, running
from bot.clock import Clock
from bot.context import BotApplication
from bot.transports.emulated import EmulatedRequest
from bot.transports.emulator import BotApiEmulator, parse_html
from config.settings import Settings

CONSOLE_USER_ID = 1
GREETING = "summitbot console — type /help, a name such as SCO, or Ctrl-D to quit.\n\n"


class ConsoleChat:
    """One private chat between a terminal user and the bot."""

    def __init__(
        self, application_settings: Settings, language: str, out: TextIO, clock: Clock | None
    ) -> None:
        self.out = out
        self.language = language
        self.emulator = BotApiEmulator()
        self.request = EmulatedRequest(self.emulator, self._on_call)
        self.application: BotApplication = build_application(
            application_settings,
            clock=clock,
            request=self.request,
            with_updater=False,
            rate_limit=False,
        )
        self.user = {
            "id": CONSOLE_USER_ID,
            "is_bot": False,
            "first_name": "You",
            "language_code": language,
        }
        self.chat = {"id": CONSOLE_USER_ID, "type": "private", "first_name": "You"}
        self.emulator.register_chat(self.chat)
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self.buttons: list[tuple[str, str, dict[str, Any]]] = []  # (label, data, message)

    # --- output -----------------------------------------------------------------

    def _on_call(self, method: str, parameters: dict[str, Any], result: Any) -> None:
        if method in ("sendMessage", "editMessageText"):
            self._print_message(result, edited=method == "editMessageText")
        elif method == "answerCallbackQuery" and parameters.get("text"):
            self.out.write(f"! {parameters['text']}\n")
        elif method == "sendDocument":
            document = result["document"]
            self.out.write(f"📎 {document['file_name']} ({document['file_size']} bytes)\n\n")

    def _print_message(self, message: dict[str, Any], *, edited: bool) -> None:
        text = parse_html(message["text"])
        if edited:
            self.out.write("(edited)\n")
        self.out.write(text.rstrip() + "\n")
        keyboard = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        if keyboard:
            self.buttons = []
            for row in keyboard:
                cells = []
                for button in row:
                    self.buttons.append((button["text"], button.get("callback_data", ""), message))
                    cells.append(f"[{len(self.buttons)}] {button['text']}")
                self.out.write("  " + "   ".join(cells) + "\n")
        self.out.write("\n")
        self.out.flush()

    # --- input ------------------------------------------------------------------

    def update_for(self, line: str) -> dict[str, Any]:
        """The update JSON Telegram would send for this input line."""
        update_id = next(self._update_ids)
        if line.isdecimal() and 1 <= int(line) <= len(self.buttons):
            _, data, shown = self.buttons[int(line) - 1]
            return {
                "update_id": update_id,
                "callback_query": {
                    "id": str(update_id),
                    "from": self.user,
                    "message": shown,
                    "chat_instance": "console",
                    "data": data,
                },
            }
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self.chat,
            "from": self.user,
            "text": line,
        }
        if line.startswith("/"):
            command = line.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": update_id, "message": message}

    async def send(self, line: str) -> None:
        data = self.update_for(line)
        await self.application.process_update(Update.de_json(data, self.application.bot))

    async def run(self, lines: TextIO) -> None:
        interactive = lines.isatty()
        async with running(self.application, polling=False):
            if interactive:
                self.out.write(GREETING)
            while True:
                if interactive:
                    self.out.write("> ")
                    self.out.flush()
                line = await asyncio.to_thread(lines.readline)
                if not line:
                    break
                line = line.strip()
                if not line:
                    continue
                if not interactive:
                    self.out.write(f"> {line}\n")
                await self.send(line)


async def run_console(
    settings: Settings,
    *,
    language: str,
    clock: Clock | None = None,
    lines: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> None:
    chat = ConsoleChat(settings, language, out, clock)
    services = chat.application.bot_data.services
    # The console dispatches reminders too: it must not share a SQLite file with a bot.
    services.dispatcher.sole_process = services.database.lock_exclusively()
    await chat.run(lines)
