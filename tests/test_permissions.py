"""The permission matrix of the hardening issue, end to end.

Every operator action, every group-admin action and every channel-owner action is
tried by each role that must not have it — by command, by forged callback data and by
document upload — and must be refused, change nothing and (for operator actions and
channel buttons) leave a log line saying so. Positive controls show each check can see
a change: the role that may act, does.

One bot runs for the whole module (per database backend), so the matrix stays fast.
Every test works with users, groups and channels of its own (fresh ids), compares
database snapshots taken just before and after its action, and waits for the bot to
finish with an update by sending a barrier message after it (updates are handled one
at a time). The per-user request limit is raised (the barrier user and the operator send
far more than 30 updates a minute here) and PTB's flood-limit throttle is off.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import Table, select

from bot.app import build_application, running
from bot.clock import FixedClock
from bot.context import BotApplication
from storage.chats import link_channel
from storage.database import Database
from storage.models import Chat, Delivery, Event, EventChange, Subscription, SubscriptionScope
from tests.botapi import ApiCall, LocalBotApi
from tests.conftest import NOW, OPERATOR_ID, TEST_TOKEN, DatabaseFactory, make_settings
from tests.factories import QUIET, TEST_EVENT, load, plain

pytestmark = pytest.mark.asyncio(loop_scope="module")

ONLY_OPERATORS = "Only operators can do that."
ONLY_OPERATORS_FILES = "Only operators can import data files."
PRIVATE_ONLY = "Operator commands work only in a private chat with me."
ADMINS_FOLLOW = "Only the admins of this group can change what it follows."
ADMINS_SETTINGS = "Only the admins of this group can change its settings."
EXPIRED = "This button has expired."
NOT_FOLLOWED = "This chat does not follow that."

BARRIER = 999_001  # a private chat whose /mysubs marks "everything before is handled"
NEWS, NEWS_OWNER = -1_008_800_001, 880_001  # a linked channel /announce would post to
GROUP, GROUP_OWNER = -4_880_001, 880_002  # a group the group-admin roles belong to
CHANNEL_BOT = 136817688  # Telegram's sender of messages written "as a channel"
ANONYMOUS_ADMIN = 1087968824  # Telegram's sender of an anonymous admin's messages

_numbers = itertools.count(1)


def new_user() -> int:
    return 700_000 + next(_numbers)


def new_group() -> int:
    return -4_700_000 - next(_numbers)  # not "-100…": a basic group


def new_channel() -> int:
    return -1_007_000_000 - next(_numbers)


# --- one bot for the module ----------------------------------------------------------


@dataclass
class World:
    app: BotApplication
    api: LocalBotApi
    reader: Database  # the test's own connection, to take snapshots


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(database_factory: DatabaseFactory) -> AsyncIterator[World]:
    keep = len(database_factory.created)
    url = await database_factory.loaded()
    await load(url, TEST_EVENT, NOW)
    api = LocalBotApi(TEST_TOKEN)
    await api.start()
    api.emulator.add_channel(NEWS, "Permission News", "permissionnews", admins={NEWS_OWNER})
    api.emulator.admins[GROUP] = {GROUP_OWNER}
    settings = make_settings(url, api.base_url, **QUIET, requests_per_minute=1_000_000)
    # Telegram's flood limits (30 requests a second, 20 a minute per group) are not what
    # this module tests; with them, it would spend most of its time waiting.
    application = build_application(settings, clock=FixedClock(NOW), rate_limit=False)
    reader = Database(url)
    try:
        async with running(application, polling=True):
            here = World(application, api, reader)
            await link(here, NEWS, NEWS_OWNER)
            yield here
    finally:
        await reader.dispose()
        await api.stop()
        if database_factory.backend == "postgresql":
            await database_factory.drop_created(keep)


@pytest.fixture(autouse=True)
def _log_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot")


# --- talking to the bot ----------------------------------------------------------------


def chat_type(chat_id: int) -> str:
    return "private" if chat_id > 0 else "group"


async def finished(world: World, update: dict[str, Any]) -> list[ApiCall]:
    """What the bot did for ``update``, once it is done with it.

    A barrier from another chat follows it; updates of different chats run side by
    side (bot/runtime/chat_order.py), so once the barrier is answered the bot is also
    waited for until nothing is in progress: ``update``, taken before it, is done."""
    api = world.api
    start = api._index_at_push[update["update_id"]]
    barrier = await api.reply_to(api.message("/mysubs", chat_id=BARRIER))
    processor = world.app.update_processor
    while processor.current_concurrent_updates:  # noqa: ASYNC110 (PTB has no event for it)
        await asyncio.sleep(0.005)
    calls = [call for call in api.calls[start:] if call is not barrier]
    return [call for call in calls if call.chat_id != BARRIER]


def push(world: World, text: str, chat_id: int, user_id: int, **kwargs: Any) -> dict[str, Any]:
    return world.api.message(
        text, chat_id=chat_id, user_id=user_id, chat_type=chat_type(chat_id), **kwargs
    )


async def send(world: World, text: str, chat_id: int, user_id: int | None = None) -> list[ApiCall]:
    """Send a message and wait until it is handled; the bot's calls for it."""
    return await finished(world, push(world, text, chat_id, user_id or chat_id))


@dataclass
class Pressed:
    """A button press and what the bot did for it."""

    update: dict[str, Any]
    calls: list[ApiCall]

    @property
    def alerts(self) -> list[str | None]:
        """The answers to the press (the text shown, None for a silent answer)."""
        query_id = self.update["callback_query"]["id"]
        return [
            c.parameters.get("text")
            for c in self.calls
            if c.method == "answerCallbackQuery"
            and str(c.parameters["callback_query_id"]) == query_id
        ]


async def press(world: World, shown: ApiCall, data: str, user_id: int) -> Pressed:
    """Press (forged) ``data`` under the message ``shown``, and wait until it is handled."""
    update = world.api.press(shown, data, user_id=user_id)
    return Pressed(update, await finished(world, update))


def sent(calls: list[ApiCall], chat_id: int) -> list[str]:
    """Texts the bot sent or edited in ``chat_id`` (documents as their captions)."""
    methods = {"sendMessage", "editMessageText", "sendDocument"}
    return [
        plain(c.text or str(c.parameters.get("caption", "")))
        for c in calls
        if c.method in methods and c.chat_id == chat_id
    ]


def first_message(calls: list[ApiCall], chat_id: int) -> ApiCall:
    return next(c for c in calls if c.method == "sendMessage" and c.chat_id == chat_id)


async def reply(world: World, text: str, chat_id: int, user_id: int | None = None) -> ApiCall:
    """Send a message; the bot's (first) reply in the chat, for setting a test up."""
    return await world.api.reply_to(push(world, text, chat_id, user_id or chat_id))


async def shown_in(world: World, chat_id: int, user_id: int) -> ApiCall:
    """A message of the bot's in ``chat_id`` to press buttons under."""
    return await reply(world, "/mysubs", chat_id, user_id)


def refusals_logged(caplog: pytest.LogCaptureFixture, user_id: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if "refused" in r.getMessage() and f"user {user_id}" in r.getMessage()
    ]


# --- snapshots -------------------------------------------------------------------------


async def rows(world: World, table: Table, *where: Any) -> list[tuple[Any, ...]]:
    async with world.reader.sessions() as session:
        statement = select(table).where(*where).order_by(*table.primary_key.columns)
        return [tuple(row) for row in (await session.execute(statement)).all()]


async def settle(world: World) -> None:
    """Let the dispatcher plan and send whatever is due, so only the action changes rows."""
    await world.app.bot_data.services.dispatcher.sweep()


async def operator_state(world: World) -> dict[str, list[tuple[Any, ...]]]:
    """What operator actions change: events, the change log and the delivery ledger."""
    tables: list[Any] = [Event.__table__, EventChange.__table__, Delivery.__table__]
    return {table.name: await rows(world, table) for table in tables}


async def chat_state(world: World, chat_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """A chat's row (language, time zone, digest, lead times, paused, link…), what it
    follows and its deliveries."""
    chats: Any = Chat.__table__
    subscriptions: Any = Subscription.__table__
    deliveries: Any = Delivery.__table__
    return {
        "chat": await rows(world, chats, chats.c.id == chat_id),
        "subscriptions": await rows(world, subscriptions, subscriptions.c.chat_id == chat_id),
        "deliveries": await rows(world, deliveries, deliveries.c.chat_id == chat_id),
    }


async def subscription_ids(world: World, chat_id: int) -> list[int]:
    subscriptions: Any = Subscription.__table__
    return [row[0] for row in await rows(world, subscriptions, subscriptions.c.chat_id == chat_id)]


# --- channels and groups of a test's own ---------------------------------------------------


async def try_to_link(world: World, channel_id: int, user: int) -> list[ApiCall]:
    """/channels → "Link a channel" → forward a post from the channel; the bot's calls."""
    listing = await reply(world, "/channels", user)
    await press(world, listing, listing.button("Link")["callback_data"], user)
    update = world.api.message("A post", chat_id=user)
    update["message"]["forward_origin"] = {
        "type": "channel",
        "chat": world.api.emulator.chat(channel_id),
        "message_id": 7,
        "date": 1,
    }
    return await finished(world, update)


async def link(world: World, channel_id: int, owner: int) -> ApiCall:
    """Link the channel as its admin would; the channel's menu."""
    menu = first_message(await try_to_link(world, channel_id, owner), owner)
    assert "Linked" in plain(menu.text), plain(menu.text)
    return menu


@dataclass
class Channel:
    id: int
    owner: int  # the admin who linked it
    menu: ApiCall  # a message of the owner's with the channel's buttons


async def linked_channel(
    world: World, *, paused: bool = False, through_the_bot: bool = False
) -> Channel:
    """A channel of its own, linked by its admin, following SCO (paused if asked).

    Linking through the bot's dialogue costs a dozen requests; most tests record the
    link in the database directly (as the dialogue does) and show the owner's list.
    """
    channel_id, owner = new_channel(), new_user()
    title = f"Channel {-channel_id}"
    world.api.emulator.add_channel(channel_id, title, admins={owner})
    if through_the_bot:
        menu = await link(world, channel_id, owner)
        for action in ["org:sco", "pause"] if paused else ["org:sco"]:
            update = await press(world, menu, f"ch:{channel_id}:{action}", owner)
            menu = next(c for c in update.calls if c.method == "editMessageText")
        return Channel(channel_id, owner, menu)
    services = world.app.bot_data.services
    async with services.database.transaction() as session:
        await link_channel(session, channel_id, title, owner, "en", "Asia/Almaty", NOW)
    await services.subscriptions.follow(channel_id, SubscriptionScope.ORGANISATION, "sco", NOW)
    if paused:
        await services.chats.set_paused(channel_id, True, NOW)
    listing = await reply(world, "/channels", owner)
    assert title in plain(listing.text)
    return Channel(channel_id, owner, listing)


@dataclass
class Group:
    id: int
    admin: int
    member: int
    former_admin: int  # followed CSTO for the group, then lost admin rights
    subscription: int  # the id of the group's CSTO subscription


async def group_following_csto(world: World) -> Group:
    group = Group(new_group(), new_user(), new_user(), new_user(), 0)
    admins = world.api.emulator.admins
    admins[group.id] = {group.admin, group.former_admin}
    answer = await reply(world, "/subscribe csto", group.id, group.former_admin)
    assert "You now follow" in plain(answer.text), plain(answer.text)
    admins[group.id] = {group.admin}
    (group.subscription,) = await subscription_ids(world, group.id)
    return group


# === operator actions ===================================================================


@dataclass(frozen=True)
class Seat:
    """Where a role acts from: who, and in which chat."""

    user: int
    chat: int


def _group_admin(world: World) -> int:
    user = new_user()
    world.api.emulator.admins[GROUP].add(user)
    return user


def _channel_admin(world: World) -> int:
    user = new_user()
    world.api.emulator.admins[NEWS].add(user)
    return user


def _in_private(user: int) -> Seat:
    return Seat(user, user)


OPERATOR_ROLES: dict[str, Callable[[World], Seat]] = {
    "plain-user-private": lambda w: _in_private(new_user()),
    "group-member-private": lambda w: _in_private(new_user()),  # GROUP's members: everyone
    "group-admin-private": lambda w: _in_private(_group_admin(w)),
    "channel-admin-private": lambda w: _in_private(_channel_admin(w)),
    "stranger-private": lambda w: _in_private(new_user()),
    "group-member-in-group": lambda w: Seat(new_user(), GROUP),
    "group-admin-in-group": lambda w: Seat(_group_admin(w), GROUP),
}
OPERATOR_COMMANDS = {
    "addevent": "/addevent",
    "editevent": "/editevent test-summit title Forged title",
    "postpone": "/postpone test-summit 2026-12-08T10:00",
    "cancel": "/cancel test-summit Called off by someone else",
    "setstatus": "/setstatus test-summit held",
    "stats": "/stats",
    "announce": "/announce test-summit",
}
# Would make test-summit "held" if an import went through.
DOCUMENT = TEST_EVENT.replace("confirmed", "held").encode()
# The operator's own file in the positive control: a new event, nothing else touched.
CONTROL_DOCUMENT = b"""\
events:
  - id: permission-forum-2026
    kind: forum
    title: Permission forum
    place: astana
    start: 2026-12-20
    sources: [test]
"""
OPERATOR_ACTIONS = [*OPERATOR_COMMANDS, "document", "op-forged", "op-real-token"]


def _operator_cells() -> list[Any]:
    cells = []
    for role in OPERATOR_ROLES:
        for action in OPERATOR_ACTIONS:
            if action == "document" and role.endswith("in-group"):
                continue  # documents are only read in private chats (see the test below)
            cells.append(pytest.param(role, action, id=f"{role}-{action}"))
    return cells


async def operator_preview(world: World) -> ApiCall:
    """A real preview of the operator's, with Save and Cancel under it."""
    calls = await send(world, "/setstatus test-summit held", OPERATOR_ID)
    preview = first_message(calls, OPERATOR_ID)
    assert "Check the change" in plain(preview.text)
    return preview


@pytest.mark.parametrize(("role", "action"), _operator_cells())
async def test_operator_actions_are_refused_to_everyone_else(
    world: World, caplog: pytest.LogCaptureFixture, role: str, action: str
) -> None:
    seat = OPERATOR_ROLES[role](world)
    shown = None
    if action == "op-forged":
        shown = await shown_in(world, seat.chat, seat.user)
    elif action == "op-real-token":
        shown = await operator_preview(world)
    await settle(world)
    before = await operator_state(world)

    if action == "document":
        update = world.api.document("events.yaml", DOCUMENT, user_id=seat.user)
        calls = await finished(world, update)
        assert sent(calls, seat.chat) == [ONLY_OPERATORS_FILES]
        assert not [c for c in calls if c.method == "getFile"]  # not even downloaded
    elif shown is not None:
        data = "op:0123abcd:ok" if action == "op-forged" else shown.button("Save")["callback_data"]
        pressed = await press(world, shown, data, seat.user)
        assert pressed.alerts == [ONLY_OPERATORS]
        assert sent(pressed.calls, shown.chat_id or 0) == []  # the preview is not marked
    else:
        calls = await send(world, OPERATOR_COMMANDS[action], seat.chat, seat.user)
        assert sent(calls, seat.chat) == [ONLY_OPERATORS]

    assert await operator_state(world) == before
    assert refusals_logged(caplog, seat.user), "the refusal is not logged"
    if action == "addevent" and seat.chat > 0:
        # No dialogue began: the next text is a search, not the answer to a question.
        answer = sent(await send(world, "sco", seat.chat, seat.user), seat.chat)
        assert answer and "What kind" not in answer[0] and "Shanghai" in answer[0]


@pytest.mark.parametrize("role", ["group-member-in-group", "group-admin-in-group"])
async def test_a_data_file_sent_to_a_group_is_not_read(world: World, role: str) -> None:
    seat = OPERATOR_ROLES[role](world)
    await settle(world)
    before = await operator_state(world)
    update = world.api.document("events.yaml", DOCUMENT, user_id=seat.user)
    message = update["message"]  # pushed, not yet fetched: it becomes a group's message
    message["chat"] = {"id": GROUP, "type": "group", "title": "Summit watchers"}
    calls = await finished(world, update)
    assert sent(calls, GROUP) == []
    assert not [c for c in calls if c.method == "getFile"]
    assert await operator_state(world) == before


# /announce in a group used to post to every linked channel and list them there (it
# checked only OPERATOR_IDS); it is refused like the other operator commands now.
@pytest.mark.parametrize("action", list(OPERATOR_COMMANDS))
async def test_an_operator_in_a_group_is_sent_to_a_private_chat(world: World, action: str) -> None:
    await settle(world)
    before = await operator_state(world)
    command = OPERATOR_COMMANDS[action].replace("test-summit", "cica-2026-baku")
    calls = await send(world, command, GROUP, OPERATOR_ID)
    assert sent(calls, GROUP) == [PRIVATE_ONLY]
    assert await operator_state(world) == before


async def test_control_an_operators_saved_change_shows_in_the_snapshot(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    await settle(world)
    before = await operator_state(world)
    calls = await send(world, "/setstatus cica-2026-baku confirmed", OPERATOR_ID)
    preview = first_message(calls, OPERATOR_ID)
    pressed = await press(world, preview, preview.button("Save")["callback_data"], OPERATOR_ID)
    assert any("Saved." in text for text in sent(pressed.calls, OPERATOR_ID))
    after = await operator_state(world)
    assert after["events"] != before["events"]
    assert len(after["event_changes"]) == len(before["event_changes"]) + 1
    assert not refusals_logged(caplog, OPERATOR_ID)


async def test_control_an_operators_announcement_and_data_file_show_in_the_snapshot(
    world: World,
) -> None:
    await settle(world)
    before = await operator_state(world)
    reply = sent(await send(world, "/announce sco-2026-bishkek", OPERATOR_ID), OPERATOR_ID)
    assert any("Permission News — posted" in text for text in reply), reply
    announced = await operator_state(world)
    assert len(announced["deliveries"]) > len(before["deliveries"])
    update = world.api.document("control.yaml", CONTROL_DOCUMENT, user_id=OPERATOR_ID)
    reply = sent(await finished(world, update), OPERATOR_ID)
    assert reply and reply[0].startswith("✅ Imported control.yaml."), reply
    assert (await operator_state(world))["events"] != announced["events"]


# === group-admin actions ==================================================================


@dataclass(frozen=True)
class GroupAction:
    refusal: str
    changes: bool  # whether an admin doing it changes the group's rows


GROUP_COMMANDS = {
    "/subscribe all": GroupAction(ADMINS_FOLLOW, True),
    "/subscribe sco": GroupAction(ADMINS_FOLLOW, True),
    "/subscribe": GroupAction(ADMINS_FOLLOW, False),  # the menu
    "/unsubscribe csto": GroupAction(ADMINS_FOLLOW, True),
    "/leadtimes": GroupAction(ADMINS_FOLLOW, False),  # the menu
    "/lang ru": GroupAction(ADMINS_SETTINGS, True),
    "/tz Europe/Berlin": GroupAction(ADMINS_SETTINGS, True),
    "/digest weekly": GroupAction(ADMINS_SETTINGS, True),
    "/forgetme": GroupAction(ADMINS_SETTINGS, False),  # asks first
}
# {sub}: the id of the group's real CSTO subscription.
GROUP_BUTTONS = {
    "f:a": GroupAction(ADMINS_FOLLOW, True),
    "f:o:sco": GroupAction(ADMINS_FOLLOW, True),
    "f:e:test-summit": GroupAction(ADMINS_FOLLOW, True),
    "u:{sub}": GroupAction(ADMINS_FOLLOW, True),
    "lt:{sub}:60": GroupAction(ADMINS_FOLLOW, True),
    "lt:0:60": GroupAction(ADMINS_FOLLOW, True),  # the group's default lead times
    "t:{sub}": GroupAction(ADMINS_FOLLOW, False),
    "ld:{sub}": GroupAction(ADMINS_FOLLOW, False),
    "sm": GroupAction(ADMINS_FOLLOW, False),
    "lg:ru": GroupAction(ADMINS_SETTINGS, True),
    "fm:yes": GroupAction(ADMINS_SETTINGS, True),
    "fm:no": GroupAction(ADMINS_SETTINGS, False),
}
# Roles that must not change a group's settings, and who they are in a test's group.
GROUP_OUTSIDERS: dict[str, Callable[[Group], int]] = {
    "member": lambda g: g.member,
    "operator": lambda g: OPERATOR_ID,
    "former-admin": lambda g: g.former_admin,
}


def _as_own_channel(update: dict[str, Any]) -> None:
    """A member writing "as" a channel of theirs: Telegram sends it from Channel_Bot."""
    update["message"]["sender_chat"] = {"id": -1_005_550_001, "type": "channel", "title": "Mine"}


@pytest.mark.parametrize("outsider", [*GROUP_OUTSIDERS, "member-as-own-channel"])
@pytest.mark.parametrize("command", list(GROUP_COMMANDS))
async def test_group_commands_are_refused_to_non_admins(
    world: World, command: str, outsider: str
) -> None:
    group = await group_following_csto(world)
    await settle(world)
    before = await chat_state(world, group.id)
    if outsider == "member-as-own-channel":
        update = push(world, command, group.id, CHANNEL_BOT)
        _as_own_channel(update)
    else:
        update = push(world, command, group.id, GROUP_OUTSIDERS[outsider](group))
    calls = await finished(world, update)
    assert sent(calls, group.id) == [GROUP_COMMANDS[command].refusal]
    assert await chat_state(world, group.id) == before


@pytest.mark.parametrize("outsider", list(GROUP_OUTSIDERS))
@pytest.mark.parametrize("data", list(GROUP_BUTTONS))
async def test_forged_group_buttons_are_refused_to_non_admins(
    world: World, data: str, outsider: str
) -> None:
    group = await group_following_csto(world)
    user = GROUP_OUTSIDERS[outsider](group)
    shown = await shown_in(world, group.id, user)
    await settle(world)
    before = await chat_state(world, group.id)
    pressed = await press(world, shown, data.format(sub=group.subscription), user)
    assert pressed.alerts == [GROUP_BUTTONS[data].refusal]
    assert sent(pressed.calls, group.id) == []
    assert await chat_state(world, group.id) == before


@pytest.mark.parametrize("admin", ["admin", "anonymous-admin"])
@pytest.mark.parametrize("command", list(GROUP_COMMANDS))
async def test_control_a_group_admin_can(world: World, command: str, admin: str) -> None:
    group = await group_following_csto(world)
    await settle(world)
    before = await chat_state(world, group.id)
    if admin == "admin":
        update = push(world, command, group.id, group.admin)
    else:  # writing as the group: sender_chat is the group itself
        update = push(world, command, group.id, ANONYMOUS_ADMIN, as_chat=True)
    replies = sent(await finished(world, update), group.id)
    assert replies and GROUP_COMMANDS[command].refusal not in replies, replies
    changed = await chat_state(world, group.id) != before
    assert changed == GROUP_COMMANDS[command].changes


@pytest.mark.parametrize("data", list(GROUP_BUTTONS))
async def test_control_a_group_admin_can_press(world: World, data: str) -> None:
    group = await group_following_csto(world)
    shown = await shown_in(world, group.id, group.admin)
    await settle(world)
    before = await chat_state(world, group.id)
    pressed = await press(world, shown, data.format(sub=group.subscription), group.admin)
    assert GROUP_BUTTONS[data].refusal not in pressed.alerts
    changed = await chat_state(world, group.id) != before
    assert changed == GROUP_BUTTONS[data].changes


# === channel-owner actions ===============================================================

CHANNEL_ACTIONS = [
    "menu",
    "all",
    "org:sco",
    "org:csto",
    "lead:60",
    "lang:ru",
    "digest:weekly",
    "pause",
    "resume",
    "tz",
    "unlink",
]


async def _stranger(world: World, channel: Channel) -> tuple[int, ApiCall]:
    user = new_user()
    return user, await shown_in(world, user, user)


async def _stranger_under_the_owners_menu(world: World, channel: Channel) -> tuple[int, ApiCall]:
    return new_user(), channel.menu


async def _former_admin(world: World, channel: Channel) -> tuple[int, ApiCall]:
    world.api.emulator.admins[channel.id] = set()  # the one who linked it, removed as admin
    return channel.owner, await shown_in(world, channel.owner, channel.owner)


async def _operator(world: World, channel: Channel) -> tuple[int, ApiCall]:
    return OPERATOR_ID, await shown_in(world, OPERATOR_ID, OPERATOR_ID)


async def _group_admin_in_group(world: World, channel: Channel) -> tuple[int, ApiCall]:
    user = _group_admin(world)
    return user, await shown_in(world, GROUP, user)


async def _another_channels_admin(world: World, channel: Channel) -> tuple[int, ApiCall]:
    user = _channel_admin(world)  # administers the linked Permission News, not this one
    return user, await shown_in(world, user, user)


CHANNEL_OUTSIDERS: dict[str, Callable[[World, Channel], Awaitable[tuple[int, ApiCall]]]] = {
    "stranger": _stranger,
    "stranger-under-owners-menu": _stranger_under_the_owners_menu,
    "former-admin": _former_admin,
    "operator": _operator,
    "group-admin-in-group": _group_admin_in_group,
    "other-channels-admin": _another_channels_admin,
}


@pytest.mark.parametrize("outsider", list(CHANNEL_OUTSIDERS))
@pytest.mark.parametrize("action", CHANNEL_ACTIONS)
async def test_forged_channel_buttons_are_refused_to_non_admins(
    world: World, caplog: pytest.LogCaptureFixture, action: str, outsider: str
) -> None:
    channel = await linked_channel(world, paused=action == "resume")
    user, shown = await CHANNEL_OUTSIDERS[outsider](world, channel)
    await settle(world)
    before = await chat_state(world, channel.id)
    pressed = await press(world, shown, f"ch:{channel.id}:{action}", user)
    assert pressed.alerts == [EXPIRED]
    assert sent(pressed.calls, shown.chat_id or 0) == []
    if action == "tz":  # no question was asked: a time zone typed now sets nothing
        await send(world, "Europe/Berlin", user)
    assert await chat_state(world, channel.id) == before
    assert any(f"channel {channel.id}" in m for m in refusals_logged(caplog, user))


@pytest.mark.parametrize("who", ["the-admin-who-linked-it", "another-admin"])
async def test_control_a_channel_admin_can_pause(world: World, who: str) -> None:
    channel = await linked_channel(world, through_the_bot=True)
    user = channel.owner
    if who == "another-admin":
        user = new_user()
        world.api.emulator.admins[channel.id].add(user)
    shown = await shown_in(world, user, user)
    await settle(world)
    before = await chat_state(world, channel.id)
    pressed = await press(world, shown, f"ch:{channel.id}:pause", user)
    assert pressed.alerts == [None]
    assert await chat_state(world, channel.id) != before
    async with world.reader.sessions() as session:
        stored = await session.get(Chat, channel.id)
    assert stored is not None and stored.paused


async def test_an_admin_removed_while_asked_for_a_time_zone_sets_none(world: World) -> None:
    channel = await linked_channel(world)
    pressed = await press(world, channel.menu, f"ch:{channel.id}:tz", channel.owner)
    assert any("time zone" in text for text in sent(pressed.calls, channel.owner))
    world.api.emulator.admins[channel.id] = set()
    await settle(world)
    before = await chat_state(world, channel.id)
    await send(world, "Europe/Berlin", channel.owner)
    assert await chat_state(world, channel.id) == before


async def test_a_stranger_cannot_take_over_a_linked_channel_by_linking_it(world: World) -> None:
    channel = await linked_channel(world)
    stranger = new_user()
    await settle(world)
    before = await chat_state(world, channel.id)
    told = sent(await try_to_link(world, channel.id, stranger), stranger)
    assert told == ["Only the channel's administrators can link it."]
    assert await chat_state(world, channel.id) == before


def _not_a_linked_channel(kind: str, world: World) -> tuple[int, int, int]:
    """(target chat id, who presses, where) for ``ch:`` data aimed at a chat that is not a
    linked channel: a group, one's own private chat, a channel nobody linked."""
    if kind == "group":
        return GROUP, _group_admin(world), GROUP
    if kind == "private-chat":
        user = new_user()
        return user, user, user
    channel_id, admin = new_channel(), new_user()
    world.api.emulator.add_channel(channel_id, "Never linked", admins={admin})
    return channel_id, admin, admin


@pytest.mark.parametrize("action", ["all", "pause", "digest:weekly", "lang:ru", "unlink"])
@pytest.mark.parametrize("kind", ["group", "private-chat", "unlinked-channel"])
async def test_channel_buttons_aimed_at_other_chats_are_refused(
    world: World, caplog: pytest.LogCaptureFixture, kind: str, action: str
) -> None:
    target, user, chat_id = _not_a_linked_channel(kind, world)
    shown = await shown_in(world, chat_id, user)
    await settle(world)
    before = await chat_state(world, target)
    pressed = await press(world, shown, f"ch:{target}:{action}", user)
    assert pressed.alerts == [EXPIRED]
    assert await chat_state(world, target) == before
    assert refusals_logged(caplog, user)


async def test_a_channel_once_unlinked_is_managed_by_nobody(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    channel = await linked_channel(world)
    await press(world, channel.menu, f"ch:{channel.id}:unlink", channel.owner)
    shown = await shown_in(world, channel.owner, channel.owner)
    await settle(world)
    before = await chat_state(world, channel.id)
    pressed = await press(world, shown, f"ch:{channel.id}:all", channel.owner)
    assert pressed.alerts == [EXPIRED]
    assert await chat_state(world, channel.id) == before
    assert refusals_logged(caplog, channel.owner)


# === cross-chat forgery ===================================================================


async def _victim_private(world: World) -> int:
    user = new_user()
    await reply(world, "/subscribe sco", user)
    return user


async def _victim_group(world: World) -> int:
    group, admin = new_group(), new_user()
    world.api.emulator.admins[group] = {admin}
    await reply(world, "/subscribe sco", group, admin)
    return group


async def _victim_channel(world: World) -> int:
    return (await linked_channel(world)).id


VICTIMS: dict[str, Callable[[World], Awaitable[int]]] = {
    "private-chat": _victim_private,
    "group": _victim_group,
    "channel": _victim_channel,
}


def _attacker(kind: str, world: World) -> tuple[int, int]:
    """(user, chat) of someone who may change their own chat's subscriptions."""
    if kind == "private-user":
        user = new_user()
        return user, user
    group, admin = new_group(), new_user()
    world.api.emulator.admins[group] = {admin}
    return admin, group


@pytest.mark.parametrize("attacker", ["private-user", "admin-of-own-group"])
@pytest.mark.parametrize("data", ["u:{sub}", "lt:{sub}:60", "t:{sub}", "ld:{sub}"])
@pytest.mark.parametrize("victim", list(VICTIMS))
async def test_another_chats_subscription_cannot_be_reached(
    world: World, victim: str, data: str, attacker: str
) -> None:
    victim_chat = await VICTIMS[victim](world)
    (subscription,) = await subscription_ids(world, victim_chat)
    user, chat_id = _attacker(attacker, world)
    shown = await shown_in(world, chat_id, user)
    await settle(world)
    before = await chat_state(world, victim_chat)
    mine = await chat_state(world, chat_id)
    pressed = await press(world, shown, data.format(sub=subscription), user)
    assert await chat_state(world, victim_chat) == before
    assert await chat_state(world, chat_id) == mine
    told = sent(pressed.calls, chat_id)
    assert told in ([], [NOT_FOLLOWED]), told  # nothing about what the other chat follows
    assert pressed.alerts in ([None], [EXPIRED])
