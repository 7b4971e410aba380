"""A bot process from start to stop: ``summitbot run`` (long polling),
``summitbot webhook`` (behind a reverse proxy, any number of replicas on PostgreSQL)
and ``summitbot webapp`` (the Mini App alone, over HTTP, for development and tests).

Start: migrate and load the bundled dataset (one replica at a time), start the
dispatcher, then take updates. SIGTERM or SIGINT: stop taking updates (the webhook
answers 503, so Telegram retries elsewhere), finish the handlers and sends in flight
and record them, put back unsent claims, and exit, all within
``SHUTDOWN_TIMEOUT_SECONDS``; past that the process exits anyway (what it had not
recorded is re-sent by another replica after the lease, and logged here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ExtBot

from bot.app import build_services, file_url_for, prepare, running, telegram_request
from bot.context import BotApplication, Services
from bot.runtime.webhook import WebhookEndpoint
from bot.webapp.api import WebAppApi
from config.settings import Settings
from storage.database import is_unavailable
from storage.updates import forget_old_updates

log = logging.getLogger(__name__)

# Hourly: forget processed update ids no repeat can match any more.
FORGET_UPDATES_JOB = "forget-old-updates"
# Long polling: how long one getUpdates call waits for news.
POLL_TIMEOUT_SECONDS = 30
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handling: this module decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _on_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def requested(signum: signal.Signals) -> None:
        if stop.is_set():
            log.warning("%s again: exiting now", signum.name)
            os._exit(1)
        log.info("%s: stopping", signum.name)
        stop.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, requested, signum)


def _exit_if_stuck(seconds: float) -> asyncio.TimerHandle:
    """The safety net behind the graceful stop."""

    def give_up() -> None:
        log.error("not stopped after %.0f s: exiting without waiting further", seconds)
        logging.shutdown()
        os._exit(1)

    return asyncio.get_running_loop().call_later(seconds, give_up)


def _stopping(application: BotApplication, settings: Settings) -> None:
    """The moment a stop is asked for: one deadline for every phase that follows."""
    grace = settings.shutdown_timeout_seconds
    # No new batch and no new send from here on; sends in flight finish and are recorded.
    application.bot_data.services.dispatcher.begin_stop(grace)
    _exit_if_stuck(grace + 2)


async def serve_polling(application: BotApplication, settings: Settings) -> None:
    stop = asyncio.Event()
    _on_stop_signals(stop)
    async with running(application, polling=True, poll_timeout=POLL_TIMEOUT_SECONDS):
        log.info("polling %s for updates", settings.telegram_base_url.split("/bot")[0])
        await stop.wait()
        _stopping(application, settings)
    log.info("stopped")


class WebhookServer:
    """Uvicorn serving the webhook endpoint of a running application."""

    def __init__(self, application: BotApplication, settings: Settings) -> None:
        assert settings.webhook_secret is not None
        self.application = application
        self.settings = settings
        self.endpoint = WebhookEndpoint(
            application,
            settings.webhook_secret.get_secret_value(),
            settings.webhook_path,
            settings.webhook_max_body_bytes,
        )
        self.server = _Server(
            uvicorn.Config(
                self.endpoint.app,
                host=settings.webhook_host,
                port=settings.webhook_port,
                lifespan="off",
                log_config=None,  # our logging configuration (redacted, text or JSON)
                access_log=False,  # the application logs one line per update
                timeout_graceful_shutdown=max(int(settings.shutdown_timeout_seconds / 2), 1),
                server_header=False,
            )
        )
        self._serving: asyncio.Task[None] | None = None

    async def _forget_old_updates(self, _: object) -> None:
        services = self.application.bot_data.services
        try:
            async with services.database.transaction() as session:
                await forget_old_updates(session, services.clock.now())
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("could not prune the processed-updates record: %r", exc)

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets if self.server.servers else ()
        return int(sockets[0].getsockname()[1]) if sockets else self.settings.webhook_port

    async def start(self, *, register: bool = True) -> None:
        """Listen, then (``register``) tell Telegram where to post updates."""
        self._serving = asyncio.create_task(self.server.serve(), name="webhook-server")
        while not self.server.started:
            if self._serving.done():
                self._serving.result()  # raises what stopped it (e.g. the port is taken)
                raise RuntimeError("the webhook server did not start")
            await asyncio.sleep(0.02)
        job_queue = self.application.job_queue
        if job_queue is not None:
            job_queue.run_repeating(
                self._forget_old_updates, interval=3600, first=60, name=FORGET_UPDATES_JOB
            )
        if register:
            assert self.settings.webhook_url and self.settings.webhook_secret
            # Registered only once the server listens, so Telegram's first post is answered.
            await self.application.bot.set_webhook(
                url=self.settings.webhook_url,
                secret_token=self.settings.webhook_secret.get_secret_value(),
                allowed_updates=Update.ALL_TYPES,
            )
        log.info(
            "webhook server on %s:%s%s",
            self.settings.webhook_host,
            self.port,
            self.settings.webhook_path,
        )

    async def wait(self) -> None:
        """Until the server stops on its own (which it should not)."""
        assert self._serving is not None
        await self._serving

    async def stop(self) -> None:
        """Refuse new updates (503), then wait for the requests, and so the handlers, in
        flight (at most ``SHUTDOWN_TIMEOUT_SECONDS / 2``)."""
        self.endpoint.stopping = True
        self.server.should_exit = True
        if self._serving is not None:
            await self._serving


async def serve_webhook(application: BotApplication, settings: Settings) -> None:
    stop = asyncio.Event()
    _on_stop_signals(stop)
    webhook = WebhookServer(application, settings)
    async with running(application, polling=False):
        await webhook.start()
        serving = asyncio.create_task(webhook.wait())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            stopped.cancel()
            raise RuntimeError("the webhook server stopped on its own")
        _stopping(application, settings)
        await webhook.stop()
    log.info("stopped")


# The Mini App alone asks Telegram only who is a member of a group: a few connections.
WEBAPP_POOL_SIZE = 8


class WebAppServer:
    """``summitbot webapp``: the Mini App's page and JSON API over HTTP, against the bot's
    database, without taking updates or sending reminders (the bot process does that)."""

    def __init__(self, settings: Settings, services: Services | None = None) -> None:
        assert settings.bot_token is not None
        token = settings.bot_token.get_secret_value()
        self.settings = settings
        self.services = services or build_services(settings)
        self.bot: ExtBot[None] = ExtBot(
            token,
            base_url=settings.telegram_base_url,
            base_file_url=file_url_for(settings.telegram_base_url),
            request=telegram_request(settings, WEBAPP_POOL_SIZE),
        )
        self.api = WebAppApi(self.services, self.bot, token)
        app = Starlette(routes=[Route("/healthz", _healthz, methods=["GET"]), *self.api.routes()])
        self.server = _Server(
            uvicorn.Config(
                app,
                host=settings.webapp_host,
                port=settings.webapp_port,
                lifespan="off",
                log_config=None,
                access_log=False,
                server_header=False,
            )
        )
        self._serving: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        sockets = self.server.servers[0].sockets if self.server.servers else ()
        return int(sockets[0].getsockname()[1]) if sockets else self.settings.webapp_port

    async def start(self) -> None:
        """Bring the database up to date, then listen."""
        await prepare(self.services)
        try:
            await self.bot.initialize()
        except TelegramError as exc:  # offline: private chats still work, groups get 403
            log.warning("could not reach the Bot API (%s); group chats cannot be checked", exc)
        self._serving = asyncio.create_task(self.server.serve(), name="webapp-server")
        while not self.server.started:
            if self._serving.done():
                self._serving.result()
                raise RuntimeError("the Mini App server did not start")
            await asyncio.sleep(0.02)
        log.info("Mini App on http://%s:%s/app/", self.settings.webapp_host, self.port)

    async def wait(self) -> None:
        assert self._serving is not None
        await self._serving

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._serving is not None:
            await self._serving
        await self.bot.shutdown()
        await self.services.database.dispose()


async def _healthz(_: Request) -> Response:
    return PlainTextResponse("ok")


async def serve_webapp(settings: Settings) -> None:
    stop = asyncio.Event()
    _on_stop_signals(stop)
    server = WebAppServer(settings)
    await server.start()
    try:
        serving = asyncio.create_task(server.wait())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            stopped.cancel()
            raise RuntimeError("the Mini App server stopped on its own")
    finally:
        await server.stop()
    log.info("stopped")
