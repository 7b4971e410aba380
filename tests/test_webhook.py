"""Webhook mode end to end: Telegram's POSTs with and without the secret, bad bodies,
/healthz, /readyz and /metrics, and a replica that is stopping.

The bot runs in this process with its real Uvicorn server on a free port; the local
Bot API server records what the bot sends, as in the other end-to-end tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from bot.clock import FixedClock
from bot.context import BotApplication
from bot.runtime.cli import main
from bot.runtime.serve import WebhookServer
from config.settings import Settings
from tests.botapi import LocalBotApi
from tests.conftest import StartBot
from tests.factories import QUIET, START, TEST_EVENT, load, plain

SECRET = "s3cret-Token_for-tests_0123456789abcdef"
PATH = "/telegram"


class Webhook:
    """What Telegram does to a webhook: POST updates with the secret token."""

    def __init__(self, server: WebhookServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def post(
        self,
        update: dict[str, Any] | bytes,
        *,
        secret: str | None = SECRET,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        body = update if isinstance(update, bytes) else json.dumps(update).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        if secret is not None:
            sent["X-Telegram-Bot-Api-Secret-Token"] = secret
        async with self.http.post(self.base + PATH, data=body, headers=sent) as response:
            return response.status, await response.text()

    async def get(self, path: str) -> tuple[int, str, str]:
        async with self.http.get(self.base + path) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.text()


StartWebhook = Callable[..., AbstractAsyncContextManager[tuple[BotApplication, Webhook]]]


@pytest.fixture
def start_webhook(start_bot: StartBot) -> StartWebhook:
    @asynccontextmanager
    async def start(**overrides: object) -> AsyncIterator[tuple[BotApplication, Webhook]]:
        settings = {
            "webhook_url": "https://bot.example.org/telegram",
            "webhook_secret": SECRET,
            "webhook_port": 0,
            "webhook_path": PATH,
            **QUIET,
            **overrides,
        }
        async with start_bot(polling=False, **settings) as application:
            server = WebhookServer(application, application.bot_data.services.settings)
            await server.start()
            try:
                async with aiohttp.ClientSession() as http:
                    yield application, Webhook(server, http)
            finally:
                await server.stop()

    return start


async def test_an_update_with_the_secret_is_answered(
    bot_api: LocalBotApi, start_webhook: StartWebhook
) -> None:
    async with start_webhook() as (_, webhook):
        update = bot_api.message("/upcoming", chat_id=8101)
        status, _body = await webhook.post(update)
        assert status == 200
        reply = await bot_api.reply_to(update)
    assert "Upcoming" in plain(reply.text)


async def test_the_webhook_is_registered_with_the_secret_and_the_update_types(
    bot_api: LocalBotApi, start_webhook: StartWebhook
) -> None:
    async with start_webhook():
        registered = bot_api.emulator.webhook
    assert registered["url"] == "https://bot.example.org/telegram"
    assert registered["secret_token"] == SECRET
    assert {"message", "callback_query", "my_chat_member", "chat_member"} <= set(
        registered["allowed_updates"]
    )


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x"])
async def test_an_update_without_the_right_secret_is_refused_and_not_handled(
    bot_api: LocalBotApi, start_webhook: StartWebhook, secret: str | None
) -> None:
    async with start_webhook() as (_, webhook):
        update = bot_api.message("/upcoming", chat_id=8102)
        status, _body = await webhook.post(update, secret=secret)
        # A real update afterwards is answered: the refused one left no trace.
        control = bot_api.message("/help", chat_id=8102)
        assert (await webhook.post(control))[0] == 200
        await bot_api.reply_to(control)
    assert status == 403
    assert len(bot_api.sent_to(8102)) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", 400),
        (b"\xff\xfe\x00", 400),
        (b"[1, 2, 3]", 400),
        (b'{"message": {"text": "/start"}}', 400),  # no update_id
        (b'{"update_id": "7"}', 400),
        (b'{"update_id": 7, "message": {"message_id": 1, "text": "hi"}}', 400),  # no chat
        (b"", 400),
        (b'{"update_id": 8, "message": "not an object"}', 400),
        (b'{"update_id": 9, "message": {"message_id": 1, "date": 1e300, "chat": {}}}', 400),
    ],
)
async def test_a_malformed_body_gets_a_client_error_and_the_bot_keeps_working(
    bot_api: LocalBotApi, start_webhook: StartWebhook, body: bytes, expected: int
) -> None:
    async with start_webhook() as (_, webhook):
        status, _text = await webhook.post(body)
        control = bot_api.message("/help", chat_id=8103)
        assert (await webhook.post(control))[0] == 200
        await bot_api.reply_to(control)
    assert status == expected


async def test_an_oversized_body_is_refused_before_it_is_read(
    bot_api: LocalBotApi, start_webhook: StartWebhook
) -> None:
    async with start_webhook(webhook_max_body_bytes=4096) as (_, webhook):
        update = bot_api.message("/search " + "x" * 10_000, chat_id=8104)
        status, _text = await webhook.post(update)
        # Without a Content-Length (chunked), the limit holds while reading.
        big = json.dumps(bot_api.message("/search " + "y" * 10_000, chat_id=8104)).encode()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 1000):
                yield big[start : start + 1000]

        async with webhook.http.post(
            webhook.base + PATH,
            data=chunks(),
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        ) as response:
            chunked_status = response.status
    assert (status, chunked_status) == (413, 413)
    assert bot_api.sent_to(8104) == []


async def test_health_readiness_and_metrics(
    bot_api: LocalBotApi, start_webhook: StartWebhook
) -> None:
    async with start_webhook() as (_, webhook):
        for text in ("/upcoming", "/org sco", "/help"):
            update = bot_api.message(text, chat_id=8105)
            assert (await webhook.post(update))[0] == 200
        health = await webhook.get("/healthz")
        ready = await webhook.get("/readyz")
        metrics = await webhook.get("/metrics")
    assert health[:1] == (200,) and health[2] == "ok"
    assert ready[0] == 200
    assert json.loads(ready[2]) == {
        "ready": True,
        "checks": {"database": "ok", "scheduler": "running", "updates": "accepting"},
    }
    status, content_type, text = metrics
    assert status == 200 and content_type.startswith("text/plain")
    assert sample(text, "summitbot_updates_total", type="message") == 3
    assert sample(text, "summitbot_handler_seconds_count", type="message") == 3
    assert sample(text, "summitbot_deliveries_total", outcome="sent") == 0
    assert sample(text, "summitbot_delivery_queue_depth") == 0
    assert sample(text, "summitbot_database_up") == 1
    assert "summitbot_dispatcher_lag_seconds_bucket" in text


async def test_metrics_count_a_reminder_sent_its_lag_and_the_superseded_ones(
    bot_api: LocalBotApi, start_webhook: StartWebhook, database_url: str, clock: FixedClock
) -> None:
    await load(database_url, TEST_EVENT, clock.now())
    async with start_webhook() as (application, webhook):
        update = bot_api.message("/subscribe test-summit", chat_id=8107)
        assert (await webhook.post(update))[0] == 200
        # Two seconds after the one-hour reminder came due: the 7-day and 1-day ones,
        # due as well, are superseded (skipped), the one-hour one is sent.
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=2))
        await application.bot_data.services.dispatcher.sweep()
        _status, _type, text = await webhook.get("/metrics")
    assert len([c for c in bot_api.sent_to(8107) if "⏰" in c.text]) == 1
    assert sample(text, "summitbot_deliveries_total", outcome="sent") == 1
    assert sample(text, "summitbot_deliveries_total", outcome="skipped") == 2
    assert sample(text, "summitbot_dispatcher_lag_seconds_count") == 1
    assert sample(text, "summitbot_dispatcher_lag_seconds_sum") == pytest.approx(2.0)
    assert sample(text, "summitbot_delivery_queue_depth") == 0


async def test_an_update_posted_again_to_another_replica_is_handled_once(
    bot_api: LocalBotApi, start_webhook: StartWebhook
) -> None:
    async with start_webhook() as (_, first), start_webhook() as (_, second):
        update = bot_api.message("/subscribe sco", chat_id=8108)
        # Telegram did not see the first answer in time, and posts the update again.
        results = await asyncio.gather(first.post(update), second.post(update))
        again = await first.post(update)
        control = bot_api.message("/mysubs", chat_id=8108)
        assert (await second.post(control))[0] == 200
        await bot_api.reply_to(control)
    assert [status for status, _ in results] == [200, 200] and again[0] == 200
    # One answer to the subscription ("You now follow"; a second run would have said
    # "already"), then the answer to /mysubs.
    replies = [plain(c.text) for c in bot_api.sent_to(8108)]
    assert len(replies) == 2, replies
    assert "You now follow" in replies[0]


async def test_a_stopping_replica_refuses_new_updates_and_is_not_ready(
    bot_api: LocalBotApi, start_bot: StartBot
) -> None:
    settings = {"webhook_url": "https://x.example/t", "webhook_secret": SECRET, "webhook_port": 0}
    async with start_bot(polling=False, **settings, **QUIET) as application:
        server = WebhookServer(application, application.bot_data.services.settings)
        await server.start()
        async with aiohttp.ClientSession() as http:
            webhook = Webhook(server, http)
            server.endpoint.stopping = True
            update = bot_api.message("/help", chat_id=8106)
            status, _text = await webhook.post(update)
            ready = await webhook.get("/readyz")
        await server.stop()
    assert status == 503  # Telegram retries, and a load balancer picks another replica
    assert ready[0] == 503 and json.loads(ready[2])["checks"]["updates"] == "stopping"
    assert bot_api.sent_to(8106) == []


@pytest.mark.parametrize("secret", ["e", "short-secret", "x" * 31, "with spaces " * 4])
def test_a_weak_or_invalid_webhook_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SECRET must be 32-256 characters"):
        Settings(_env_file=None, webhook_secret=secret)


def test_webhook_mode_refuses_to_start_without_a_secret_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the working directory
    monkeypatch.setenv("BOT_TOKEN", "1:x")
    monkeypatch.setenv("WEBHOOK_URL", "https://x.example/t")
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    assert main(["webhook"]) == 2
    assert "Missing: WEBHOOK_SECRET" in capsys.readouterr().err


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if wanted else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert found, f"{name} {labels} not in metrics:\n{text}"
    return float(found.group(1))
