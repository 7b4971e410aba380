"""Five languages, every time zone, calendar files and inline mode, as readers meet them."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import icalendar
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.clock import FixedClock
from bot.presentation import ics
from bot.presentation.i18n import LRI, PDI, RLM, catalogue_path, directional, translator
from bot.transports.emulator import parse_html
from config.languages import SUPPORTED_LANGUAGES, normalise_language
from storage.models import ChatType, EventStatus
from storage.timezones import nearest_city, resolve_timezone
from storage.views import ChatView, EventView
from tests.botapi import LocalBotApi
from tests.conftest import StartBot
from tests.factories import load, make_event, plain

UTC = dt.UTC
TRANSLATED = [language for language in SUPPORTED_LANGUAGES if language != "en"]
PLACEHOLDER = re.compile(r"{\w*}")


# --- catalogues ----------------------------------------------------------------


def _catalogue(language: str) -> Any:
    with catalogue_path(language).open("rb") as source:
        return read_po(source, locale=language)


def _source_messages() -> set[str]:
    root = Path(__file__).resolve().parent.parent / "bot"
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2)}
    found = set()
    for _, _, message, _, _ in extract_from_dir(
        str(root), method_map=[("**.py", "python")], keywords=keywords
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def test_every_string_in_the_code_is_in_the_catalogues() -> None:
    in_code = _source_messages()
    for language in TRANSLATED:
        in_catalogue = {m.id[0] if isinstance(m.id, tuple) else m.id for m in _catalogue(language)}
        missing = in_code - in_catalogue
        assert not missing, f"{language}: run `make messages` and translate {sorted(missing)}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_a_catalogue_is_complete_and_keeps_every_placeholder(language: str) -> None:
    for message in _catalogue(language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert not message.fuzzy, f"{language}: fuzzy {ids[0]!r}"
        assert all(strings), f"{language}: untranslated {ids[0]!r}"
        wanted = set(PLACEHOLDER.findall(" ".join(ids)))
        for string in strings:
            found = set(PLACEHOLDER.findall(string))
            assert found == wanted, f"{language}: {ids[0]!r} → {string!r}"
            assert string.count("<b>") == ids[0].count("<b>"), f"{language}: tags in {string!r}"


def test_no_string_hides_inside_an_f_string() -> None:
    # pybabel cannot see _() inside f-strings: such text would never be translated.
    for path in (Path(__file__).resolve().parent.parent / "bot").rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not re.search(r"""f["'].*\{[^}]*(?:\b_|gettext)\(""", line), f"{path}:{number}"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("zh-hans", "zh"),
        ("zh-CN", "zh"),
        ("zh_TW", "zh"),
        ("ru-RU", "ru"),
        ("kk", "kk"),
        ("ar-EG", "ar"),
        ("pt-br", "en"),
        (None, "en"),
        ("", "en"),
        ("x" * 300, "en"),
    ],
)
def test_telegram_language_codes_are_normalised(code: str | None, expected: str) -> None:
    assert normalise_language(code, "en") == expected


# --- replies in each language ------------------------------------------------------


async def ask(bot_api: LocalBotApi, text: str, **kwargs: Any) -> str:
    return (await bot_api.reply_to(bot_api.message(text, **kwargs))).text


@pytest.mark.usefixtures("bot")
@pytest.mark.parametrize(
    ("code", "kazakhstan", "heading"),
    [
        ("zh-hans", "哈萨克斯坦", "上海合作组织"),
        ("ru", "Казахстан", "Шанхайская организация сотрудничества"),
        ("kk", "Қазақстан", "Шанхай ынтымақтастық ұйымы"),
        ("ar", "كازاخستان", "منظمة شنغهاي للتعاون"),
    ],
)
async def test_a_new_user_is_answered_in_their_language(
    bot_api: LocalBotApi, code: str, kazakhstan: str, heading: str
) -> None:
    chat_id = 8000 + len(code)
    help_text = plain(await ask(bot_api, "/start", chat_id=chat_id, language_code=code))
    english = plain(translator("en").gettext("What this bot does"))
    assert english not in help_text
    chairs = plain(await ask(bot_api, "/chairs 2024", chat_id=chat_id, language_code=code))
    assert kazakhstan in chairs
    assert "2024" in chairs
    card = plain(await ask(bot_api, "/org sco", chat_id=chat_id, language_code=code))
    assert heading in card
    assert "Shanghai Cooperation Organisation" in card  # other names stay listed


@pytest.mark.usefixtures("bot")
async def test_arabic_lines_read_right_to_left(bot_api: LocalBotApi) -> None:
    raw = await ask(bot_api, "/summits sco 2024", chat_id=8100, language_code="ar")
    for line in raw.split("\n"):
        if line:
            assert line.startswith(RLM), line
    assert LRI in raw and PDI in raw  # the day range "3–4" is isolated left to right


def test_direction_marks_only_in_right_to_left_languages() -> None:
    text = "📅 3–4 July 2024\n<b>SCO</b>"
    assert directional(text, translator("ru")) == text
    arabic = directional(text, translator("ar"))
    assert arabic == f"{RLM}📅 {LRI}3–4{PDI} July 2024\n{RLM}<b>SCO</b>"
    parse_html(arabic)  # still valid HTML for Telegram


# CLDR writes a day range tight ("3–4") or spaced with any of Unicode's spaces ("3 – 4"):
# Babel 2.19 spaced the English one with thin spaces. Either way, Arabic keeps it whole.
@pytest.mark.parametrize("dash", ["–", " – ", "\u2009–\u2009", "\xa0–\xa0", "\u202f–\u202f", "-"])
def test_a_day_range_is_isolated_left_to_right_however_it_is_spaced(dash: str) -> None:
    arabic = directional(f"📅 3{dash}4 يوليو 2024", translator("ar"))
    assert arabic == f"{RLM}📅 {LRI}3{dash}4{PDI} يوليو 2024"


ARABIC = 8150
# A two-day meeting a week and a bit after the tests' clock (22 November 2026).
RANGE_EVENT = """
events:
  - id: range-summit
    organisation: sco
    title: {en: Range summit, ar: قمة المدى}
    place: astana
    start: 2026-12-10
    end: 2026-12-11
    status: confirmed
    sources: [test]
"""


def _isolated_range(text: str) -> bool:
    """The two days stand inside one left-to-right isolate, whatever the spacing."""
    return re.search(f"{LRI}10[^{PDI}]*11{PDI}", text) is not None


async def test_arabic_keeps_day_ranges_whole_in_cards_reminders_and_inline_results(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str, clock: FixedClock
) -> None:
    await load(database_url, RANGE_EVENT, clock.now())
    async with start_bot(reminder_sweep_seconds=3600) as app:
        card = await ask(bot_api, "/event range-summit", chat_id=ARABIC, language_code="ar")
        assert "قمة المدى" in card
        assert _isolated_range(card), card

        await ask(bot_api, "/subscribe range-summit", chat_id=ARABIC, language_code="ar")
        # Day precision: the one-day reminder comes at 09:00 in the chat's zone (Almaty, +5).
        clock.set(dt.datetime(2026, 12, 9, 4, 1, tzinfo=UTC))
        await app.bot_data.services.dispatcher.sweep()
        reminder = await bot_api.wait_for(lambda c: c.method == "sendMessage" and "⏰" in c.text)
        assert reminder.parameters["chat_id"] in (ARABIC, str(ARABIC))
        assert "قمة المدى" in reminder.text
        assert _isolated_range(reminder.text), reminder.text

        bot_api.push(_inline_query("Range summit", language="ar"))
        answer = await bot_api.wait_for(lambda c: c.method == "answerInlineQuery")
        result = answer.parameters["results"][0]
        assert result["id"] == "e:range-summit"
        assert _isolated_range(result["input_message_content"]["message_text"])


@pytest.mark.usefixtures("bot")
async def test_lang_switches_by_button_and_a_group_keeps_its_language(
    bot_api: LocalBotApi,
) -> None:
    group, admin, guest = -8200, 51, 52
    bot_api.emulator.admins[group] = {admin}
    menu = await bot_api.reply_to(
        bot_api.message("/lang", chat_id=group, user_id=admin, chat_type="group")
    )
    press = bot_api.press(menu, menu.button("Русский")["callback_data"], user_id=admin)
    confirmed = await bot_api.reply_to(press, method="editMessageText")
    assert "русский" in plain(confirmed.text).lower()
    # A Chinese-speaking member writes: the group still speaks Russian.
    text = plain(
        await ask(
            bot_api,
            "/chairs 2024",
            chat_id=group,
            user_id=guest,
            chat_type="group",
            language_code="zh-hans",
        )
    )
    assert "Казахстан" in text


@pytest.mark.usefixtures("bot")
async def test_the_command_menu_is_set_in_every_language(bot_api: LocalBotApi) -> None:
    await bot_api.wait_for(
        lambda c: c.method == "setMyCommands" and c.parameters.get("language_code") == "ar"
    )
    menus = {
        c.parameters.get("language_code", ""): c.parameters["commands"]
        for c in bot_api.calls
        if c.method == "setMyCommands"
    }
    assert set(menus) == {"", *SUPPORTED_LANGUAGES}
    descriptions = {code: menu[0]["description"] for code, menu in menus.items()}
    assert len({descriptions[code] for code in TRANSLATED}) == len(TRANSLATED)


# --- time zones ----------------------------------------------------------------------

NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("Asia/Almaty", "Asia/Almaty"),
        ("europe/berlin", "Europe/Berlin"),
        ("Berlin", "Europe/Berlin"),
        ("Пекин", "Asia/Shanghai"),
        ("北京", "Asia/Shanghai"),
        ("Алматы", "Asia/Almaty"),
        ("Нур-Султан", "Asia/Almaty"),
        ("بكين", "Asia/Shanghai"),
        ("Moskow", "Europe/Moscow"),
        ("UTC+5", "Etc/GMT-5"),
        ("+03:00", "Etc/GMT-3"),
        ("UTC-8", "Etc/GMT+8"),
        ("UTC+5:30", "Asia/Kolkata"),
    ],
)
def test_a_time_zone_is_found_from_what_people_type(text: str, zone: str) -> None:
    found = resolve_timezone(text, NOW)
    assert found is not None
    assert found.zone == zone


@pytest.mark.parametrize("text", ["Gotham", "UTC+25", "", "Mars/Olympus"])
def test_nonsense_is_not_a_time_zone(text: str) -> None:
    assert resolve_timezone(text, NOW) is None


def test_a_shared_location_finds_the_nearest_city() -> None:
    assert nearest_city(51.13, 71.43).timezone == "Asia/Almaty"  # Astana
    assert nearest_city(52.52, 13.40).timezone == "Europe/Berlin"


@pytest.mark.usefixtures("bot")
async def test_tz_by_city_changes_how_times_are_shown(bot_api: LocalBotApi) -> None:
    reply = plain(await ask(bot_api, "/tz Berlin"))
    assert "Europe/Berlin" in reply
    assert "UTC+01:00" in reply
    unknown = plain(await ask(bot_api, "/tz Berlim"))
    assert "Europe/Berlin" in unknown  # a small typo still finds it
    nonsense = plain(await ask(bot_api, "/tz Gotham"))
    assert "I don't know the time zone of “Gotham”" in nonsense


@pytest.mark.usefixtures("bot")
async def test_a_shared_location_sets_the_zone(bot_api: LocalBotApi) -> None:
    update = bot_api.message("", chat_id=8300)
    update["message"].pop("text")
    update["message"]["location"] = {"latitude": 39.9, "longitude": 116.4}
    reply = plain((await bot_api.reply_to(update)).text)
    assert "Asia/Shanghai" in reply


def _event(start: str, zone: str | None, end: str | None = None) -> EventView:
    return make_event(
        start,
        end,
        zone=zone,
        place=("astana", "Astana", "KZ"),
        status=EventStatus.CONFIRMED,
        sources=("https://example.org/talks", "seeds 000"),
    )


@pytest.mark.parametrize(
    ("start", "berlin"),
    [
        ("2024-02-29T10:00", "29 February 2024, 05:00"),  # Astana UTC+6, Berlin UTC+1
        ("2024-03-01T10:00", "1 March 2024, 06:00"),  # Astana UTC+5 since 1 March 2024
        ("2024-07-03T10:00", "3 July 2024, 07:00"),  # Berlin on summer time, UTC+2
    ],
)
def test_astana_times_for_a_reader_in_berlin_across_both_clock_changes(
    start: str, berlin: str
) -> None:
    from bot.presentation.events import event_card

    chat = ChatView(1, ChatType.PRIVATE, None, "en", "Europe/Berlin", True)
    card = plain(event_card(_event(start, "Asia/Almaty"), chat, NOW, translator("en")).text)
    assert f"{berlin} (Berlin time)" in card


# --- calendar files --------------------------------------------------------------------


def _parse(data: bytes) -> list[Any]:
    calendar = icalendar.Calendar.from_ical(data)
    return list(calendar.walk("VEVENT"))


def test_a_timed_event_round_trips_with_its_zone_and_alarms() -> None:
    event = _event("2024-07-03T10:00", "Asia/Almaty", "2024-07-04T18:00")
    data = ics.calendar_file([event], (10080, 1440, 60), translator("en"), NOW)
    (entry,) = _parse(data)
    assert str(entry["uid"]) == "talks@summitbot"
    start = entry.decoded("dtstart")
    assert start == dt.datetime(2024, 7, 3, 5, 0, tzinfo=UTC)
    assert str(start.tzinfo) in ("Asia/Almaty", "Asia/Almaty")  # the venue's zone, not UTC
    assert entry.decoded("dtend") == dt.datetime(2024, 7, 4, 13, 0, tzinfo=UTC)
    assert str(entry["location"]) == "Astana, Kazakhstan"
    assert str(entry["url"]) == "https://example.org/talks"
    triggers = sorted(alarm.decoded("trigger") for alarm in entry.walk("VALARM"))
    assert triggers == [-dt.timedelta(days=7), -dt.timedelta(days=1), -dt.timedelta(hours=1)]
    assert b"BEGIN:VTIMEZONE" in data


def test_day_and_month_events_are_all_day_and_years_are_left_out() -> None:
    events = [
        _event("2024-07-03", "Asia/Almaty", "2024-07-04"),
        _event("2026-10", "Asia/Baku"),
        _event("2026", None),
    ]
    events[1] = EventView(**{**events[1].__dict__, "key": "baku"})
    events[2] = EventView(**{**events[2].__dict__, "key": "someday"})
    entries = _parse(ics.calendar_file(events, (60,), translator("en"), NOW))
    assert [str(e["uid"]) for e in entries] == ["talks@summitbot", "baku@summitbot"]
    day, month = entries
    assert day.decoded("dtstart") == dt.date(2024, 7, 3)
    assert day.decoded("dtend") == dt.date(2024, 7, 5)  # exclusive
    assert month.decoded("dtstart") == dt.date(2026, 10, 1)
    assert month.decoded("dtend") == dt.date(2026, 11, 1)
    assert "not announced" in str(month["description"])


@pytest.mark.usefixtures("bot")
async def test_add_to_calendar_sends_an_ics_file(bot_api: LocalBotApi) -> None:
    card = await bot_api.reply_to(bot_api.message("/event sco-2024-astana"))
    press = bot_api.press(card, card.button("calendar")["callback_data"])
    sent = await bot_api.reply_to(press, method="sendDocument")
    document = sent.parameters["document"]
    assert document.filename == "sco-2024-astana.ics"
    (entry,) = _parse(document.content)
    assert entry.decoded("dtstart") == dt.date(2024, 7, 3)
    assert "Astana" in str(entry["location"])


@pytest.mark.usefixtures("bot")
async def test_calendar_holds_everything_the_chat_follows(
    bot_api: LocalBotApi, clock: FixedClock
) -> None:
    empty = plain(await ask(bot_api, "/calendar", chat_id=8400))
    assert "follows no event" in empty
    await ask(bot_api, "/subscribe csto", chat_id=8400)
    sent = await bot_api.reply_to(bot_api.message("/calendar", chat_id=8400), method="sendDocument")
    uids = {str(e["uid"]) for e in _parse(sent.parameters["document"].content)}
    assert "csto-2024-astana@summitbot" in uids
    assert all(uid.startswith("csto-") for uid in uids)


# --- inline mode -------------------------------------------------------------------------


def _inline_query(text: str, language: str = "ru") -> dict[str, Any]:
    return {
        "inline_query": {
            "id": "q1",
            "from": {"id": 8500, "is_bot": False, "first_name": "R", "language_code": language},
            "query": text,
            "offset": "",
        }
    }


@pytest.mark.usefixtures("bot")
async def test_inline_query_finds_the_astana_sco_summit(bot_api: LocalBotApi) -> None:
    bot_api.push(_inline_query("ШОС 2024"))
    answer = await bot_api.wait_for(lambda c: c.method == "answerInlineQuery")
    assert answer.status == 200  # every result passed the server's checks
    results = answer.parameters["results"]
    assert results[0]["id"] == "e:sco-2024-astana"
    content = plain(results[0]["input_message_content"]["message_text"])
    assert "Астана" in content  # in the reader's language
    assert answer.parameters["is_personal"] in (True, "true")


@pytest.mark.usefixtures("bot")
async def test_a_button_under_an_inline_message_edits_it_in_place(bot_api: LocalBotApi) -> None:
    bot_api.push(
        {
            "callback_query": {
                "id": "cq-inline",
                "from": {"id": 8600, "is_bot": False, "first_name": "Reader"},
                "inline_message_id": "AAAA",
                "chat_instance": "x",
                "data": "o:sco",
            }
        }
    )
    edited = await bot_api.wait_for(lambda c: c.method == "editMessageText")
    assert edited.parameters["inline_message_id"] == "AAAA"
    assert "Shanghai Cooperation Organisation" in plain(edited.text)


async def test_inline_results_come_ten_at_a_time_as_the_reader_scrolls(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str, clock: FixedClock
) -> None:
    """Telegram asks for the next page with the ``next_offset`` of the last answer; an
    offset a modified client made up gets the first page."""
    forums = "events:\n" + "".join(
        f"  - id: zanzibar-forum-{n:02d}\n"
        f"    organisation: sco\n"
        f"    title: {{en: Zanzibar forum {n}}}\n"
        f"    place: astana\n"
        f"    start: 2027-03-{n:02d}\n"
        f"    sources: [test]\n"
        for n in range(1, 26)
    )
    await load(database_url, forums, clock.now())

    async def page(offset: str) -> tuple[list[str], str]:
        query = _inline_query("zanzibar", "en")
        query["inline_query"]["offset"] = offset
        query["inline_query"]["id"] = f"q-{offset}"
        bot_api.push(query)
        answer = await bot_api.wait_for(
            lambda c: (
                c.method == "answerInlineQuery" and c.parameters["inline_query_id"] == f"q-{offset}"
            )
        )
        assert answer.status == 200
        ids = [result["id"] for result in answer.parameters["results"]]
        return ids, str(answer.parameters.get("next_offset") or "")

    async with start_bot():
        first, next_offset = await page("")
        second, after_second = await page(next_offset)
        third, after_third = await page(after_second)
        forged, _ = await page("not-a-number")
    assert (len(first), next_offset) == (10, "10")
    assert (len(second), after_second) == (10, "20")
    assert (len(third), after_third) == (5, "")  # the last page says there is no more
    shown = first + second + third
    assert sorted(shown) == sorted(f"e:zanzibar-forum-{n:02d}" for n in range(1, 26))
    assert forged == first
