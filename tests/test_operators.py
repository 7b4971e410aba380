"""Operators at work, end to end: adding an event in a dialogue, postponing and cancelling
with a preview and Save, importing a data file sent as a document, /stats; and everyone
else refused with nothing changed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from bot.clock import FixedClock
from bot.context import BotApplication
from storage.database import Database
from storage.datafile import EventRow, parse_text
from storage.dates import PartialDate
from storage.export import event_to_row, export_dataset
from storage.models import Event, EventChange, EventStatus
from storage.operations import cancelled, postponed
from tests.botapi import ApiCall, LocalBotApi
from tests.conftest import OPERATOR_ID, StartBot
from tests.factories import QUIET, START, TEST_EVENT, load, plain, tight_ranges

UTC = dt.UTC
OPERATOR = OPERATOR_ID  # writes from a private chat with the same id
READER = 5001
# --- helpers ----------------------------------------------------------------------------


@pytest.fixture
async def with_test_event(database_url: str, clock: FixedClock) -> None:
    await load(database_url, TEST_EVENT, clock.now())


async def events_table(database_url: str) -> list[tuple[Any, ...]]:
    """Every column of every event, and the change log: to see that nothing changed."""
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            events = await session.execute(select(Event.__table__).order_by(Event.key))
            changes = await session.execute(select(EventChange.__table__).order_by(EventChange.id))
            return [tuple(row) for row in [*events.all(), *changes.all()]]
    finally:
        await database.dispose()


async def changes_of(database_url: str, key: str) -> list[EventChange]:
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            rows = await session.scalars(
                select(EventChange)
                .join(Event, Event.id == EventChange.event_id)
                .where(Event.key == key)
            )
            return list(rows.all())
    finally:
        await database.dispose()


async def say(
    bot_api: LocalBotApi, text: str, expect: str, *, user_id: int = OPERATOR, **kwargs: Any
) -> ApiCall:
    """Send a message; the bot's first reply in that chat that contains ``expect``."""
    update = bot_api.message(text, chat_id=user_id, **kwargs)
    start = bot_api._index_at_push[update["update_id"]]
    return await bot_api.wait_for(
        lambda c: c.method == "sendMessage" and c.chat_id == user_id and expect in plain(c.text),
        after=start,
    )


async def press(
    bot_api: LocalBotApi, shown: ApiCall, label: str, *, user_id: int | None = None
) -> ApiCall:
    """Press a button under ``shown``; the edited message (or the alert when refused)."""
    update = bot_api.press(shown, shown.button(label)["callback_data"], user_id=user_id)
    return await bot_api.reply_to(update, method="answerCallbackQuery")


async def edited_after(bot_api: LocalBotApi, after: int) -> ApiCall:
    """The first edit of a message from call ``after`` on (a preview marked saved…)."""
    return await bot_api.wait_for(lambda c: c.method == "editMessageText", after=after)


def notices(bot_api: LocalBotApi, chat_id: int = READER) -> list[str]:
    return [plain(c.text) for c in bot_api.sent_to(chat_id) if "📣" in c.text]


def reminders(bot_api: LocalBotApi, chat_id: int = READER) -> list[str]:
    return [plain(c.text) for c in bot_api.sent_to(chat_id) if "⏰" in c.text]


async def sweep_at(app: BotApplication, clock: FixedClock, moment: dt.datetime) -> None:
    clock.set(moment)
    await app.bot_data.services.dispatcher.sweep()


# --- /addevent --------------------------------------------------------------------------


async def test_an_operator_adds_an_event_in_a_dialogue_and_can_open_it(
    bot_api: LocalBotApi, start_bot: StartBot
) -> None:
    async with start_bot(**QUIET):
        await say(bot_api, "/addevent", "Which organisation holds it?")
        await say(bot_api, "sco", "What kind of event is it?")
        await say(bot_api, "summit", "Its title in English")
        await say(bot_api, "Extraordinary SCO summit", "In which city?")
        await say(bot_api, "Astana", "When?")
        retry = await say(bot_api, "2026-13-45", "When?")
        assert "“2026-13-45” is not a date" in plain(retry.text)
        await say(bot_api, "2026-12-10 2026-12-11", "What is its status?")  # Astana gives the zone
        await say(bot_api, "confirmed", "Where is this from?")
        shown = await say(bot_api, "akorda.kz 2026-11-20", "check it, then save it")
        text = tight_ranges(shown.text)
        assert "Extraordinary SCO summit" in text
        assert "10–11 Dec 2026" in text
        assert "Astana, Kazakhstan" in text
        assert "Status: confirmed" in text
        assert "/event sco-2026-astana" in text
        before = len(bot_api.calls)
        await press(bot_api, shown, "Save")
        saved = await edited_after(bot_api, before)
        assert "Saved as /event sco-2026-astana." in plain(saved.text)

        card = tight_ranges((await say(bot_api, "/event sco-2026-astana", "Extraordinary")).text)
        assert "📅 10–11 Dec 2026" in card
        assert "Sources: akorda.kz 2026-11-20" in card


async def test_an_event_without_a_city_asks_for_country_and_time_zone(
    bot_api: LocalBotApi, start_bot: StartBot
) -> None:
    async with start_bot(**QUIET):
        await say(bot_api, "/addevent", "Which organisation holds it?")
        retry = await say(bot_api, "Shanghai Cooperation Club", "Which organisation")
        assert "I don't know the organisation" in plain(retry.text)
        await say(bot_api, "none", "What kind of event is it?")
        await say(bot_api, "forum", "Its title in English")
        await say(bot_api, "Astana International Forum", "In which city?")
        retry = await say(bot_api, "Atlantis", "In which city?")
        assert "I don't know the city “Atlantis”" in plain(retry.text)
        await say(bot_api, "none", "Which country?")
        await say(bot_api, "KZ", "When?")
        await say(bot_api, "2026-12-15T10:00", "Which time zone")
        retry = await say(bot_api, "none", "Which time zone")
        assert "needs a time zone" in plain(retry.text)
        await say(bot_api, "Asia/Almaty", "What is its status?")
        await say(bot_api, "planned", "Where is this from?")
        shown = await say(bot_api, "none", "check it, then save it")
        text = plain(shown.text)
        assert "15 December 2026, 10:00 (Almaty time)" in text
        assert "/event 2026-astana-international-forum" in text


async def test_cancel_leaves_the_dialogue_and_saves_nothing(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    before = await events_table(database_url)
    async with start_bot(**QUIET):
        await say(bot_api, "/addevent", "Which organisation holds it?")
        await say(bot_api, "sco", "What kind")
        await say(bot_api, "/cancel", "nothing was saved")
        # The dialogue is over: text is a search again, /cancel the event command again.
        reply = await say(bot_api, "sco", "Shanghai")
        assert "What kind" not in plain(reply.text)
        await say(bot_api, "/cancel", "There is nothing to cancel.")
    assert await events_table(database_url) == before


# --- /postpone, /cancel, /setstatus, /editevent -----------------------------------------


@pytest.mark.usefixtures("with_test_event")
async def test_postponing_notifies_a_follower_once_and_moves_the_reminders(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    async with start_bot(**QUIET) as app:
        await say(bot_api, "/subscribe test-summit", "You now follow", user_id=READER)
        shown = await say(bot_api, "/postpone test-summit 2026-12-08T10:00", "Check the change")
        text = plain(shown.text)
        assert "Dates: 1 December 2026, 10:00 → 8 December 2026, 10:00" in text
        assert "Status: confirmed → postponed" in text
        before = len(bot_api.calls)
        await press(bot_api, shown, "Save")
        saved = await edited_after(bot_api, before)
        assert "Saved." in plain(saved.text)
        # The same button again (pressed quickly, or replayed) finds nothing to do.
        replay = bot_api.press(saved, shown.button("Save")["callback_data"])
        again = await bot_api.reply_to(replay, method="answerCallbackQuery")
        assert again.parameters["text"] == "This button has expired."

        await app.bot_data.services.dispatcher.sweep()
        await app.bot_data.services.dispatcher.sweep()
        assert len(notices(bot_api)) == 1
        assert "Dates: 1 December 2026, 10:00 → 8 December 2026, 10:00" in notices(bot_api)[0]
        assert "Status: confirmed → postponed" in notices(bot_api)[0]

        # The old instants pass in silence; the new ones bring reminders.
        await sweep_at(app, clock, START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        assert reminders(bot_api) == []
        new_start = START + dt.timedelta(days=7)
        await sweep_at(app, clock, new_start - dt.timedelta(days=1) + dt.timedelta(seconds=1))
        assert len(reminders(bot_api)) == 1
        assert "8 December 2026, 10:00" in reminders(bot_api)[0]
    (change,) = await changes_of(database_url, "test-summit")
    assert change.changed_by == f"operator {OPERATOR}"
    assert change.old["status"] == "confirmed"
    assert change.new == {**change.old, "start": "2026-12-08T10:00", "status": "postponed"}


@pytest.mark.usefixtures("with_test_event")
async def test_cancel_under_a_preview_changes_nothing(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    before = await events_table(database_url)
    async with start_bot(**QUIET):
        previews = [
            await say(bot_api, "/cancel test-summit Called off by the hosts", "Check the change"),
            await say(bot_api, "/setstatus test-summit held", "Check the change"),
            await say(bot_api, "/editevent test-summit place Baku", "Check the change"),
            await say(bot_api, "/editevent test-summit title Test summit (moved)", "Check"),
        ]
        assert "Status: confirmed → cancelled" in plain(previews[0].text)
        assert "Note: — → Called off by the hosts" in plain(previews[0].text)
        assert "Status: confirmed → held" in plain(previews[1].text)
        assert "Place: Astana, Kazakhstan → Baku, Azerbaijan" in plain(previews[2].text)
        assert "Title: Test summit → Test summit (moved)" in plain(previews[3].text)
        for shown in previews:
            before_press = len(bot_api.calls)
            await press(bot_api, shown, "Cancel")
            marked = await edited_after(bot_api, before_press)
            assert "Cancelled; nothing was changed." in plain(marked.text)
        # Bad input is answered, and nothing is offered to save.
        bad = await say(bot_api, "/postpone test-summit 2026-02-30", "is not a date")
        assert bad.buttons == []
        await say(bot_api, "/editevent test-summit colour red", "Fields: title, start, end")
        await say(bot_api, "/setstatus nowhere-2026 held", "I don't know “nowhere-2026”")
        await say(bot_api, "/editevent test-summit end 2026-11-30", "end 2026-11-30 is before")
    assert await events_table(database_url) == before


@pytest.mark.usefixtures("with_test_event")
async def test_a_preview_left_for_a_quarter_of_an_hour_expires(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    before = await events_table(database_url)
    async with start_bot(**QUIET):
        shown = await say(bot_api, "/setstatus test-summit cancelled", "Check the change")
        clock.advance(dt.timedelta(minutes=15, seconds=1))
        alert = await press(bot_api, shown, "Save")
    assert alert.parameters["text"] == "This button has expired."
    assert await events_table(database_url) == before


@pytest.mark.usefixtures("with_test_event")
async def test_cancelling_an_event_keeps_the_reason_as_its_note(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    async with start_bot(**QUIET):
        shown = await say(bot_api, "/cancel test-summit Called off by the hosts", "Check")
        before = len(bot_api.calls)
        await press(bot_api, shown, "Save")
        await edited_after(bot_api, before)
        card = plain((await say(bot_api, "/event test-summit", "Test summit")).text)
    assert "Status: cancelled" in card
    assert "ℹ️ Called off by the hosts" in card
    (change,) = await changes_of(database_url, "test-summit")
    assert change.new["status"] == "cancelled"


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.usefixtures("with_test_event")
async def test_a_non_operator_is_refused_everything_and_nothing_changes(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str, caplog: Any
) -> None:
    caplog.set_level("INFO", logger="bot.handlers.operators")
    before = await events_table(database_url)
    refusal = "Only operators can do that."
    async with start_bot(**QUIET):
        for command in ("/postpone test-summit 2026-12-08", "/addevent", "/stats"):
            reply = await say(bot_api, command, "operators", user_id=READER)
            assert plain(reply.text) == refusal
        # No dialogue was started: the next text is a search.
        reply = await say(bot_api, "sco", "Shanghai", user_id=READER)
        assert "What kind" not in plain(reply.text)

        bot_api.document(
            "events.yaml", TEST_EVENT.replace("confirmed", "held").encode(), user_id=READER
        )
        await say(bot_api, "/start", "Summit tracker", user_id=READER)  # the refusal came first
        assert "Only operators can import data files." in [
            plain(c.text) for c in bot_api.sent_to(READER)
        ]
        assert not [c for c in bot_api.calls if c.method == "getFile"]

        # A forged button, and an operator's real one pressed by someone else.
        mine = await say(bot_api, "/start", "Summit tracker", user_id=READER)
        forged = bot_api.press(mine, "op:0123abcd:ok", user_id=READER)
        alert = await bot_api.reply_to(forged, method="answerCallbackQuery")
        assert alert.parameters["text"] == refusal
        shown = await say(bot_api, "/setstatus test-summit cancelled", "Check the change")
        alert = await press(bot_api, shown, "Save", user_id=READER)
        assert alert.parameters["text"] == refusal
        # An operator's forged token finds nothing either.
        forged = bot_api.press(shown, "op:0123abcd:ok")
        alert = await bot_api.reply_to(forged, method="answerCallbackQuery")
        assert alert.parameters["text"] == "This button has expired."
    assert await events_table(database_url) == before
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 6
    assert all(f"user {READER}" in message for message in refused)


# --- data files -------------------------------------------------------------------------

BROKEN = """\
events:
  - id: test-forum-2026
    title: Test forum
    place: atlantis
    start: 2026-12-20
  - id: test-forum-2027
    title: Another test forum
    start: 2027-02-30
"""
GOOD = """\
events:
  - id: test-forum-2026
    kind: forum
    title: Test forum
    place: astana
    start: 2026-12-20
    sources: [test]
"""


async def test_a_data_file_with_problems_reports_each_line_and_writes_nothing(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    before = await events_table(database_url)
    async with start_bot(**QUIET):
        update = bot_api.document("broken.yaml", BROKEN.encode(), user_id=OPERATOR)
        text = plain((await bot_api.reply_to(update)).text)
        # Far over the limit: refused without downloading.
        update = bot_api.document(
            "huge.yaml", b"events: []\n", user_id=OPERATOR, size=6 * 1024 * 1024
        )
        huge = plain((await bot_api.reply_to(update)).text)
    assert text.startswith("⚠️ Nothing was imported: 2 problems.")
    assert "broken.yaml:2: unknown place 'atlantis'" in text
    assert "broken.yaml:8: start:" in text
    assert huge == "The file is larger than 5 MB; nothing was imported."
    assert bot_api.downloads == ["file1"]
    assert await events_table(database_url) == before


async def test_a_valid_data_file_is_imported_and_reported(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    async with start_bot(**QUIET):
        update = bot_api.document("good.yaml", GOOD.encode(), user_id=OPERATOR)
        text = plain((await bot_api.reply_to(update)).text)
        assert text.startswith("✅ Imported good.yaml.")
        assert "Events: 1 added, 0 changed, 0 unchanged" in text
        assert "+ test-forum-2026" in text
        card = plain((await say(bot_api, "/event test-forum-2026", "Test forum")).text)
        assert "20 December 2026" in card
        changed = GOOD.replace("2026-12-20", "2026-12-21")
        update = bot_api.document("good.yaml", changed.encode(), user_id=OPERATOR)
        text = plain((await bot_api.reply_to(update)).text)
        assert "Events: 0 added, 1 changed, 0 unchanged" in text
        assert "✎ test-forum-2026" in text
        assert "Followers of 1 changed event will be told." in text
    (change,) = await changes_of(database_url, "test-forum-2026")
    assert change.changed_by == f"operator {OPERATOR}"


# --- /stats -----------------------------------------------------------------------------


@pytest.mark.usefixtures("with_test_event")
async def test_stats_counts_chats_subscriptions_and_deliveries(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    group, admin, blocked = -4100, 42, 5003
    bot_api.emulator.admins[group] = {admin}
    async with start_bot(**QUIET) as app:
        await say(bot_api, "/subscribe test-summit", "You now follow", user_id=READER)
        await say(bot_api, "/subscribe sco", "You now follow", user_id=5002)
        await say(bot_api, "/subscribe all", "You now follow", user_id=blocked)
        update = bot_api.message("/subscribe all", chat_id=group, user_id=admin, chat_type="group")
        await bot_api.reply_to(update)
        bot_api.emulator.blocked.add(blocked)
        # The 7-day reminders: three sent, one failed (blocked: the chat turns inactive).
        await sweep_at(app, clock, START - dt.timedelta(days=7) + dt.timedelta(seconds=1))
        # The 1-day reminders are planned two hours ahead.
        await sweep_at(app, clock, START - dt.timedelta(days=1, hours=2))
        text = plain((await say(bot_api, "/stats", "Statistics")).text)
    assert "private chats: 3 / 1" in text  # the operator, 5001, 5002 / 5003
    assert "groups: 1 / 0" in text
    assert "channels: 0 / 0" in text
    assert "everything: 1" in text  # the blocked chat's no longer counts
    assert "an organisation: 1" in text
    assert "one event: 1" in text
    assert "3 sent, 1 failed, 0 skipped" in text
    due = [line for line in text.split("\n") if "test-summit" in line]
    assert len(due) == 3
    # 05:00 UTC on 30 November is 10:00 in Almaty, the operator's time zone.
    assert all(line.startswith("30 Nov 2026, 10:00 · ") for line in due)
    assert {line.split(" · ")[1] for line in due} == {str(READER), "5002", str(group)}
    assert all(line.endswith(" · reminder") for line in due)


# --- the storage side -------------------------------------------------------------------


async def test_an_event_as_a_row_is_what_the_export_writes(database: Database) -> None:
    async with database.sessions() as session:
        exported, problems = parse_text(await export_dataset(session), "export.yaml")
        events = await session.scalars(
            select(Event).options(selectinload(Event.organisation), selectinload(Event.place))
        )
        rows = {
            e.key: event_to_row(e, e.organisation.key if e.organisation else None, e.place)
            for e in events
        }
    assert problems == []
    assert {row.id: row for row in exported.events} == rows


def _row(start: str, end: str | None) -> EventRow:
    return EventRow.model_validate(
        {"id": "talks", "title": "Talks", "start": start, "end": end, "status": "confirmed"}
    )


@pytest.mark.parametrize(
    ("start", "end", "new_start", "new_end"),
    [
        ("2026-07-03", "2026-07-04", "2026-09-10", "2026-09-11"),  # two days stay two days
        ("2026-07-03T10:00", "2026-07-03T18:00", "2026-07-05T09:00", "2026-07-05T17:00"),
        ("2026-07-03", "2026-07-04", "2026-09", None),  # a month has no known length
        ("2026-07", "2026-08", "2026-10-01", None),
    ],
)
def test_postponing_keeps_the_precision_typed_and_moves_a_known_end(
    start: str, end: str | None, new_start: str, new_end: str | None
) -> None:
    row = postponed(_row(start, end), PartialDate.parse(new_start))
    assert row.start.literal == new_start
    assert (row.end.literal if row.end else None) == new_end
    assert row.status is EventStatus.POSTPONED


def test_cancelling_with_a_reason_makes_it_the_note() -> None:
    row = cancelled(_row("2026-07-03", None), "Called off")
    assert row.status is EventStatus.CANCELLED
    assert row.note == {"en": "Called off"}
