"""The composition root: builds services and the python-telegram-bot Application.

Services are created here, the database is migrated and the bundled dataset
synchronised in ``post_init``, and everything is closed in ``post_shutdown``
(after rules-bot, by the python-telegram-bot maintainers).
"""

from __future__ import annotations

import functools
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from telegram import LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    ExtBot,
    InlineQueryHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.abuse import FloodGuard, ReplyCache
from bot.clock import Clock, SystemClock
from bot.context import BotApplication, BotContext, BotData, Services
from bot.delivery.dispatcher import Dispatcher, messages_in_flight
from bot.handlers import (
    buttons,
    calendar,
    chairs,
    channels,
    chat_settings,
    events,
    guard,
    inline,
    membership,
    operators,
    organisations,
    review,
    search,
    start,
    subscriptions,
)
from bot.handlers.chats import remember_chat
from bot.handlers.errors import error_handler
from bot.metrics import Metrics, update_type
from bot.presentation.i18n import translator
from bot.presentation.webapp import menu_button
from bot.runtime.chat_order import ChatOrderedUpdateProcessor
from bot.sources.poller import SourcePoller
from bot.transports.aiohttp_request import AiohttpRequest
from config.languages import SUPPORTED_LANGUAGES
from config.settings import Settings
from storage.chats import Chats
from storage.database import Database
from storage.dataset import prepare_database
from storage.planning import Planner
from storage.queries import Catalogue, one_revision
from storage.subscriptions import Subscriptions

log = logging.getLogger(__name__)

# Placeholder credentials for the offline console: it never reaches Telegram.
CONSOLE_TOKEN = "0:console"


async def prepare(services: Services) -> None:
    """Bring the database to the current schema and bundled dataset."""
    report = await prepare_database(services.database, services.settings.dataset_dir)
    if report is not None:
        log.info("bundled dataset synchronised: %s", report.summary())


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    database = Database(settings.database_url)
    clock = clock or SystemClock()
    catalogue = Catalogue(database)
    planner = Planner(operator_ids=settings.operator_ids)
    metrics = Metrics()
    dispatcher = Dispatcher(database, catalogue, clock, settings, planner, metrics=metrics)
    sources = SourcePoller(database, clock, settings, planner, metrics)
    sources.on_imported = dispatcher.poke  # notices of a poll's changes are due at once
    return Services(
        settings=settings,
        database=database,
        catalogue=catalogue,
        chats=Chats(database, settings.default_language, settings.default_timezone, planner),
        subscriptions=Subscriptions(database, planner),
        dispatcher=dispatcher,
        clock=clock,
        flood_guard=FloodGuard(settings.requests_per_minute, 60.0),
        reply_cache=ReplyCache(settings.reply_cache_seconds),
        metrics=metrics,
        sources=sources,
    )


class SummitApplication(Application[Any, Any, Any, Any, Any, Any]):
    """PTB's Application, timing every update for /metrics and logging one line for it."""

    async def process_update(self, update: object) -> None:
        started = time.perf_counter()
        try:
            # The catalogue's revision, which its caches are keyed by, is read once per update.
            with one_revision():
                await super().process_update(update)
        finally:
            elapsed = time.perf_counter() - started
            kind = update_type(update)
            metrics: Metrics = self.bot_data.services.metrics
            metrics.updates.labels(kind).inc()
            metrics.handler_seconds.labels(kind).observe(elapsed)
            _log_update(update, kind, elapsed)


def _log_update(update: object, kind: str, elapsed: float) -> None:
    if not isinstance(update, Update) or not log.isEnabledFor(logging.INFO):
        return
    chat = update.effective_chat
    user = update.effective_user
    fields = {
        "update_id": update.update_id,
        "update_type": kind,
        "chat_id": chat.id if chat else None,
        "user_id": user.id if user else None,
        "duration_ms": round(elapsed * 1000, 2),
    }
    log.info(
        "update %s %s chat=%s user=%s %.1f ms",
        update.update_id,
        kind,
        fields["chat_id"],
        fields["user_id"],
        elapsed * 1000,
        extra=fields,
    )


def register_handlers(application: BotApplication) -> None:
    # Before any handler: group -4 drops a flooding user's updates before any database
    # work; -3 stores the chat (language, time zone) all later handlers render for;
    # -2 answers a repeated read-only request from the short reply cache; -1 takes the
    # answer to a question the bot asked (an operator's /addevent, linking a channel),
    # kept in the database so any replica can, before it is taken for a search.
    application.add_handler(TypeHandler(Update, guard.flood_guard), group=-4)
    application.add_handler(TypeHandler(Update, remember_chat), group=-3)
    application.add_handler(TypeHandler(Update, guard.cached_reply), group=-2)
    application.add_handler(TypeHandler(Update, operators.continue_dialogue), group=-1)

    operators.register(application)
    review.register(application)
    channels.register(application)

    # Group 0: commands, buttons, then plain text. Only the first match in a group runs,
    # so plain text (private chats only) comes last and never shadows a command.
    commands: list[tuple[str, Any]] = [
        ("start", start.start),
        ("help", start.help_command),
        ("chairs", chairs.chairs),
        ("org", organisations.org),
        ("summits", events.summits),
        ("upcoming", events.upcoming),
        ("past", events.past),
        ("next", events.next_event),
        ("event", events.event),
        ("search", search.search),
        ("subscribe", subscriptions.subscribe),
        ("unsubscribe", subscriptions.unsubscribe),
        ("mysubs", subscriptions.mysubs),
        ("leadtimes", subscriptions.leadtimes),
        ("lang", chat_settings.lang),
        ("tz", chat_settings.tz),
        ("calendar", calendar.calendar),
        ("digest", chat_settings.digest),
        ("forgetme", chat_settings.forgetme),
    ]
    for name, callback in commands:
        application.add_handler(CommandHandler(name, callback))
    application.add_handler(CallbackQueryHandler(buttons.button))
    application.add_handler(
        ChatMemberHandler(membership.my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER)
    )
    application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, membership.migrated))
    application.add_handler(InlineQueryHandler(inline.inline_query))
    application.add_handler(
        MessageHandler(filters.ChatType.PRIVATE & filters.LOCATION, chat_settings.location)
    )
    application.add_handler(
        MessageHandler(
            filters.ChatType.PRIVATE
            & filters.TEXT
            & ~filters.COMMAND
            & ~filters.FORWARDED
            & filters.UpdateType.MESSAGE,
            search.plain_text,
        )
    )
    application.add_error_handler(error_handler)


async def _post_init(application: BotApplication) -> None:
    services = application.bot_data.services
    await prepare(services)
    # The command menu in every language, and the default for everyone else.
    default = translator(services.settings.default_language)
    await application.bot.set_my_commands(start.bot_commands(default))
    for language in SUPPORTED_LANGUAGES:
        commands = start.bot_commands(translator(language))
        await application.bot.set_my_commands(commands, language_code=language)
    await _set_menu_button(application)
    delivery_bot = application.bot_data.delivery_bot
    await delivery_bot.initialize()
    processor = application.update_processor
    if isinstance(processor, ChatOrderedUpdateProcessor):
        during_fanout = services.settings.concurrent_updates_during_fanout

        def fanout(sending: bool) -> None:
            processor.limit_running(during_fanout if sending else None)

        services.dispatcher.on_fanout = fanout
    services.dispatcher.start(delivery_bot, application.job_queue)
    review.start(application)
    services.sources.start(application.job_queue)


async def _set_menu_button(application: BotApplication) -> None:
    """The menu button opens the Mini App when its address is known. Not being able to
    set it never stops the bot: the chat commands work without it."""
    settings = application.bot_data.services.settings
    button = menu_button(settings, translator(settings.default_language))
    if button is None:
        return
    try:
        await application.bot.set_chat_menu_button(menu_button=button)
    except TelegramError as exc:
        log.warning("could not set the Mini App's menu button: %s", exc)


async def _post_shutdown(application: BotApplication) -> None:
    await application.bot_data.delivery_bot.shutdown()
    await application.bot_data.services.database.dispose()


@asynccontextmanager
async def running(
    application: BotApplication, *, polling: bool, poll_timeout: int = 1
) -> AsyncIterator[BotApplication]:
    """Run the application inside the current event loop, as ``run_polling`` would.

    For ``summitbot run``/``webhook`` (``bot.runtime.serve``), the console and the tests, which
    own their event loop. On the way out: stop taking updates, let the dispatcher
    finish and record its sends, then let PTB finish the handlers in flight.
    """
    services = application.bot_data.services
    async with application:
        await _post_init(application)
        if polling:
            assert application.updater is not None
            await application.updater.start_polling(
                poll_interval=0, timeout=poll_timeout, allowed_updates=Update.ALL_TYPES
            )
        await application.start()
        _freeze_start_up_objects()
        try:
            yield application
        finally:
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
            await services.sources.stop(services.settings.shutdown_timeout_seconds / 2)
            await services.dispatcher.stop(services.settings.shutdown_timeout_seconds)
            await application.stop()
    # ``async with`` has shut the application down; close what post_init opened.
    await _post_shutdown(application)


@functools.cache
def _freeze_start_up_objects() -> None:
    # What the process holds once started (modules, classes, the libraries' tables; some
    # 150,000 objects) lives as long as it does. A full collection would traverse it all,
    # a pause of tens of milliseconds in whichever update was running; frozen, it is left
    # out of collections. Once per process (tests start many applications).
    gc.collect()
    gc.freeze()


def file_url_for(base_url: str) -> str:
    """Bot API file downloads live beside the methods: ``…/bot`` → ``…/file/bot``."""
    root, _, suffix = base_url.rpartition("/")
    return f"{root}/file/{suffix}"


# Connections to the Bot API: PTB's own defaults (256 for the bot's calls, one for the
# long poll); deliveries get a pool of their own, a little larger than what they send at once
# (DELIVERY_MAX_IN_FLIGHT, or as `messages_in_flight` sizes it).
INTERACTIVE_POOL_SIZE = 256
DELIVERY_POOL_SPARE = 4


def telegram_request(settings: Settings, connection_pool_size: int) -> BaseRequest:
    """A Bot API transport as ``TELEGRAM_TRANSPORT`` says: aiohttp (fast) or PTB's HTTPX."""
    if settings.telegram_transport == "httpx":
        return HTTPXRequest(connection_pool_size=connection_pool_size)
    return AiohttpRequest(connection_pool_size=connection_pool_size)


def build_application(
    settings: Settings,
    *,
    clock: Clock | None = None,
    request: BaseRequest | None = None,
    with_updater: bool = True,
    rate_limit: bool = True,
) -> BotApplication:
    """The bot, ready to ``run_polling`` (or to ``process_update`` for the console)."""
    token = settings.bot_token.get_secret_value() if settings.bot_token else CONSOLE_TOKEN
    context_types = ContextTypes(context=BotContext, bot_data=BotData)
    defaults = Defaults(
        parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)
    )
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.telegram_base_url)
        .base_file_url(file_url_for(settings.telegram_base_url))
        .context_types(context_types)
        .defaults(defaults)
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .application_class(SummitApplication)
        # Updates side by side, each chat's in order (bot/runtime/chat_order.py).
        .concurrent_updates(ChatOrderedUpdateProcessor(settings.concurrent_updates))
    )
    if rate_limit:
        # Retries a 429 after Telegram's retry_after, and keeps to its flood limits.
        builder = builder.rate_limiter(AIORateLimiter(max_retries=3))  # type: ignore[arg-type]
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    else:
        builder = builder.request(telegram_request(settings, INTERACTIVE_POOL_SIZE))
        builder = builder.get_updates_request(telegram_request(settings, 1))
    if not with_updater:
        builder = builder.updater(None)
    application: BotApplication = builder.build()  # type: ignore[assignment]
    application.bot_data.services = build_services(settings, clock)
    # Deliveries use a bot of their own: no PTB rate limiter (the dispatcher has its own
    # and handles 429 itself) and its own connection pool, so replies never queue behind
    # a broadcast.
    application.bot_data.delivery_bot = ExtBot(
        token,
        base_url=settings.telegram_base_url,
        base_file_url=file_url_for(settings.telegram_base_url),
        defaults=defaults,
        request=request
        or telegram_request(settings, messages_in_flight(settings) + DELIVERY_POOL_SPARE),
    )
    register_handlers(application)
    return application


__all__ = ["Application", "build_application", "running"]
