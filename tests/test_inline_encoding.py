"""Inline results go to Telegram as JSON built by the handler, not by PTB's general
encoder (a third of an inline query's time), and it is exactly the JSON PTB would send."""

from __future__ import annotations

from typing import Any

import pytest
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResult,
    InlineQueryResultArticle,
    InputTextMessageContent,
)

from bench.inprocess import InProcessBot, bench_settings
from bot.clock import FixedClock
from bot.handlers import inline
from bot.presentation import render
from bot.presentation.i18n import Translator, directional
from tests.conftest import NOW

QUERIES = ("sco", "", "astana", "bishkek summit", "ШОС", "上海合作组织")


def _answered(bot: InProcessBot) -> list[dict[str, Any]]:
    """Every answerInlineQuery the bot sends from now on, its parameters as Telegram
    reads them (after the emulator checked them)."""
    sent: list[dict[str, Any]] = []
    observe = bot.request.observer

    def record(method: str, parameters: dict[str, Any], result: Any) -> None:
        if method == "answerInlineQuery":
            sent.append(parameters)
        if observe is not None:
            observe(method, parameters, result)

    bot.request.observer = record
    return sent


async def _answers(database_url: str, monkeypatch: pytest.MonkeyPatch, *, by_ptb: bool) -> Any:
    """The results the bot answers each query with (and the next offsets), as sent."""
    bot = InProcessBot(bench_settings(database_url), FixedClock(NOW))
    sent = _answered(bot)
    if by_ptb:
        ptb_bot = bot.application.bot

        def article(
            result_id: str,
            title: str,
            description: str,
            reply: render.Reply,
            tr: Translator,
            _defaults: dict[str, Any],
        ) -> dict[str, Any]:
            # What the handler used to hand PTB, encoded by PTB itself.
            result = InlineQueryResultArticle(
                id=result_id,
                title=title,
                description=description,
                input_message_content=InputTextMessageContent(directional(reply.text, tr)[:4096]),
                reply_markup=reply.inline_keyboard,
            )
            # PTB's ExtBot marks this @no_type_check, which drops its annotation.
            with_defaults: InlineQueryResult = ptb_bot._insert_defaults_for_ilq_results(result)
            return with_defaults.to_dict()

        monkeypatch.setattr(inline, "_article", article)
    async with bot.running():
        for query in QUERIES:
            await bot.process(bot.inline_query(4242, query))
    monkeypatch.undo()
    return sent


async def test_inline_results_are_the_json_ptb_would_send(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = await _answers(database_url, monkeypatch, by_ptb=False)
    by_ptb = await _answers(database_url, monkeypatch, by_ptb=True)
    assert len(direct) == len(QUERIES)
    assert sum(len(answer["results"]) for answer in direct) >= 20
    assert direct == by_ptb


async def test_inline_results_skip_ptbs_general_encoder(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoded: list[str] = []
    for cls in (InlineKeyboardButton, InlineKeyboardMarkup, InlineQueryResultArticle):
        to_dict = cls.to_dict

        def counted(self: Any, recursive: bool = True, *, _to_dict: Any = to_dict) -> Any:
            encoded.append(type(self).__name__)
            return _to_dict(self, recursive)

        monkeypatch.setattr(cls, "to_dict", counted)
    bot = InProcessBot(bench_settings(database_url), FixedClock(NOW))
    answered = _answered(bot)
    async with bot.running():
        await bot.process(bot.inline_query(4242, "sco"))
    assert answered and answered[0]["results"], "no results to encode"
    assert encoded == []


def test_a_button_with_other_fields_is_left_to_ptb() -> None:
    plain = InlineKeyboardButton("SCO", callback_data="o:sco")
    shared = InlineKeyboardButton("Share", switch_inline_query="sco")
    assert inline._button_json(plain) == plain.to_dict()
    assert (
        inline._button_json(shared)
        == shared.to_dict()
        == {
            "text": "Share",
            "switch_inline_query": "sco",
        }
    )


@pytest.mark.parametrize(
    ("offset", "page"),
    [("", 0), ("20", 20), ("25", 20), ("²", 0), ("³", 0), ("-1", 0), ("x", 0), ("9" * 30, 0)],
)
def test_a_forged_offset_starts_from_the_first_result(offset: str, page: int) -> None:
    # Telegram hands back the offset the bot gave; a client may send anything, and
    # "²".isdigit() is true while int("²") fails.
    assert inline._offset(offset) == page
