"""The HTTP side of webhook mode: Telegram's updates, /healthz, /readyz, /metrics, the
calendar feeds and the Mini App (``/app``, :mod:`bot.webapp.api`).

A small Starlette app served by Uvicorn (``bot.runtime.serve``). Telegram posts each update
to ``WEBHOOK_PATH`` with the secret token in ``X-Telegram-Bot-Api-Secret-Token``;
the update is handled before the response, so Telegram sees a 200 only for an update
that was processed, and a replica that is stopping answers 503 (Telegram retries,
and a load balancer sends the retry to another replica).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from telegram import Update

from bot.context import BotApplication, Services
from bot.metrics import CONTENT_TYPE
from bot.presentation import ics
from bot.presentation.i18n import translator
from bot.runtime.http_body import BodyTooLarge, read_body
from bot.webapp.api import WebAppApi
from storage.claims import count_due
from storage.database import is_unavailable
from storage.feeds import chat_of_feed
from storage.models import Chat
from storage.updates import take_update

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# /readyz must answer quickly even when the database hangs.
READY_TIMEOUT_SECONDS = 2.0


class WebhookEndpoint:
    """The ASGI app of one process, and whether it still takes updates."""

    def __init__(self, application: BotApplication, secret: str, path: str, max_body: int):
        self.application = application
        self.secret = secret.encode()
        self.max_body = max_body
        self.stopping = False
        self.webapp = WebAppApi(
            application.bot_data.services, application.bot, application.bot.token
        )
        self.app = Starlette(
            routes=[
                Route(path, self.telegram_update, methods=["POST"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/readyz", self.readyz, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"]),
                Route("/calendar/{token}.ics", self.calendar_feed, methods=["GET"]),
                # The Mini App: its page, files and JSON API under /app (docs/webapp.md).
                *self.webapp.routes(),
            ]
        )

    @property
    def services(self) -> Services:
        return self.application.bot_data.services

    # --- Telegram -----------------------------------------------------------------

    async def telegram_update(self, request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self.secret):
            log.warning("webhook request without the right secret token from %s", _peer(request))
            return PlainTextResponse("forbidden", status_code=403)
        if self.stopping:
            return PlainTextResponse("stopping; try again", status_code=503)
        try:
            body = await read_body(request, self.max_body)
        except BodyTooLarge:
            return PlainTextResponse("request body too large", status_code=413)
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return PlainTextResponse("the body is not JSON", status_code=400)
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return PlainTextResponse("the body is not a Telegram update", status_code=400)
        try:
            update = Update.de_json(data, self.application.bot)
        except Exception as exc:  # any shape PTB cannot read is the sender's fault: 400
            log.warning("webhook update %s could not be read: %r", data.get("update_id"), exc)
            return PlainTextResponse("the body is not a Telegram update", status_code=400)
        if not await self._first_time(update.update_id):
            # Telegram posted it again (a time-out, a lost response): another replica, or
            # this one, has it already.
            log.info("update %s was taken before; not handled again", update.update_id)
            return PlainTextResponse("ok")
        # Handler errors are answered by the error handler; the update is done either way.
        # Side by side with other requests, after this chat's earlier updates
        # (bot/runtime/chat_order.py), as under long polling.
        application = self.application
        await application.update_processor.process_update(
            update, application.process_update(update)
        )
        return PlainTextResponse("ok")

    async def _first_time(self, update_id: int) -> bool:
        services = self.services
        try:
            async with services.database.transaction() as session:
                return await take_update(session, update_id, services.clock.now())
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            return True  # handled without the record; its handlers report the outage

    # --- operations ---------------------------------------------------------------

    async def healthz(self, _: Request) -> Response:
        """The process is up and serving HTTP."""
        return PlainTextResponse("ok")

    async def readyz(self, _: Request) -> Response:
        """Ready for traffic: the database answers, the scheduler runs, not stopping."""
        checks: dict[str, str] = {}
        services = self.services
        try:
            await asyncio.wait_for(services.database.ping(), READY_TIMEOUT_SECONDS)
        except Exception as exc:
            if not (is_unavailable(exc) or isinstance(exc, TimeoutError)):
                log.exception("readiness check failed")
            checks["database"] = "unavailable"
            services.metrics.database_up.set(0)
        else:
            checks["database"] = "ok"
            services.metrics.database_up.set(1)
        job_queue = self.application.job_queue
        scheduler_running = job_queue is not None and job_queue.scheduler.running
        checks["scheduler"] = "running" if scheduler_running else "stopped"
        checks["updates"] = "stopping" if self.stopping else "accepting"
        ready = (
            checks["database"] == "ok"
            and scheduler_running
            and not self.stopping
            and self.application.running
        )
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    async def metrics(self, _: Request) -> Response:
        services = self.services
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                async with services.database.sessions() as session:
                    depth = await count_due(session, services.clock.now())
        except Exception as exc:
            if not (is_unavailable(exc) or isinstance(exc, TimeoutError)):
                raise
            services.metrics.database_up.set(0)
        else:
            services.metrics.queue_depth.set(depth)
        return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)

    # --- calendar feeds -----------------------------------------------------------

    async def calendar_feed(self, request: Request) -> Response:
        """A chat's followed events as an .ics feed, for calendar apps that poll it."""
        services = self.services
        async with services.database.sessions() as session:
            chat_id = await chat_of_feed(session, request.path_params["token"])
            chat = await session.get(Chat, chat_id) if chat_id is not None else None
        if chat is None:
            return PlainTextResponse("no such calendar", status_code=404)
        tr = translator(chat.language)
        events = [e for e in await services.catalogue.followed_events(chat.id) if ics.can_export(e)]
        leads = await services.subscriptions.default_lead_times(chat.id)
        body = ics.calendar_file(events, leads, tr, services.clock.now())
        return Response(
            body,
            media_type="text/calendar; charset=utf-8",
            headers={"Cache-Control": "private, max-age=300"},
        )


def _peer(request: Request) -> str:
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.split(",")[0].strip()
    return request.client.host if request.client else "?"
