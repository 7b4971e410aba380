"""Channels, announcements, digests and new-event notices, end to end."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bot.clock import FixedClock
from storage.database import Database
from storage.models import Chat
from tests.botapi import ApiCall, LocalBotApi
from tests.conftest import OPERATOR_ID, StartBot
from tests.factories import QUIET, START, TEST_EVENT, load, plain
from tests.test_reminders import dispatcher

OWNER = 6100
CHANNEL = -1006100
UTC = dt.UTC


def forward_from_channel(bot_api: LocalBotApi, channel_id: int, user_id: int = OWNER) -> Any:
    update = bot_api.message("A post", chat_id=user_id)
    update["message"]["forward_origin"] = {
        "type": "channel",
        "chat": bot_api.emulator.chat(channel_id),
        "message_id": 7,
        "date": 1,
    }
    return update


async def link(bot_api: LocalBotApi, channel_id: int = CHANNEL, user_id: int = OWNER) -> ApiCall:
    """/channels → "Link a channel" → forward a post from it; the bot's answer."""
    listing = await bot_api.reply_to(bot_api.message("/channels", chat_id=user_id))
    await bot_api.reply_to(
        bot_api.press(listing, listing.button("Link")["callback_data"], user_id=user_id)
    )
    return await bot_api.reply_to(forward_from_channel(bot_api, channel_id, user_id))


async def stored_chat(database_url: str, chat_id: int) -> Chat | None:
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            return await session.get(Chat, chat_id)
    finally:
        await database.dispose()


@pytest.fixture
def channel(bot_api: LocalBotApi) -> int:
    bot_api.emulator.add_channel(CHANNEL, "Summit News", "summitnews", admins={OWNER})
    return CHANNEL


@pytest.mark.usefixtures("bot", "channel")
async def test_an_admin_links_a_channel_by_forwarding_a_post(
    bot_api: LocalBotApi, database_url: str
) -> None:
    menu = await link(bot_api)
    assert "Linked Summit News" in plain(menu.text)
    assert "Follows: nothing yet" in plain(menu.text)
    stored = await stored_chat(database_url, CHANNEL)
    assert stored is not None and stored.linked_by == OWNER and stored.is_active
    listing = await bot_api.reply_to(bot_api.message("/channels", chat_id=OWNER))
    assert "Summit News" in plain(listing.text)


@pytest.mark.usefixtures("bot")
@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ({"bot_status": "left"}, "Make me an administrator of the channel"),
        ({"bot_can_post": False}, "Make me an administrator of the channel"),
        ({"admins": set()}, "Only the channel's administrators can link it."),
    ],
)
async def test_linking_is_refused_with_the_reason(
    bot_api: LocalBotApi, database_url: str, setup: dict[str, Any], reason: str
) -> None:
    options: dict[str, Any] = {"admins": {OWNER}, **setup}
    bot_api.emulator.add_channel(CHANNEL, "Summit News", "summitnews", **options)
    reply = await link(bot_api)
    assert reason in plain(reply.text)
    stored = await stored_chat(database_url, CHANNEL)
    assert stored is None or stored.linked_by is None


@pytest.mark.usefixtures("bot", "channel")
async def test_linking_by_username_and_an_unknown_one(bot_api: LocalBotApi) -> None:
    listing = await bot_api.reply_to(bot_api.message("/channels", chat_id=OWNER))
    await bot_api.reply_to(bot_api.press(listing, listing.button("Link")["callback_data"]))
    unknown = await bot_api.reply_to(bot_api.message("@nosuchchannel", chat_id=OWNER))
    assert "I cannot see that channel" in plain(unknown.text)
    await bot_api.reply_to(bot_api.press(listing, listing.button("Link")["callback_data"]))
    linked = await bot_api.reply_to(bot_api.message("@summitnews", chat_id=OWNER))
    assert "Linked Summit News" in plain(linked.text)


async def test_a_postponement_reaches_the_channel_and_a_subscriber_once_each(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str, channel: int
) -> None:
    await load(database_url, TEST_EVENT, clock.now())
    async with start_bot(**QUIET) as app:
        menu = await link(bot_api)
        # The channel follows the SCO; a reader follows the event in private.
        followed = await bot_api.reply_to(
            bot_api.press(menu, menu.button("SCO")["callback_data"], user_id=OWNER),
            method="editMessageText",
        )
        assert "Follows: SCO" in plain(followed.text)
        await bot_api.reply_to(bot_api.message("/subscribe test-summit", chat_id=6200))
        postponed = TEST_EVENT.replace("2026-12-01T10:00", "2026-12-15T10:00")
        await load(database_url, postponed, clock.now())
        await dispatcher(app).sweep()
        await dispatcher(app).sweep()
    for chat_id in (channel, 6200):
        notices = [c for c in bot_api.sent_to(chat_id) if "📣" in c.text]
        assert len(notices) == 1, chat_id
        assert "15 December 2026" in plain(notices[0].text)
    # Channel readers get a link into a private chat, not buttons acting on the channel.
    channel_notice = next(c for c in bot_api.sent_to(channel) if "📣" in c.text)
    assert channel_notice.buttons[0]["url"].endswith("?start=e_test-summit")


@pytest.mark.usefixtures("channel")
async def test_losing_admin_rights_marks_the_channel_inactive_and_tells_the_owner(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    async with start_bot(**QUIET):
        await link(bot_api)
        bot = {"id": 100000001, "is_bot": True, "first_name": "Summit Bot"}
        bot_api.push(
            {
                "my_chat_member": {
                    "chat": bot_api.emulator.chat(CHANNEL),
                    "from": {"id": OWNER, "is_bot": False, "first_name": "Owner"},
                    "date": 1,
                    "old_chat_member": {"status": "administrator", "user": bot,
                                        "can_be_edited": False, "is_anonymous": False,
                                        "can_manage_chat": True, "can_delete_messages": True,
                                        "can_manage_video_chats": True,
                                        "can_restrict_members": True,
                                        "can_promote_members": False, "can_change_info": True,
                                        "can_invite_users": True, "can_post_stories": True,
                                        "can_edit_stories": True, "can_delete_stories": True,
                                        "can_post_messages": True},
                    "new_chat_member": {"status": "member", "user": bot},
                }
            }
        )  # fmt: skip
        told = await bot_api.wait_for(
            lambda c: c.method == "sendMessage" and c.chat_id == OWNER and "no longer" in c.text
        )
    assert "Summit News" in told.text
    stored = await stored_chat(database_url, CHANNEL)
    assert stored is not None and not stored.is_active


@pytest.mark.usefixtures("channel")
async def test_announce_reaches_each_channel_once_even_if_run_twice(
    bot_api: LocalBotApi, start_bot: StartBot
) -> None:
    bot_api.emulator.add_channel(-1006101, "Summit Digest", "summitdigest", admins={OWNER})
    async with start_bot(**QUIET):
        await link(bot_api)
        await link(bot_api, -1006101)
        first = plain(
            (
                await bot_api.reply_to(
                    bot_api.message("/announce cica-2026-baku", chat_id=OPERATOR_ID)
                )
            ).text
        )
        second = plain(
            (
                await bot_api.reply_to(
                    bot_api.message("/announce cica-2026-baku", chat_id=OPERATOR_ID)
                )
            ).text
        )
        refused = plain(
            (
                await bot_api.reply_to(bot_api.message("/announce cica-2026-baku", chat_id=OWNER))
            ).text
        )
    assert first.count("— posted") == 2
    assert second.count("already posted before") == 2
    assert refused == "Only operators can do that."
    for channel_id in (CHANNEL, -1006101):
        posts = [c for c in bot_api.sent_to(channel_id) if "CICA" in c.text or "7th" in c.text]
        assert len(posts) == 1


async def test_a_weekly_digest_lists_coming_events_in_the_chats_zone(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    await load(database_url, TEST_EVENT, clock.now())
    clock.set(dt.datetime(2026, 11, 29, 12, 0, tzinfo=UTC))  # a Sunday
    async with start_bot(**QUIET) as app:
        await bot_api.reply_to(bot_api.message("/tz Europe/Berlin", chat_id=6300))
        await bot_api.reply_to(bot_api.message("/subscribe sco", chat_id=6300))
        await bot_api.reply_to(bot_api.message("/digest weekly", chat_id=6300))
        await bot_api.reply_to(bot_api.message("/digest weekly", chat_id=6301))  # follows nothing
        # Monday 09:00 in Berlin is 08:00 UTC.
        clock.set(dt.datetime(2026, 11, 30, 7, 59, tzinfo=UTC))
        await dispatcher(app).sweep()
        assert [c for c in bot_api.sent_to(6300) if "Coming up" in c.text] == []
        clock.set(dt.datetime(2026, 11, 30, 8, 0, 1, tzinfo=UTC))
        await dispatcher(app).sweep()
        await dispatcher(app).sweep()
    digests = [plain(c.text) for c in bot_api.sent_to(6300) if "Coming up" in c.text]
    assert len(digests) == 1
    assert "Coming up in the next 28 days" in digests[0]
    assert "Test summit" in digests[0]
    assert "(in 21 hours)" in digests[0]  # 1 December 06:00 Berlin, from Monday 09:00
    assert [c for c in bot_api.sent_to(6301) if "Coming up" in c.text] == []


async def test_followers_of_an_organisation_hear_of_its_new_events(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    async with start_bot(**QUIET) as app:
        await bot_api.reply_to(bot_api.message("/subscribe sco", chat_id=6400))
        await bot_api.reply_to(bot_api.message("/subscribe csto", chat_id=6401))
        await load(database_url, TEST_EVENT, clock.now())
        await dispatcher(app).sweep()
    new = [plain(c.text) for c in bot_api.sent_to(6400) if "🆕" in c.text]
    assert len(new) == 1 and "Test summit" in new[0]
    assert [c for c in bot_api.sent_to(6401) if "🆕" in c.text] == []


async def test_an_operators_postponement_reaches_channel_and_subscriber_once_and_moves_reminders(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str, channel: int
) -> None:
    """The issue's "done when": link a channel, postpone as an operator, one notice each."""
    await load(database_url, TEST_EVENT, clock.now())
    async with start_bot(**QUIET) as app:
        menu = await link(bot_api)
        await bot_api.reply_to(
            bot_api.press(menu, menu.button("SCO")["callback_data"], user_id=OWNER),
            method="editMessageText",
        )
        await bot_api.reply_to(bot_api.message("/subscribe test-summit", chat_id=6500))
        preview = await bot_api.reply_to(
            bot_api.message("/postpone test-summit 2026-12-08T10:00", chat_id=OPERATOR_ID)
        )
        assert "Status: confirmed → postponed" in plain(preview.text)
        await bot_api.reply_to(
            bot_api.press(preview, preview.button("Save")["callback_data"], user_id=OPERATOR_ID),
            method="editMessageText",
        )
        await dispatcher(app).sweep()
        await dispatcher(app).sweep()
        for chat_id in (channel, 6500):
            notices = [plain(c.text) for c in bot_api.sent_to(chat_id) if "📣" in c.text]
            assert len(notices) == 1, chat_id
            assert "1 December 2026, 10:00 → 8 December 2026, 10:00" in notices[0]
        # Reminders moved: nothing at the old instant, the 1-day one before the new date.
        clock.set(START - dt.timedelta(hours=1) + dt.timedelta(seconds=1))
        await dispatcher(app).sweep()
        clock.set(START + dt.timedelta(days=6, seconds=1))
        await dispatcher(app).sweep()
    for chat_id in (channel, 6500):
        reminders = [plain(c.text) for c in bot_api.sent_to(chat_id) if "⏰" in c.text]
        assert len(reminders) == 1, chat_id
        assert "8 December 2026, 10:00" in reminders[0]


async def deliveries_count(database_url: str) -> int:
    from sqlalchemy import func, select

    from storage.models import Delivery

    database = Database(database_url)
    try:
        async with database.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Delivery)) or 0)
    finally:
        await database.dispose()


@pytest.mark.usefixtures("bot", "channel")
async def test_a_former_admin_who_linked_the_channel_loses_control(
    bot_api: LocalBotApi, database_url: str
) -> None:
    menu = await link(bot_api)
    bot_api.emulator.admins[CHANNEL] = set()  # the owner removed them as admin
    refusal = await bot_api.reply_to(
        bot_api.press(menu, menu.button("Pause")["callback_data"], user_id=OWNER),
        method="answerCallbackQuery",
    )
    assert refusal.parameters["text"] == "This button has expired."
    stored = await stored_chat(database_url, CHANNEL)
    assert stored is not None and not stored.paused


@pytest.mark.usefixtures("bot", "channel")
async def test_a_forwarded_post_links_nothing_unless_asked(
    bot_api: LocalBotApi, database_url: str
) -> None:
    bot_api.push(forward_from_channel(bot_api, CHANNEL))
    await bot_api.reply_to(bot_api.message("/help", chat_id=OWNER))  # processed after it
    assert await stored_chat(database_url, CHANNEL) is None
    assert len(bot_api.sent_to(OWNER)) == 1  # a forwarded post is not taken for a search


@pytest.mark.usefixtures("channel")
async def test_announce_names_channels_and_retries_after_a_failure(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    bot_api.emulator.add_channel(-1006101, "Summit Digest", "summitdigest", admins={OWNER})
    async with start_bot(**QUIET, delivery_max_attempts=1):
        await link(bot_api)
        await link(bot_api, -1006101)
        before = await deliveries_count(database_url)
        refused = await bot_api.reply_to(bot_api.message("/announce cica-2026-baku", chat_id=OWNER))
        assert plain(refused.text) == "Only operators can do that."
        assert await deliveries_count(database_url) == before
        bot_api.fail("sendMessage", 502, "Bad Gateway")
        command = "/announce cica-2026-baku @summitnews"
        first = plain((await bot_api.reply_to(bot_api.message(command, chat_id=OPERATOR_ID))).text)
        assert "Summit News — failed" in first
        assert "Summit Digest" not in first  # only the channel named
        second = plain((await bot_api.reply_to(bot_api.message(command, chat_id=OPERATOR_ID))).text)
        assert "Summit News — posted" in second
    assert len([c for c in bot_api.sent_to(CHANNEL) if "Baku" in plain(c.text)]) == 1
    assert [c for c in bot_api.sent_to(-1006101) if "Baku" in plain(c.text)] == []


async def test_turning_the_digest_off_stops_one_already_planned(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    await load(database_url, TEST_EVENT, clock.now())
    clock.set(dt.datetime(2026, 11, 30, 1, 0, tzinfo=UTC))  # Monday, 06:00 in Almaty
    async with start_bot(**QUIET) as app:
        await bot_api.reply_to(bot_api.message("/subscribe sco", chat_id=6600))
        await bot_api.reply_to(bot_api.message("/digest weekly", chat_id=6600))
        await dispatcher(app).sweep()  # plans 09:00 Almaty (04:00 UTC)
        await bot_api.reply_to(bot_api.message("/digest off", chat_id=6600))
        clock.set(dt.datetime(2026, 11, 30, 4, 0, 1, tzinfo=UTC))
        await dispatcher(app).sweep()
    assert [c for c in bot_api.sent_to(6600) if "Coming up" in c.text] == []


async def test_a_new_time_zone_moves_a_planned_digest_to_9_there_and_it_comes_once(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    await load(database_url, TEST_EVENT, clock.now())
    clock.set(dt.datetime(2026, 11, 30, 3, 0, tzinfo=UTC))  # Monday, 08:00 in Almaty
    async with start_bot(**QUIET) as app:
        await bot_api.reply_to(bot_api.message("/subscribe sco", chat_id=6700))
        await bot_api.reply_to(bot_api.message("/digest weekly", chat_id=6700))
        # Plans up to 09:00 UTC: 09:00 in Almaty (04:00 UTC) and, after the move, in
        # Berlin (08:00 UTC) are both re-planned by /tz, not by a later sweep.
        await dispatcher(app).sweep()
        await bot_api.reply_to(bot_api.message("/tz Europe/Berlin", chat_id=6700))
        await bot_api.reply_to(bot_api.message("/tz Europe/Berlin", chat_id=6700))  # again
        clock.set(dt.datetime(2026, 11, 30, 4, 0, 1, tzinfo=UTC))
        await dispatcher(app).sweep()
        assert [c for c in bot_api.sent_to(6700) if "Coming up" in c.text] == []
        clock.set(dt.datetime(2026, 11, 30, 8, 0, 1, tzinfo=UTC))  # 09:00 in Berlin
        await dispatcher(app).sweep()
        await dispatcher(app).sweep()
    assert len([c for c in bot_api.sent_to(6700) if "Coming up" in c.text]) == 1
