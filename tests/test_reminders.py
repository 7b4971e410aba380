"""Reminders end to end: subscribe through Telegram updates, move a fixed clock, let the
dispatcher sweep, and count what arrived at the local Bot API server."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import FixedClock
from bot.context import BotApplication
from bot.delivery.dispatcher import Dispatcher, SweepResult, messages_in_flight
from storage.chats import forget_chat
from storage.claims import claim_due
from storage.database import Database
from storage.models import (
    Chat,
    ChatType,
    Delivery,
    DeliveryStatus,
    Event,
    Subscription,
    SubscriptionScope,
)
from tests.botapi import ApiCall, LocalBotApi
from tests.conftest import StartBot, make_settings
from tests.factories import QUIET, START, TEST_EVENT, load, plain, track_taken

T = TypeVar("T")
UTC = dt.UTC
USER = 5001


async def ledger(database_url: str, chat_id: int = USER) -> list[tuple[int, str]]:
    """(lead minutes, status) of a chat's reminders, by due time."""
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            rows = await session.execute(
                select(Delivery.slot, Delivery.status)
                .where(Delivery.chat_id == chat_id)
                .order_by(Delivery.due_at)
            )
            return [(slot, DeliveryStatus(status).value) for slot, status in rows.all()]
    finally:
        await database.dispose()


async def stored(database_url: str, model: type[T], key: int) -> T | None:
    """A row as the database has it now."""
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            return await session.get(model, key)
    finally:
        await database.dispose()


async def subscribers(database_url: str) -> list[int]:
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            return list((await session.scalars(select(Subscription.chat_id))).all())
    finally:
        await database.dispose()


def dispatcher(application: BotApplication) -> Dispatcher:
    return application.bot_data.services.dispatcher


def reminders(bot_api: LocalBotApi, chat_id: int = USER) -> list[ApiCall]:
    return [c for c in bot_api.sent_to(chat_id) if "⏰" in c.text]


async def subscribe(bot_api: LocalBotApi, what: str, chat_id: int = USER, **kwargs: object) -> str:
    update = bot_api.message(f"/subscribe {what}", chat_id=chat_id, **kwargs)  # type: ignore[arg-type]
    return plain((await bot_api.reply_to(update)).text)


async def sweep_at(application: BotApplication, clock: FixedClock, moment: dt.datetime) -> None:
    clock.set(moment)
    await dispatcher(application).sweep()


@pytest.fixture
async def with_test_event(database_url: str, clock: FixedClock) -> None:
    await load(database_url, TEST_EVENT, clock.now())


pytestmark = pytest.mark.usefixtures("with_test_event")


async def test_a_subscriber_gets_each_reminder_once_at_its_instant(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    async with start_bot(**QUIET) as app:
        assert "You now follow" in await subscribe(bot_api, "test-summit")
        expected = [
            (dt.timedelta(days=7), "in 1 week"),
            (dt.timedelta(days=1), "in 1 day"),
            (dt.timedelta(hours=1), "in 1 hour"),
        ]
        for number, (lead, countdown) in enumerate(expected, start=1):
            await sweep_at(app, clock, START - lead - dt.timedelta(seconds=1))
            assert len(reminders(bot_api)) == number - 1  # not a second early
            await sweep_at(app, clock, START - lead + dt.timedelta(seconds=2))
            sent = await bot_api.wait_for(
                lambda c: c.method == "sendMessage" and "⏰" in c.text,
                after=len(bot_api.calls) - 1 if number > 1 else 0,
            )
            text = plain(reminders(bot_api)[-1].text)
            assert len(reminders(bot_api)) == number
            assert "Test summit" in text
            assert f"⏳ {countdown}" in text
            assert "1 December 2026, 10:00 (Almaty time)" in text
            assert sent.buttons[0]["callback_data"] == "e:test-summit"
        await sweep_at(app, clock, START + dt.timedelta(hours=2))
        assert len(reminders(bot_api)) == 3


async def test_the_job_queue_wakes_the_dispatcher_on_its_own(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    clock.set(START - dt.timedelta(hours=1, seconds=2))
    async with start_bot(reminder_sweep_seconds=0.2):
        await subscribe(bot_api, "test-summit")
        clock.set(START - dt.timedelta(minutes=50))
        reminder = await bot_api.wait_for(lambda c: c.method == "sendMessage" and "⏰" in c.text)
    assert "in 50 minutes" in plain(reminder.text)
    assert len(reminders(bot_api)) == 1


async def test_subscribing_an_hour_and_a_bit_before_brings_only_the_one_hour_reminder(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    clock.set(START - dt.timedelta(hours=1, minutes=10))
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "test-summit")
        await sweep_at(app, clock, START - dt.timedelta(minutes=59, seconds=50))
        await bot_api.wait_for(lambda c: "⏰" in c.text)
        await sweep_at(app, clock, START + dt.timedelta(days=1))
    assert len(reminders(bot_api)) == 1
    assert "in 1 hour" in plain(reminders(bot_api)[0].text)
    assert await ledger(database_url) == [(60, "sent")]


async def test_a_follow_plans_its_reminders_even_where_the_last_sweep_did_not_reach(
    database_url: str,
) -> None:
    # The ledger was last planned at the data file's import, days before; a sweep may be
    # advancing it right now, having read the followers before this follow: the follow
    # must plan its own reminders up to where that sweep will, or they are never created.
    from storage.planning import Planner
    from storage.subscriptions import Subscriptions

    now = START - dt.timedelta(hours=1, minutes=10)
    database = Database(database_url)
    try:
        async with database.transaction() as session:
            session.add(Chat(id=USER, type=ChatType.PRIVATE, language="en", timezone="UTC"))
        await Subscriptions(database, Planner()).follow(
            USER, SubscriptionScope.EVENT, "test-summit", now
        )
    finally:
        await database.dispose()
    assert await ledger(database_url) == [(60, "pending")]


async def test_a_reminder_due_while_the_bot_was_down_arrives_once_after_restart(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "test-summit")
        await sweep_at(app, clock, START - dt.timedelta(days=7) + dt.timedelta(seconds=1))
        await sweep_at(app, clock, START - dt.timedelta(days=1, minutes=30))
    # Down across the "1 day before" instant.
    clock.set(START - dt.timedelta(days=1) + dt.timedelta(minutes=20))
    async with start_bot(**QUIET) as app:
        await dispatcher(app).sweep()
        await dispatcher(app).sweep()
    async with start_bot(**QUIET) as app:
        await dispatcher(app).sweep()
    assert len(reminders(bot_api)) == 2
    assert "in 1 day" in plain(reminders(bot_api)[1].text)
    assert await ledger(database_url) == [(10080, "sent"), (1440, "sent")]


async def test_after_long_downtime_only_the_latest_due_reminder_is_sent(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    clock.set(START - dt.timedelta(days=8))
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "test-summit")
        await dispatcher(app).sweep()
    clock.set(START - dt.timedelta(minutes=30))
    async with start_bot(**QUIET) as app:
        await dispatcher(app).sweep()
    assert len(reminders(bot_api)) == 1
    assert "in 30 minutes" in plain(reminders(bot_api)[0].text)
    assert await ledger(database_url) == [(10080, "skipped"), (1440, "skipped"), (60, "sent")]


async def test_reminders_whose_event_has_started_are_skipped_not_sent(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "test-summit")
        await dispatcher(app).sweep()
    clock.set(START + dt.timedelta(hours=3))
    async with start_bot(**QUIET) as app:
        await dispatcher(app).sweep()
    assert reminders(bot_api) == []
    assert {status for _, status in await ledger(database_url)} == {"skipped"}


async def test_a_crash_with_messages_in_flight_loses_none(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "test-summit")
        await sweep_at(app, clock, START - dt.timedelta(days=7, minutes=1))
    # A dispatcher claims the 7-day reminder and dies before sending it.
    clock.set(START - dt.timedelta(days=7) + dt.timedelta(seconds=5))
    database = Database(database_url)
    async with database.transaction() as session:
        batch = await claim_due(session, clock.now(), "dead-worker", 10)
    await database.dispose()
    assert len(batch.deliveries) == 1
    clock.set(clock.now() + dt.timedelta(seconds=3))
    async with start_bot(**QUIET, delivery_lease_seconds=2) as app:
        await dispatcher(app).sweep()
        await dispatcher(app).sweep()
    assert len(reminders(bot_api)) == 1
    assert (10080, "sent") in await ledger(database_url)


async def test_a_blocked_bot_deactivates_the_chat_and_stops_its_reminders(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "test-summit")
        bot_api.emulator.blocked.add(USER)
        await sweep_at(app, clock, START - dt.timedelta(days=7) + dt.timedelta(seconds=1))
        await sweep_at(app, clock, START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
    assert reminders(bot_api) == []
    chat = await stored(database_url, Chat, USER)
    assert chat is not None and not chat.is_active
    assert (10080, "failed") in await ledger(database_url)
    # Nothing was planned for an inactive chat, and nothing stayed pending.
    assert "pending" not in {status for _, status in await ledger(database_url)}


async def test_a_user_who_blocks_and_unblocks_the_bot_is_tracked(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    def member_update(old: str, new: str) -> dict[str, object]:
        user = {"id": USER, "is_bot": False, "first_name": "Tester"}
        bot = {"id": 100000001, "is_bot": True, "first_name": "Summit Bot"}
        return {
            "my_chat_member": {
                "chat": {"id": USER, "type": "private", "first_name": "Tester"},
                "from": user,
                "date": 1,
                "old_chat_member": {"status": old, "user": bot, "until_date": 0},
                "new_chat_member": {"status": new, "user": bot, "until_date": 0},
            }
        }

    async def active() -> bool:
        chat = await stored(database_url, Chat, USER)
        return bool(chat and chat.is_active)

    async with start_bot(**QUIET):
        await subscribe(bot_api, "test-summit")
        bot_api.push(member_update("member", "kicked"))
        for _ in range(100):
            if not await active():
                break
            await asyncio.sleep(0.05)
        assert not await active()
        bot_api.push(member_update("kicked", "member"))
        for _ in range(100):
            if await active():
                break
            await asyncio.sleep(0.05)
        assert await active()


async def test_a_group_upgraded_to_a_supergroup_keeps_its_reminders(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    group, supergroup, admin = -4100, -1004100, 42
    bot_api.emulator.admins[group] = {admin}
    async with start_bot(**QUIET) as app:
        text = await subscribe(
            bot_api, "test-summit", chat_id=group, user_id=admin, chat_type="group"
        )
        assert "You now follow" in text
        bot_api.fail(
            "sendMessage",
            400,
            "Bad Request: group chat was upgraded to a supergroup chat",
            migrate_to_chat_id=supergroup,
        )
        await sweep_at(app, clock, START - dt.timedelta(days=7) + dt.timedelta(seconds=1))
    assert reminders(bot_api, group) == []
    assert len(reminders(bot_api, supergroup)) == 1
    old = await stored(database_url, Chat, group)
    assert await subscribers(database_url) == [supergroup]
    assert old is not None and old.migrated_to_id == supergroup and not old.is_active


async def test_telegram_429_pauses_and_the_reminder_still_arrives_once(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "test-summit")
        bot_api.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
        await sweep_at(app, clock, START - dt.timedelta(days=7) + dt.timedelta(seconds=1))
        assert reminders(bot_api) == []
        await sweep_at(app, clock, clock.now() + dt.timedelta(seconds=2))
    assert len(reminders(bot_api)) == 1


async def test_server_errors_are_retried_with_back_off_then_given_up(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    async with start_bot(**QUIET, delivery_max_attempts=3) as app:
        await subscribe(bot_api, "test-summit")
        bot_api.fail("sendMessage", 502, "Bad Gateway", times=2)
        due = START - dt.timedelta(days=7) + dt.timedelta(seconds=1)
        await sweep_at(app, clock, due)
        await sweep_at(app, clock, due + dt.timedelta(seconds=2))  # back-off not over
        await sweep_at(app, clock, due + dt.timedelta(seconds=6))
        await sweep_at(app, clock, due + dt.timedelta(seconds=20))
        assert len(reminders(bot_api)) == 1
        bot_api.fail("sendMessage", 500, "Internal Server Error", times=10)
        due = START - dt.timedelta(days=1) + dt.timedelta(seconds=1)
        for seconds in (0, 10, 30, 60):
            await sweep_at(app, clock, due + dt.timedelta(seconds=seconds))
    assert len(reminders(bot_api)) == 1
    assert (1440, "failed") in await ledger(database_url)


async def test_postponing_an_event_notifies_once_and_moves_its_reminders(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "test-summit")
        postponed = TEST_EVENT.replace("2026-12-01T10:00", "2026-12-08T10:00").replace(
            "confirmed", "postponed"
        )
        await load(database_url, postponed, clock.now())
        await dispatcher(app).sweep()
        await load(database_url, postponed, clock.now())  # the same file again: no news
        await dispatcher(app).sweep()
        notices = [c for c in bot_api.sent_to(USER) if "📣" in c.text]
        assert len(notices) == 1
        text = plain(notices[0].text)
        assert "Dates: 1 December 2026, 10:00 → 8 December 2026, 10:00" in text
        assert "Status: confirmed → postponed" in text
        # The old instants pass in silence; the new ones bring reminders.
        await sweep_at(app, clock, START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        assert reminders(bot_api) == []
        new_start = START + dt.timedelta(days=7)
        await sweep_at(app, clock, new_start - dt.timedelta(days=1) + dt.timedelta(seconds=1))
        assert len(reminders(bot_api)) == 1
        assert "8 December 2026, 10:00" in plain(reminders(bot_api)[0].text)


async def test_a_month_precision_event_gets_one_notice_at_the_start_of_its_month(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    clock.set(dt.datetime(2026, 9, 20, tzinfo=UTC))
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "cica-2026-baku")
        # 09:00 on 1 October in the chat's zone (Asia/Almaty, UTC+5) is 04:00 UTC.
        await sweep_at(app, clock, dt.datetime(2026, 10, 1, 3, 59, tzinfo=UTC))
        assert [c for c in bot_api.sent_to(USER) if "🗓" in c.text] == []
        await sweep_at(app, clock, dt.datetime(2026, 10, 1, 4, 0, 1, tzinfo=UTC))
        await sweep_at(app, clock, dt.datetime(2026, 10, 30, tzinfo=UTC))
    notices = [plain(c.text) for c in bot_api.sent_to(USER) if "🗓" in c.text]
    assert len(notices) == 1
    assert "This month" in notices[0]
    assert "📅 October 2026" in notices[0]
    assert reminders(bot_api) == []


async def test_changing_lead_times_replans(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "test-summit")
        menu = await bot_api.reply_to(bot_api.message("/mysubs"))
        lead_menu = await bot_api.reply_to(bot_api.press(menu, menu.buttons[0]["callback_data"]))
        # Switch off "7 days", switch on "15 minutes".
        for label in ("7 days", "15 minutes"):
            press = bot_api.press(lead_menu, lead_menu.button(label)["callback_data"])
            edited = await bot_api.reply_to(press, method="editMessageText")
            assert edited.button(label)["text"].startswith("✓" if label == "15 minutes" else "·")
        for lead in (dt.timedelta(days=7), dt.timedelta(days=1), dt.timedelta(minutes=15)):
            await sweep_at(app, clock, START - lead + dt.timedelta(seconds=1))
    texts = [plain(c.text) for c in reminders(bot_api)]
    assert len(texts) == 2
    assert "in 1 day" in texts[0]
    assert "in 15 minutes" in texts[1]


OTHER_EVENT = """
events:
  - id: other-summit
    organisation: cica
    title: {en: Other summit}
    place: astana
    start: 2026-12-01T10:30
    status: confirmed
    sources: [test]
"""


async def test_a_subscriptions_lead_times_re_plan_its_own_events_only(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    clock.set(START - dt.timedelta(hours=1, minutes=30))
    await load(database_url, OTHER_EVENT, clock.now(), name="other.yaml")

    async def pending() -> dict[str, int]:  # event id → the id of its pending reminder
        database = Database(database_url)
        try:
            async with database.sessions() as session:
                rows = await session.execute(
                    select(Event.key, Delivery.id)
                    .join(Event, Event.id == Delivery.event_id)
                    .where(Delivery.chat_id == USER, Delivery.status == DeliveryStatus.PENDING)
                )
                return {row[0]: row[1] for row in rows.all()}
        finally:
            await database.dispose()

    async with start_bot(**QUIET):
        await subscribe(bot_api, "test-summit")
        await subscribe(bot_api, "other-summit")
        before = await pending()
        assert set(before) == {"test-summit", "other-summit"}  # each one's "1 hour before"
        listing = await bot_api.reply_to(bot_api.message("/mysubs"))
        lead_button = next(
            b for b in listing.buttons if b["callback_data"].startswith("t:") and "⏱" in b["text"]
        )
        lead_menu = await bot_api.reply_to(bot_api.press(listing, lead_button["callback_data"]))
        target = plain(lead_menu.text)
        followed = "Test summit" if "Test summit" in target else "Other summit"
        kept = "other-summit" if followed == "Test summit" else "test-summit"
        assert f"Remind before {followed}:" in target
        shown = lead_menu
        for label in ("1 hour", "7 days"):
            press = bot_api.press(shown, shown.button(label)["callback_data"])
            shown = await bot_api.reply_to(press, method="editMessageText")
            assert shown.button(label)["text"].startswith("·")
            assert f"Remind before {followed}:" in plain(shown.text)
        # Its "1 hour before" is gone; the other event's reminder was not touched.
        assert await pending() == {kept: before[kept]}
        press = bot_api.press(shown, shown.button("1 day")["callback_data"])
        refusal = await bot_api.reply_to(press, method="answerCallbackQuery")
        assert refusal.parameters["text"] == "Keep at least one lead time."
        assert refusal.parameters["show_alert"] is True
        again = await bot_api.reply_to(bot_api.message("/mysubs"))
        assert "1 day" in plain(again.text)


async def test_in_a_group_only_admins_may_subscribe(
    bot_api: LocalBotApi, start_bot: StartBot
) -> None:
    group, admin, member = -4200, 42, 43
    bot_api.emulator.admins[group] = {admin}
    async with start_bot(**QUIET):
        refused = await subscribe(bot_api, "sco", chat_id=group, user_id=member, chat_type="group")
        assert refused == "Only the admins of this group can change what it follows."
        accepted = await subscribe(bot_api, "sco", chat_id=group, user_id=admin, chat_type="group")
        assert "You now follow SCO" in accepted
        listing = await bot_api.reply_to(
            bot_api.message("/mysubs", chat_id=group, user_id=member, chat_type="group")
        )
        # A member may look but not touch: the unfollow button is refused.
        press = bot_api.press(listing, listing.button("✖")["callback_data"], user_id=member)
        refusal = await bot_api.reply_to(press, method="answerCallbackQuery")
        assert refusal.parameters["text"] == (
            "Only the admins of this group can change what it follows."
        )


async def test_an_anonymous_admin_may_subscribe_the_group(
    bot_api: LocalBotApi, start_bot: StartBot
) -> None:
    group = -4300
    async with start_bot(**QUIET):
        # Anonymous admins write as the group; Telegram shows GroupAnonymousBot as sender.
        update = bot_api.message(
            "/subscribe all", chat_id=group, user_id=1087968824, chat_type="group", as_chat=True
        )
        reply = plain((await bot_api.reply_to(update)).text)
    assert "You now follow all summits and meetings" in reply


async def test_a_forged_unfollow_button_cannot_touch_another_chats_subscription(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    async with start_bot(**QUIET):
        await subscribe(bot_api, "sco", chat_id=6001)
        listing = await bot_api.reply_to(bot_api.message("/mysubs", chat_id=6001))
        victim = listing.button("✖")["callback_data"]
        mine = await bot_api.reply_to(bot_api.message("/mysubs", chat_id=6002))
        reply = await bot_api.reply_to(bot_api.press(mine, victim))
        assert plain(reply.text) == "This chat does not follow that."
    assert await subscribers(database_url) == [6001]


async def test_two_dispatchers_on_one_database_deliver_each_reminder_once(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    chats = list(range(7001, 7201))
    # One replica polls Telegram; both dispatch (a second poller would get 409 Conflict).
    async with start_bot(**QUIET) as first, start_bot(**QUIET, polling=False) as second:
        for chat_id in chats:
            await subscribe(bot_api, "test-summit", chat_id=chat_id)
        for app in (first, second):
            dispatcher(app).batch_size = 10
        clock.set(START - dt.timedelta(days=7) + dt.timedelta(seconds=1))
        results = await asyncio.gather(dispatcher(first).sweep(), dispatcher(second).sweep())
    per_chat = {chat_id: len(reminders(bot_api, chat_id)) for chat_id in chats}
    assert set(per_chat.values()) == {1}
    assert sum(result.sent for result in results) == len(chats)
    if database_url.startswith("postgresql"):
        # Row locks let both work side by side; SQLite serialises them.
        assert all(result.sent > 0 for result in results)


async def test_the_one_shot_wake_up_sends_on_time_without_the_sweep(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    clock.set(START - dt.timedelta(hours=1, seconds=2))
    async with start_bot(**QUIET) as app:  # the repeating sweep waits an hour
        await dispatcher(app).sweep()
        await subscribe(bot_api, "test-summit")  # plans the 1-hour reminder, due in 2 s
        jobs = {job.name for job in app.job_queue.jobs()} if app.job_queue else set()
        assert "reminder-wakeup" in jobs
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        reminder = await bot_api.wait_for(lambda c: c.method == "sendMessage" and "⏰" in c.text)
    assert "in 1 hour" in plain(reminder.text)


async def test_a_later_wake_up_leaves_an_earlier_one_in_place(
    start_bot: StartBot, clock: FixedClock
) -> None:
    # Each 🔔 that plans a reminder due soon asks for a wake-up; a later one must not
    # replace the one already set for an earlier reminder.
    clock.set(START - dt.timedelta(hours=2))
    async with start_bot(**QUIET) as app:
        assert app.job_queue is not None
        dispatcher(app).wake_by(clock.now() + dt.timedelta(seconds=30))
        dispatcher(app).wake_by(clock.now() + dt.timedelta(seconds=120))
        dispatcher(app).wake_by(clock.now() + dt.timedelta(seconds=5))
        dispatcher(app).wake_by(clock.now() + dt.timedelta(hours=2))  # the sweep comes first
        wake_ups = sorted(
            (job.next_t - dt.datetime.now(UTC)).total_seconds()
            for job in app.job_queue.get_jobs_by_name("reminder-wakeup")
            if job.next_t is not None
        )
    assert len(wake_ups) == 2
    assert 4 < wake_ups[0] <= 5.1 and 29 < wake_ups[1] <= 30.1


async def test_a_meeting_moved_by_half_an_hour_does_not_repeat_a_sent_reminder(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "test-summit")
        await sweep_at(app, clock, START - dt.timedelta(days=1) + dt.timedelta(seconds=1))
        assert len(reminders(bot_api)) == 1  # the 1-day one (7 days came before the sweep)
        later = TEST_EVENT.replace("2026-12-01T10:00", "2026-12-01T10:30")
        await load(database_url_of(app), later, clock.now())
        await sweep_at(app, clock, START - dt.timedelta(days=1) + dt.timedelta(minutes=31))
        notices = [c for c in bot_api.sent_to(USER) if "📣" in c.text]
        assert len(notices) == 1
        assert len(reminders(bot_api)) == 1
        await sweep_at(app, clock, START + dt.timedelta(seconds=1))  # 1 hour before 10:30
        assert len(reminders(bot_api)) == 2
        assert "10:30" in plain(reminders(bot_api)[-1].text)


async def test_unblocking_the_bot_brings_the_next_reminders_back(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "test-summit")
        await sweep_at(app, clock, START - dt.timedelta(days=1) + dt.timedelta(seconds=1))
        await sweep_at(app, clock, START - dt.timedelta(hours=3))  # 1-hour reminder planned
        services = app.bot_data.services
        await services.chats.set_active(USER, False, "bot was blocked", clock.now())
        await services.chats.set_active(USER, True, "bot was unblocked", clock.now())
        await sweep_at(app, clock, START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
    assert len(reminders(bot_api)) == 2
    assert "in 1 hour" in plain(reminders(bot_api)[-1].text)


async def test_correcting_a_past_event_sends_no_change_notice(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "all")
        clock.set(START + dt.timedelta(days=3))
        held = TEST_EVENT.replace("confirmed", "held")
        await load(database_url, held, clock.now())
        await dispatcher(app).sweep()
    assert [c for c in bot_api.sent_to(USER) if "📣" in c.text] == []


def database_url_of(application: BotApplication) -> str:
    return application.bot_data.services.settings.database_url


async def test_paid_broadcasts_are_asked_for_and_lift_the_overall_rate(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    chats = [USER + n for n in range(10)]
    settings = {"allow_paid_broadcast": True, "delivery_rate_per_second": 2}
    async with start_bot(**QUIET, **settings) as app:
        for chat in chats:
            await subscribe(bot_api, "test-summit", chat_id=chat)
        started = time.monotonic()
        await sweep_at(app, clock, START - dt.timedelta(minutes=59, seconds=58))
        elapsed = time.monotonic() - started
    sent = [call for chat in chats for call in reminders(bot_api, chat)]
    assert len(sent) == 10
    assert all(call.parameters.get("allow_paid_broadcast") in (True, "true") for call in sent)
    # At the free rate of 2 a second, ten reminders would take four seconds or more.
    assert elapsed < 3.0


async def test_without_paid_broadcasts_reminders_do_not_ask_for_them(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    async with start_bot(**QUIET) as app:
        await subscribe(bot_api, "test-summit")
        await sweep_at(app, clock, START - dt.timedelta(minutes=59, seconds=58))
    [reminder] = reminders(bot_api)
    assert "allow_paid_broadcast" not in reminder.parameters


async def claim_then_deliver(
    app: BotApplication,
    bot_api: LocalBotApi,
    clock: FixedClock,
    database_url: str,
    meanwhile: Callable[[AsyncSession, int], Awaitable[None]],
) -> int:
    """Subscribe, let this app's dispatcher claim the 7-day reminder, do ``meanwhile``
    (in a transaction of its own, with the delivery's id), then let it deliver the claim.
    Returns the delivery's id."""
    await subscribe(bot_api, "test-summit")
    await sweep_at(app, clock, START - dt.timedelta(days=7, minutes=1))  # planned
    clock.set(START - dt.timedelta(days=7) + dt.timedelta(seconds=5))
    sender = dispatcher(app)
    database = Database(database_url)
    # Held as a sweep holds it: the app's own sweeps (its job queue runs) would otherwise
    # hand this process's claims back at their start and send the reminder themselves.
    async with sender._lock:
        try:
            async with database.transaction() as session:
                batch = await claim_due(session, clock.now(), sender.worker, 10)
            (delivery,) = batch.deliveries
            opened = await sender._open_batch(batch.deliveries)
            async with database.transaction() as session:
                await meanwhile(session, delivery.id)
            await sender._deliver(delivery, SweepResult(), opened)
        finally:
            await sender._release_send_ledger()  # as the end of a sweep does
            await database.dispose()
    return delivery.id


async def test_a_claim_taken_over_by_another_replica_is_not_sent(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    """A claim is renewed right before its send: one another replica has taken
    meanwhile (its lease ran out while it waited) is not sent."""

    async def taken_over(session: AsyncSession, delivery_id: int) -> None:
        row = await session.get(Delivery, delivery_id)
        assert row is not None
        row.claimed_by = "another-replica"  # its lease ran out; another took it

    async with start_bot(**QUIET) as app:
        delivery_id = await claim_then_deliver(app, bot_api, clock, database_url, taken_over)
    assert reminders(bot_api) == []
    taken = await stored(database_url, Delivery, delivery_id)
    assert taken is not None and taken.claimed_by == "another-replica"
    assert DeliveryStatus(taken.status) is DeliveryStatus.CLAIMED


async def test_a_reminder_claimed_just_before_the_chat_is_forgotten_is_not_sent(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    """ "Forget me" deletes the chat and its deliveries, claimed ones too: the renewal
    before the send finds the row gone, and nothing goes to a chat forgotten a moment ago."""

    async def forgotten(session: AsyncSession, delivery_id: int) -> None:
        await forget_chat(session, USER)  # the person pressed "Forget me"

    async with start_bot(**QUIET) as app:
        await claim_then_deliver(app, bot_api, clock, database_url, forgotten)
    assert reminders(bot_api) == []


async def test_messages_in_flight_are_capped_by_the_setting(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    """DELIVERY_MAX_IN_FLIGHT bounds how many sends are out at once (what a crash could
    repeat); with Telegram slow to answer, no more than that many are ever waiting."""
    chats = list(range(9101, 9131))
    async with start_bot(**QUIET, delivery_max_in_flight=3, delivery_rate_limit=False) as app:
        for chat_id in chats:
            await subscribe(bot_api, "test-summit", chat_id=chat_id)
        bot_api.send_delay = 0.05
        await sweep_at(app, clock, START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
    assert [len(reminders(bot_api, chat_id)) for chat_id in chats] == [1] * len(chats)
    assert bot_api.most_sending_at_once == 3


async def test_a_sweep_says_how_long_telegram_and_the_sent_marks_took(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """With Telegram taking 50 ms to answer, a sweep's sent messages spent at least that
    each on the way, and their marks far less: the sweep and each batch's log line say so."""
    chats = list(range(9151, 9157))
    caplog.set_level("INFO", logger="bot.delivery.dispatcher")
    async with start_bot(**QUIET, delivery_max_in_flight=3, delivery_rate_limit=False) as app:
        for chat_id in chats:
            await subscribe(bot_api, "test-summit", chat_id=chat_id)
        bot_api.send_delay = 0.05
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        result = await dispatcher(app).sweep()
    assert result.sent == len(chats)
    assert result.sending_seconds >= 0.05 * len(chats)
    assert 0 < result.recording_seconds < result.sending_seconds
    (batch,) = [r for r in caplog.records if r.getMessage().startswith("delivery batch")]
    assert batch.send_ms >= 50  # type: ignore[attr-defined]
    assert 0 < batch.record_ms < batch.send_ms  # type: ignore[attr-defined]


async def test_the_next_batch_is_claimed_while_the_last_sends_are_on_their_way(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    """Two senders, batches of six, Telegram answering in 200 ms. SQLite claims the next
    batch as the last delivery of this one is taken (four answered, two on their way);
    PostgreSQL once fewer than half a batch wait (two answered). Claiming once all six
    were back left the senders idle for a round trip at every batch's end."""
    chats = list(range(9161, 9173))

    def answered() -> int:
        return sum(len(reminders(bot_api, chat_id)) for chat_id in chats)

    async with start_bot(**QUIET, delivery_max_in_flight=2, delivery_rate_limit=False) as app:
        for chat_id in chats:
            await subscribe(bot_api, "test-summit", chat_id=chat_id)
        # The day-ahead reminders first: then only the hour-ahead ones are due, two batches.
        await sweep_at(app, clock, START - dt.timedelta(days=1) + dt.timedelta(seconds=1))
        before = answered()
        sender = dispatcher(app)
        sender.batch_size = 6
        answered_at_claims: list[int] = []
        claim_batch = sender._claim_batch

        async def claim_counting(result: SweepResult) -> Any:
            answered_at_claims.append(answered() - before)
            return await claim_batch(result)

        sender._claim_batch = claim_counting  # type: ignore[method-assign]
        bot_api.send_delay = 0.2
        await sweep_at(app, clock, START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
    assert (before, answered()) == (len(chats), 2 * len(chats))
    # (the last claim, finding nothing, comes as the twelfth is taken, or the tenth)
    expected = [0, 4, 10] if database_url.startswith("sqlite") else [0, 2, 8]
    assert answered_at_claims == expected


async def test_paid_broadcasts_send_more_at_once_unless_told_otherwise(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    """At 950 a second, 16 messages in flight would cap a paid broadcast at 160 a second
    when Telegram takes 100 ms to answer: by default it keeps 238 in flight (enough up
    to 250 ms), and an operator's DELIVERY_MAX_IN_FLIGHT still wins."""
    chats = list(range(9201, 9261))
    async with start_bot(**QUIET, allow_paid_broadcast=True) as app:
        for chat_id in chats:
            await subscribe(bot_api, "test-summit", chat_id=chat_id)
        bot_api.send_delay = 0.3
        await sweep_at(app, clock, START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
    assert [len(reminders(bot_api, chat_id)) for chat_id in chats] == [1] * len(chats)
    # All 60 at once (fewer than 238), far above the default 16; on a busy machine a
    # sender or two may start after a first answer came back.
    assert bot_api.most_sending_at_once >= len(chats) - 3
    assert messages_in_flight(make_settings("sqlite://", "http://x/bot")) == 16
    paid = make_settings("sqlite://", "http://x/bot", allow_paid_broadcast=True)
    assert messages_in_flight(paid) == 238
    assert messages_in_flight(paid.model_copy(update={"delivery_max_in_flight": 8})) == 8


POOL_CHATS = list(range(9301, 9331))


def failing_once(app: BotApplication, chat_id: int, error: BaseException) -> None:
    """The delivery to ``chat_id`` raises ``error`` once, as a bug or a library might."""
    sender = dispatcher(app)
    real = sender._deliver_once
    raised: list[int] = []

    async def deliver_once(delivery: Any, *args: Any, **kwargs: Any) -> Any:
        if delivery.chat_id == chat_id and not raised:
            raised.append(delivery.id)
            await asyncio.sleep(0)
            raise error
        return await real(delivery, *args, **kwargs)

    sender._deliver_once = deliver_once  # type: ignore[method-assign]


async def test_a_bug_in_one_delivery_does_not_stop_the_others(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    async with start_bot(**QUIET, delivery_max_in_flight=3, delivery_rate_limit=False) as app:
        for chat_id in POOL_CHATS:
            await subscribe(bot_api, "test-summit", chat_id=chat_id)
        failing_once(app, POOL_CHATS[0], RuntimeError("a bug"))
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        result = await dispatcher(app).sweep()
    assert [len(reminders(bot_api, c)) for c in POOL_CHATS[1:]] == [1] * (len(POOL_CHATS) - 1)
    assert (result.failed, result.sent) == (1, len(POOL_CHATS) - 1)


async def test_a_delivery_cancelled_from_inside_does_not_end_its_batch_early(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    """A CancelledError out of one delivery (its sweep was not cancelled) is that
    delivery's failure: the sweep ends only after the rest of its batch, so no sender is
    left sending while the next sweep hands its claims back and sends them again."""
    async with start_bot(**QUIET, delivery_max_in_flight=3, delivery_rate_limit=False) as app:
        for chat_id in POOL_CHATS:
            await subscribe(bot_api, "test-summit", chat_id=chat_id)
        bot_api.send_delay = 0.05
        failing_once(app, POOL_CHATS[0], asyncio.CancelledError())
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        sender = dispatcher(app)
        first = await sender.sweep()
        sent_by_the_first = sum(len(reminders(bot_api, c)) for c in POOL_CHATS)
        await sender.sweep()
        await asyncio.sleep(1)  # anything still sending would land now
    assert (first.sent, sent_by_the_first) == (len(POOL_CHATS) - 1, len(POOL_CHATS) - 1)
    assert {len(reminders(bot_api, c)) for c in POOL_CHATS[1:]} == {1}


async def test_each_mark_shares_its_write_with_the_senders_next_renewal(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    """One sender, five chats: the first renewal, then each "sent" mark with the next
    delivery's renewal, in one write each: six writes, not ten."""
    chats = list(range(9301, 9306))
    async with start_bot(**QUIET, delivery_max_in_flight=1, delivery_rate_limit=False) as app:
        for chat_id in chats:
            await subscribe(bot_api, "test-summit", chat_id=chat_id)
        sender = dispatcher(app)
        writes: list[tuple[list[int], list[int]]] = []
        write = sender._send_ledger.write

        async def recorded(renewals: Any, sent: Any, now: Any) -> set[int]:
            writes.append((list(renewals), list(sent)))
            return await write(renewals, sent, now)

        sender._send_ledger.write = recorded  # type: ignore[method-assign]
        await sweep_at(app, clock, START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
    assert [len(reminders(bot_api, chat_id)) for chat_id in chats] == [1] * 5
    assert [(len(renewed), len(sent)) for renewed, sent in writes] == [
        (1, 0), (1, 1), (1, 1), (1, 1), (1, 1), (0, 1)
    ]  # fmt: skip


async def test_a_chat_forgotten_before_its_delivery_is_taken_up_gets_nothing(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    database_url: str,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/forgetme pressed while the delivery still waits in the send queue: its renewal,
    made only when a sender takes it up, finds the row gone (from the second engineer's
    review: a renewal made a chunk ahead stood in for that check)."""
    chats = list(range(8901, 8909))
    async with start_bot(**QUIET, delivery_max_in_flight=2, delivery_rate_limit=False) as app:
        for chat_id in chats:
            await subscribe(bot_api, "test-summit", chat_id=chat_id)
        sender = dispatcher(app)
        database = app.bot_data.services.database
        bot_api.send_delay = 0.05
        taken = track_taken(monkeypatch)
        forgotten: list[int] = []
        write = sender._send_ledger.write

        async def write_then_forget(renewals: Any, sent: Any, now: Any) -> set[int]:
            ours = await write(renewals, sent, now)
            if ours and not forgotten:
                async with database.transaction() as session:
                    claimed = await session.scalars(
                        select(Delivery).where(
                            Delivery.status == DeliveryStatus.CLAIMED,
                            Delivery.claimed_by == sender.worker,
                        )
                    )
                    waiting = [row.chat_id for row in claimed if row.chat_id not in taken]
                    if waiting:
                        forgotten.append(max(waiting))
                        await forget_chat(session, max(waiting))  # "Delete my data"
            return ours

        sender._send_ledger.write = write_then_forget  # type: ignore[method-assign]
        await sweep_at(app, clock, START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
    assert forgotten, "every delivery was taken up before the first ledger write"
    [chat] = forgotten
    assert reminders(bot_api, chat) == []
    assert all(len(reminders(bot_api, c)) == 1 for c in chats if c != chat)
