"""The calendar feed in webhook mode: /calendar gives a secret address that calendar apps
poll; "New link" replaces it; the address opens only that chat's calendar."""

from __future__ import annotations

import re

import icalendar
import pytest

from tests.botapi import LocalBotApi
from tests.conftest import StartBot
from tests.factories import QUIET, plain
from tests.test_webhook import StartWebhook, Webhook, start_webhook

__all__ = ["start_webhook"]  # the fixture, shared with the webhook tests

FEED = re.compile(r"https://bot\.example\.org(/calendar/[A-Za-z0-9_-]{32}\.ics)")


async def feed_of(bot_api: LocalBotApi, webhook: Webhook, chat_id: int) -> tuple[str, str]:
    """The feed path /calendar shows in ``chat_id``, and that message's text."""
    before = len(bot_api.calls)
    update = bot_api.message("/calendar", chat_id=chat_id)
    assert (await webhook.post(update))[0] == 200
    shown = await bot_api.wait_for(
        lambda c: c.method == "sendMessage" and c.chat_id == chat_id and "/calendar/" in c.text,
        after=before,
    )
    found = FEED.search(plain(shown.text))
    assert found, shown.text
    return found.group(1), shown.text


async def test_the_feed_lists_what_the_chat_follows_and_stays_current(
    bot_api: LocalBotApi, start_webhook: StartWebhook
) -> None:
    async with start_webhook() as (_, webhook):
        for text in ("/subscribe sco", "/lang ru"):
            assert (await webhook.post(bot_api.message(text, chat_id=8501)))[0] == 200
        path, _shown = await feed_of(bot_api, webhook, 8501)
        status, content_type, body = await webhook.get(path)
        # Following something more shows in the same feed at the next poll.
        assert (await webhook.post(bot_api.message("/subscribe csto", chat_id=8501)))[0] == 200
        later = await webhook.get(path)
    assert status == 200 and content_type.startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(body)
    summaries = [str(e["SUMMARY"]) for e in calendar.walk("VEVENT")]
    assert summaries and all("ШОС" in s or "SCO" in s for s in summaries)
    more = [str(e["SUMMARY"]) for e in icalendar.Calendar.from_ical(later[2]).walk("VEVENT")]
    assert len(more) > len(summaries)


async def test_a_new_link_retires_the_old_one(
    bot_api: LocalBotApi, start_webhook: StartWebhook
) -> None:
    async with start_webhook() as (_, webhook):
        path, _shown = await feed_of(bot_api, webhook, 8502)
        shown = bot_api.sent_to(8502)[-1]
        press = bot_api.press(shown, shown.button("New link")["callback_data"])
        assert (await webhook.post(press))[0] == 200
        edited = await bot_api.reply_to(press, method="editMessageText")
        new_path = FEED.search(plain(edited.text))
        old = await webhook.get(path)
        assert new_path is not None
        new = await webhook.get(new_path.group(1))
        again, _ = await feed_of(bot_api, webhook, 8502)  # /calendar shows the current one
    assert "The old link no longer works." in plain(edited.text)
    assert old[0] == 404
    assert new[0] == 200
    assert again == new_path.group(1) != path


async def test_only_group_admins_may_replace_the_link(
    bot_api: LocalBotApi, start_webhook: StartWebhook
) -> None:
    group = -8503
    bot_api.emulator.admins[group] = {1}
    async with start_webhook() as (_, webhook):
        update = bot_api.message("/calendar", chat_id=group, user_id=1, chat_type="group")
        assert (await webhook.post(update))[0] == 200
        shown = await bot_api.wait_for(lambda c: c.chat_id == group and "/calendar/" in c.text)
        path = FEED.search(plain(shown.text))
        press = bot_api.press(shown, shown.button("New link")["callback_data"], user_id=2)
        assert (await webhook.post(press))[0] == 200
        refusal = await bot_api.reply_to(press, method="answerCallbackQuery")
        assert path is not None
        still = await webhook.get(path.group(1))
    assert "Only the admins" in refusal.parameters.get("text", "")
    assert still[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/calendar/" + "A" * 32 + ".ics",  # well-formed, unknown
        "/calendar/short.ics",
        "/calendar/" + "%2F" * 11 + ".ics",
        "/calendar/.ics",
    ],
)
async def test_an_unknown_or_malformed_feed_address_is_not_found(
    start_webhook: StartWebhook, path: str
) -> None:
    async with start_webhook() as (_, webhook):
        status, _type, _body = await webhook.get(path)
    assert status == 404


async def test_forgetting_the_chat_closes_its_feed(
    bot_api: LocalBotApi, start_webhook: StartWebhook
) -> None:
    async with start_webhook() as (_, webhook):
        path, _shown = await feed_of(bot_api, webhook, 8504)
        ask = bot_api.message("/forgetme", chat_id=8504)
        assert (await webhook.post(ask))[0] == 200
        question = await bot_api.reply_to(ask)
        yes = bot_api.press(question, question.button("Delete")["callback_data"])
        assert (await webhook.post(yes))[0] == 200
        await bot_api.reply_to(yes, method="answerCallbackQuery")
        status, _type, _body = await webhook.get(path)
    assert status == 404


async def test_without_a_public_address_there_is_no_feed(
    bot_api: LocalBotApi, start_bot: StartBot
) -> None:
    async with start_bot(**QUIET):  # long polling: no web server, no feed
        update = bot_api.message("/subscribe sco", chat_id=8505)
        await bot_api.reply_to(update)
        calendar = bot_api.message("/calendar", chat_id=8505)
        await bot_api.reply_to(calendar, method="sendDocument")
    assert not [c for c in bot_api.calls if "/calendar/" in c.text]
