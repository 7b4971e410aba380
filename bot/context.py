"""The typed context handlers receive: services as properties, not string keys.

Modelled on python-telegram-bot's ``contexttypesbot.py`` example.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from telegram.ext import Application, CallbackContext, ExtBot, JobQueue

from bot.abuse import FloodGuard, ReplyCache
from bot.clock import Clock
from bot.delivery.dispatcher import Dispatcher
from bot.metrics import Metrics
from bot.presentation.i18n import Translator, translator
from bot.sources.poller import SourcePoller
from config.settings import Settings
from storage.chats import Chats
from storage.database import Database
from storage.queries import Catalogue
from storage.subscriptions import Subscriptions
from storage.views import ChatView


@dataclass
class Services:
    """Everything handlers use, created once in the composition root (``bot.app``)."""

    settings: Settings
    database: Database
    catalogue: Catalogue
    chats: Chats
    subscriptions: Subscriptions
    dispatcher: Dispatcher
    clock: Clock
    flood_guard: FloodGuard
    reply_cache: ReplyCache
    metrics: Metrics
    sources: SourcePoller


class BotData:
    """``application.bot_data``: the services, and the bot that sends deliveries."""

    services: Services
    delivery_bot: ExtBot[None]


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], BotData]):
    """Per-update context: the services, and the chat as stored (language, time zone)."""

    def __init__(
        self,
        application: Application[Any, Any, Any, Any, Any, Any],
        chat_id: int | None = None,
        user_id: int | None = None,
    ) -> None:
        super().__init__(application=application, chat_id=chat_id, user_id=user_id)
        self._chat_view: ChatView | None = None
        # The forum topic replies go to (set by ``messaging.answer``).
        self.message_thread_id: int | None = None
        # Where ``messaging.answer`` keeps this update's reply for repeats (``handlers.guard``).
        self.cache_key: tuple[int, str] | None = None

    @property
    def services(self) -> Services:
        return self.bot_data.services

    @property
    def catalogue(self) -> Catalogue:
        return self.services.catalogue

    @property
    def clock(self) -> Clock:
        return self.services.clock

    @property
    def chat_view(self) -> ChatView:
        """The chat of this update as stored; set by ``handlers.chats`` before any handler."""
        if self._chat_view is None:
            raise RuntimeError("chat_view is read before the chat was remembered")
        return self._chat_view

    @chat_view.setter
    def chat_view(self, value: ChatView) -> None:
        self._chat_view = value

    @property
    def today(self) -> dt.date:
        """Today's date where this chat is (its time zone): the day /chairs and /org mean."""
        return self.clock.now().astimezone(ZoneInfo(self.chat_view.timezone)).date()

    @property
    def tr(self) -> Translator:
        """The bot's words in this chat's language."""
        language = (
            self._chat_view.language if self._chat_view else self.services.settings.default_language
        )
        return translator(language)


BotApplication = Application[
    ExtBot[None], BotContext, dict[Any, Any], dict[Any, Any], BotData, JobQueue[BotContext]
]
