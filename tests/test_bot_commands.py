"""End to end: the real application long-polls a local Bot API server; each test sends
update JSON as Telegram would and asserts on what the bot sent back over HTTP."""

from __future__ import annotations

import re

import pytest

from bot.context import BotApplication
from tests.botapi import LocalBotApi
from tests.factories import plain, tight_ranges

pytestmark = pytest.mark.usefixtures("bot")


def blocks(text: str) -> dict[str, str]:
    """The /chairs reply as {abbreviation: its block of plain text}."""
    result = {}
    for block in plain(text).split("\n\n")[1:]:
        result[block.split(" — ", 1)[0]] = block
    return result


async def ask(bot_api: LocalBotApi, text: str, **kwargs: object) -> str:
    update = bot_api.message(text, **kwargs)  # type: ignore[arg-type]
    return (await bot_api.reply_to(update)).text


async def test_start_up_registers_the_command_menu(bot_api: LocalBotApi) -> None:
    menu = await bot_api.wait_for(lambda call: call.method == "setMyCommands")
    names = [command["command"] for command in menu.parameters["commands"]]
    assert names[:3] == ["chairs", "upcoming", "next"]
    assert "search" in names


async def test_start_explains_the_bot_and_lists_commands(bot_api: LocalBotApi) -> None:
    text = await ask(bot_api, "/start")
    assert "who chairs which international organisation" in text
    for command in ("/chairs", "/upcoming", "/org", "/summits", "/next", "/event", "/search"):
        assert command in text


async def test_chairs_2024_shows_kazakhstan_in_five_chairs_with_dates(
    bot_api: LocalBotApi,
) -> None:
    text = await ask(bot_api, "/chairs 2024")
    by_org = blocks(text)
    assert "Kazakhstan: 4 July 2023 – 4 July 2024" in by_org["SCO"]
    assert "China: since 4 July 2024" not in by_org["SCO"]  # its end is known
    assert "Kazakhstan: 1 Jan – 31 Dec 2024" in by_org["CSTO"]
    assert "Kazakhstan: 2020 – 17 December 2024" in by_org["CICA"]
    assert "Kazakhstan: 3 November 2023 – 6 November 2024" in by_org["OTS"]
    assert "Kazakhstan: 1 January 2024 – 31 December 2026" in by_org["IFAS"]
    assert "Kazakhstan" not in by_org["IOFS"]  # the articles' 2024 claim is disputed


async def test_chairs_today_names_one_chair_per_organisation(bot_api: LocalBotApi) -> None:
    text = plain(await ask(bot_api, "/chairs"))
    assert text.startswith("Who chairs what on 22 November 2026")
    assert "Russia: 1 Jan – 31 Dec 2026" in text  # CSTO
    assert "Kyrgyzstan: since 1 September 2025" in text  # SCO


async def test_chairs_on_a_handover_day_names_the_incoming_chair(bot_api: LocalBotApi) -> None:
    text = plain(await ask(bot_api, "/chairs 2024-07-04"))
    sco = blocks(text)["SCO"]
    assert "China" in sco
    assert "Kazakhstan" not in sco


@pytest.mark.parametrize("bad", ["2024-13-01", "yesterday", "20245", "2024-02-30"])
async def test_chairs_with_a_bad_date_says_how_to_write_one(bot_api: LocalBotApi, bad: str) -> None:
    text = plain(await ask(bot_api, f"/chairs {bad}"))
    assert f"I can't read “{bad}” as a date" in text
    assert "2024-07-03" in text


async def test_org_by_russian_abbreviation_shows_the_sco_card(bot_api: LocalBotApi) -> None:
    text = plain(await ask(bot_api, "/org ШОС"))
    assert text.startswith("Shanghai Cooperation Organisation (SCO)")
    assert "Founded: 15 June 2001" in text
    assert "Members: 10" in text
    assert "Chair now: Kyrgyzstan" in text
    assert "Kazakhstan: 4 July 2023 – 4 July 2024" in text
    assert "Last: 31 Aug – 1 Sept 2025 · Tianjin, China" in text
    assert "Sources:" in text


async def test_org_card_of_a_month_precision_event_invents_no_day(bot_api: LocalBotApi) -> None:
    text = plain(await ask(bot_api, "/org cica"))
    assert "7th CICA summit" in text or "7th summit" in text
    assert "October 2026" in text
    assert "1 October 2026" not in text
    assert "00:00" not in text


async def test_unknown_organisation_gets_suggestions(bot_api: LocalBotApi) -> None:
    text = plain(await ask(bot_api, "/org CTSO"))
    assert "I don't know “CTSO”" in text
    assert "Did you mean:" in text
    assert "CSTO" in text


async def test_summits_of_sco_list_with_buttons_and_pages(bot_api: LocalBotApi) -> None:
    update = bot_api.message("/summits sco")
    reply = await bot_api.reply_to(update)
    text = tight_ranges(reply.text)
    assert text.startswith("Summits and meetings of SCO")
    lines = text.split("\n")[1:]
    assert lines[0].startswith("1. 15–16 Sept 2022 · Samarkand, Uzbekistan · SCO:")
    assert any("3–4 Jul 2024 · Astana, Kazakhstan" in line for line in lines)
    assert any(line.startswith("5. 2026 · Bishkek, Kyrgyzstan") for line in lines)
    # Every item opens its card.
    astana = reply.button("24th")
    assert astana["callback_data"] == "e:sco-2024-astana"


async def test_pressing_an_event_button_opens_its_card(bot_api: LocalBotApi) -> None:
    listing = await bot_api.reply_to(bot_api.message("/summits sco 2024"))
    press = bot_api.press(listing, listing.button("24th")["callback_data"])
    card = tight_ranges((await bot_api.reply_to(press)).text)
    assert card.startswith("24th")
    assert "📅 3–4 Jul 2024" in card
    assert "📍 Astana, Kazakhstan" in card
    assert "Status: held" in card
    assert "Sources:" in card
    answered = await bot_api.wait_for(lambda c: c.method == "answerCallbackQuery")
    assert "text" not in answered.parameters


async def test_paging_buttons_edit_the_list_in_place(bot_api: LocalBotApi) -> None:
    listing = await bot_api.reply_to(bot_api.message("/past"))
    assert "(page 1 of" in listing.text
    forward = listing.button("▶")
    press = bot_api.press(listing, forward["callback_data"])
    edited = await bot_api.reply_to(press, method="editMessageText")
    assert "(page 2 of" in edited.text
    assert edited.button("◀")["callback_data"].endswith(":0")


async def test_a_forged_button_is_refused_politely(bot_api: LocalBotApi) -> None:
    listing = await bot_api.reply_to(bot_api.message("/upcoming"))
    for forged in ("e:../../etc", "l:x:sco:2024:1", "o:" + "a" * 60, "drop table"):
        press = bot_api.press(listing, forged)
        answer = await bot_api.reply_to(press, method="answerCallbackQuery")
        assert answer.parameters["text"] == "This button has expired."
    # Nothing else was sent to the chat after the list.
    assert len(bot_api.sent_to(5001)) == 1


async def test_a_button_for_an_event_deleted_since_says_not_found(bot_api: LocalBotApi) -> None:
    listing = await bot_api.reply_to(bot_api.message("/upcoming"))
    press = bot_api.press(listing, "e:no-such-event")
    reply = plain((await bot_api.reply_to(press)).text)
    assert "I don't know “no-such-event”" in reply


async def test_next_cis_has_a_countdown(bot_api: LocalBotApi, bot: BotApplication) -> None:
    text = plain(await ask(bot_api, "/next cis"))
    # Today is 22 Nov 2026: the Avaza council (9 Oct 2026) is past, its outcome not on
    # record; none is announced. The answer says so rather than go quiet.
    assert text.startswith("No upcoming events of CIS are known.\n")
    assert "Last: 9 October 2026 · Avaza, Turkmenistan" in text
    assert "dates passed — outcome not recorded" in text
    assert "/event cis-2026-ashgabat" in text


async def test_next_cis_before_the_ashgabat_council(bot_api: LocalBotApi, clock: object) -> None:
    import datetime as dt

    from bot.clock import FixedClock

    assert isinstance(clock, FixedClock)
    clock.set(dt.datetime(2026, 9, 29, 12, 0, tzinfo=dt.UTC))
    text = plain(await ask(bot_api, "/next cis"))
    assert "CIS Heads of State Council" in text
    assert "📅 9 October 2026" in text
    assert "📍 Avaza, Turkmenistan" in text  # moved from Ashgabat (December 2025)
    assert "⏳ in 10 days" in text


async def test_next_without_a_name_is_the_next_meeting_not_an_observance(
    bot_api: LocalBotApi,
) -> None:
    text = plain(await ask(bot_api, "/next"))
    assert "international day" not in text.lower()
    assert "Status:" in text


async def test_upcoming_includes_the_next_world_water_day(bot_api: LocalBotApi) -> None:
    text = plain(await ask(bot_api, "/upcoming"))
    assert "World Water Day" in text
    water = next(line for line in text.split("\n") if "World Water Day" in line)
    assert "22 March 2027" in water


async def test_event_card_by_id(bot_api: LocalBotApi) -> None:
    text = plain(await ask(bot_api, "/event sco-2024-astana"))
    assert "🏛 Shanghai Cooperation Organisation (SCO)" in text
    assert "/event sco-2024-astana" in text


async def test_event_unknown_id_suggests(bot_api: LocalBotApi) -> None:
    text = plain(await ask(bot_api, "/event sco-2024-astna"))
    assert "I don't know “sco-2024-astna”" in text


@pytest.mark.parametrize("command", ["/event sco\x00", "/subscribe all \x00", "/subscribe x\x00y"])
async def test_a_nul_character_is_not_found_rather_than_an_error(
    bot_api: LocalBotApi, command: str
) -> None:
    """PostgreSQL cannot hold U+0000 in text, so no event has it in its id: asking for
    one is answered as an unknown name, not with an error."""
    text = plain(await ask(bot_api, command))
    assert "I don't know" in text


async def test_search_in_chinese_finds_cica(bot_api: LocalBotApi) -> None:
    text = plain(await ask(bot_api, "/search 亚信"))
    assert text.startswith("Conference on Interaction and Confidence-Building Measures in Asia")
    assert "Kazakhstan" in text


@pytest.mark.parametrize("name", ["SCO", "ШОС", "ШЫҰ", "上合", "上海合作组织", "شنغهاي", "sco"])
async def test_plain_text_in_any_language_finds_the_sco(bot_api: LocalBotApi, name: str) -> None:
    text = plain(await ask(bot_api, name))
    assert "Shanghai Cooperation Organisation" in text


async def test_plain_text_with_a_typo_still_finds(bot_api: LocalBotApi) -> None:
    text = plain(await ask(bot_api, "Shangai Cooperation"))
    assert "Shanghai Cooperation Organisation" in text


async def test_plain_text_next_csto_summit_answers_the_question(
    bot_api: LocalBotApi, clock: object
) -> None:
    import datetime as dt

    from bot.clock import FixedClock

    assert isinstance(clock, FixedClock)
    clock.set(dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    text = plain(await ask(bot_api, "next CSTO summit"))
    assert "Collective Security Council" in text
    assert "Moscow" in text


async def test_nonsense_search_says_not_found(bot_api: LocalBotApi) -> None:
    text = plain(await ask(bot_api, "/search qqqzzzxxx"))
    assert "I don't know “qqqzzzxxx”" in text


async def test_overlong_and_hostile_text_is_answered_safely(bot_api: LocalBotApi) -> None:
    text = await ask(bot_api, "<b>" + "x" * 4000)
    assert "&lt;b&gt;" in text  # escaped, not interpreted
    assert len(plain(text)) < 4096


async def test_group_plain_text_is_ignored_but_commands_work(bot_api: LocalBotApi) -> None:
    bot_api.message("ШОС", chat_id=-4001, user_id=42, chat_type="group")
    reply = await bot_api.reply_to(
        bot_api.message("/chairs 2024", chat_id=-4001, user_id=42, chat_type="group")
    )
    assert "Who chaired what in 2024" in reply.text
    assert len(bot_api.sent_to(-4001)) == 1


async def test_a_failing_telegram_call_tells_the_user_and_the_bot_goes_on(
    bot_api: LocalBotApi,
) -> None:
    bot_api.fail("sendMessage", 500, "Internal Server Error")
    bot_api.message("/chairs")
    apology = await bot_api.wait_for(
        lambda c: c.method == "sendMessage" and "something went wrong" in c.text
    )
    assert apology.chat_id == 5001
    text = await ask(bot_api, "/help")
    assert "/chairs" in text


async def test_telegram_429_is_waited_out_and_the_reply_arrives(bot_api: LocalBotApi) -> None:
    bot_api.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1, times=1)
    update = bot_api.message("/chairs 2024")
    first = await bot_api.reply_to(update)
    second = await bot_api.wait_for(
        lambda c: c.method == "sendMessage" and c.chat_id == 5001,
        after=bot_api.calls.index(first) + 1,
    )
    assert second.at - first.at >= 0.9
    assert "Who chaired what in 2024" in second.text


async def test_every_reply_is_valid_telegram_html(bot_api: LocalBotApi) -> None:
    # The server rejects what Telegram rejects; a 400 would surface as an apology.
    for command in ("/org", "/org ots", "/org iofs", "/summits", "/past", "/upcoming 2026"):
        await ask(bot_api, command)
    assert not [c for c in bot_api.calls if "something went wrong" in c.text]
    assert all(re.search(r"\S", c.text) for c in bot_api.sent_to(5001))
