"""The latency benchmark's in-process Bot API: inline answers are checked after the timer.

Checking Telegram's HTML rules is the emulator's work, not the bot's: an inline answer
is answered at once and checked right after the update, and a refused one still voids
the run (it is logged at ERROR, which the benchmark counts as a failure).
"""

from __future__ import annotations

import logging

import pytest
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from bench.inprocess import CheckAfterwardsRequest, InProcessBot, bench_settings
from bot.clock import FixedClock
from bot.transports.emulator import BotApiEmulator
from tests.conftest import NOW

URL = "https://api.telegram.org/bot123:x/answerInlineQuery"


def _answer(text: str) -> RequestData:
    result = {
        "type": "article",
        "id": "o:sco",
        "title": "SCO",
        "input_message_content": {"message_text": text, "parse_mode": "HTML"},
    }
    return RequestData(
        [
            RequestParameter("inline_query_id", "1", None),
            RequestParameter("results", [result], None),
        ]
    )


async def test_an_inline_answer_is_accepted_at_once_and_checked_afterwards(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observed: list[str] = []
    request = CheckAfterwardsRequest(BotApiEmulator(), lambda method, *_: observed.append(method))
    status, body = await request.do_request(URL, "POST", _answer("<b>SCO</b> unclosed <i>tag"))
    assert (status, body) == (200, b'{"ok":true,"result":true}')
    assert observed == []  # nothing checked yet
    with caplog.at_level(logging.ERROR):
        refused = request.check_deferred()
    assert [error.description for error in refused] == [
        "Bad Request: can't parse entities: can't find end tag corresponding to start tag \"i\""
    ]
    assert "would have refused answerInlineQuery" in caplog.text
    assert request.check_deferred() == []  # checked once

    await request.do_request(URL, "POST", _answer("<b>SCO</b> summit"))
    assert request.check_deferred() == []
    assert observed == ["answerInlineQuery"]


async def test_the_benchmark_times_an_inline_query_without_the_check(database_url: str) -> None:
    bot = InProcessBot(bench_settings(database_url), FixedClock(NOW))
    async with bot.running():
        await bot.process(bot.inline_query(4242, "sco"))
    # Checked (and so seen) by the time ``process`` returns, outside its timing.
    assert bot.calls["answerInlineQuery"] == 1
    assert bot.request.deferred == []
