"""Several bot processes on one database, as behind a load balancer: a person's next
update may reach any of them, so a dialogue begun on one goes on on another, and an
operator's Save, pressed twice on two of them at once, saves once.

The two replicas here are two real applications on the same database and Bot API
server; each update is handed to the one the test names, as a load balancer would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from sqlalchemy import func, select
from telegram import Update

from bot.clock import FixedClock
from bot.context import BotApplication
from bot.handlers.operators.pending import PendingOperation
from storage.database import Database
from storage.datafile import parse_text
from storage.dialogues import (
    DialogueKind,
    add_pending_operation,
    current_dialogue,
    start_dialogue,
)
from storage.export import export_dataset
from storage.models import Dialogue, EventStatus
from storage.models import PendingOperation as StoredOperation
from storage.operations import changed
from tests.botapi import ApiCall, LocalBotApi
from tests.conftest import OPERATOR_ID, StartBot
from tests.factories import QUIET, TEST_EVENT, load, plain, tight_ranges
from tests.test_channels import CHANNEL, OWNER, forward_from_channel, stored_chat
from tests.test_operators import changes_of, events_table

Replicas = tuple[BotApplication, BotApplication]


@pytest.fixture
async def replicas(start_bot: StartBot) -> AsyncIterator[Replicas]:
    """Two bot processes on one database; neither polls, the test routes each update."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(start_bot(polling=False, **QUIET))
        second = await stack.enter_async_context(start_bot(polling=False, **QUIET))
        yield first, second


async def deliver(app: BotApplication, update: dict[str, Any]) -> None:
    await app.process_update(Update.de_json(update, app.bot))


async def say(
    bot_api: LocalBotApi, app: BotApplication, text: str, *, user_id: int = OPERATOR_ID
) -> ApiCall:
    """``text`` from a person in their private chat, handled by ``app``; its reply."""
    update = bot_api.message(text, chat_id=user_id)
    await deliver(app, update)
    return await bot_api.reply_to(update)


async def press(
    bot_api: LocalBotApi,
    app: BotApplication,
    shown: ApiCall,
    label: str,
    *,
    edited: ApiCall | None = None,
) -> tuple[ApiCall, ApiCall | None]:
    """Press a button under ``shown`` (as ``edited`` since), handled by ``app``: the
    button's answer, and the message edited (None when there was no edit, as when the
    button has expired)."""
    update = bot_api.press(edited or shown, shown.button(label)["callback_data"])
    start = len(bot_api.calls)
    await deliver(app, update)
    answered = await bot_api.reply_to(update, method="answerCallbackQuery")
    edits = [c for c in bot_api.calls[start:] if c.method == "editMessageText"]
    return answered, edits[0] if edits else None


async def test_an_event_begun_on_one_process_is_added_through_another(
    bot_api: LocalBotApi, replicas: Replicas
) -> None:
    a, b = replicas
    await say(bot_api, a, "/addevent")
    assert "What kind of event" in plain((await say(bot_api, b, "sco")).text)
    assert "Its title" in plain((await say(bot_api, a, "summit")).text)
    assert "In which city" in plain((await say(bot_api, b, "Extraordinary SCO summit")).text)
    assert "When?" in plain((await say(bot_api, a, "Astana")).text)
    retry = await say(bot_api, b, "2026-13-45")
    assert "“2026-13-45” is not a date" in plain(retry.text)
    assert "status" in plain((await say(bot_api, a, "2026-12-10 2026-12-11")).text)
    assert "Where is this from" in plain((await say(bot_api, b, "confirmed")).text)
    shown = await say(bot_api, a, "akorda.kz")
    assert "check it, then save it" in plain(shown.text)
    assert "10–11 Dec 2026" in tight_ranges(shown.text)

    _, saved = await press(bot_api, b, shown, "Save")
    assert saved is not None
    assert "Saved as /event sco-2026-astana." in plain(saved.text)
    card = await say(bot_api, a, "/event sco-2026-astana")
    assert "Extraordinary SCO summit" in plain(card.text)


async def test_cancel_on_another_process_ends_the_dialogue_everywhere(
    bot_api: LocalBotApi, replicas: Replicas, database_url: str
) -> None:
    a, b = replicas
    before = await events_table(database_url)
    await say(bot_api, a, "/addevent")
    await say(bot_api, a, "sco")
    assert "nothing was saved" in plain((await say(bot_api, b, "/cancel")).text)
    # Neither process takes text for an answer any more.
    for app in (a, b):
        reply = await say(bot_api, app, "sco")
        assert "Shanghai Cooperation Organisation" in plain(reply.text)
        assert "Its title" not in plain(reply.text)
    assert await events_table(database_url) == before


async def test_a_dialogue_left_for_half_an_hour_is_over_on_every_process(
    bot_api: LocalBotApi, replicas: Replicas, clock: FixedClock
) -> None:
    a, b = replicas
    await say(bot_api, a, "/addevent")
    clock.advance(dt.timedelta(minutes=29))
    assert "What kind of event" in plain((await say(bot_api, b, "sco")).text)
    clock.advance(dt.timedelta(minutes=30, seconds=1))
    reply = await say(bot_api, a, "summit")
    assert "Its title" not in plain(reply.text)  # a search now, not an answer


async def test_a_channel_asked_for_on_one_process_is_linked_by_another(
    bot_api: LocalBotApi, replicas: Replicas, database_url: str
) -> None:
    a, b = replicas
    bot_api.emulator.add_channel(CHANNEL, "Summit News", "summitnews", admins={OWNER})
    listing = await say(bot_api, a, "/channels", user_id=OWNER)
    await press(bot_api, a, listing, "Link")
    forwarded = forward_from_channel(bot_api, CHANNEL)
    await deliver(b, forwarded)
    menu = await bot_api.reply_to(forwarded)
    assert "Linked Summit News" in plain(menu.text)
    stored = await stored_chat(database_url, CHANNEL)
    assert stored is not None and stored.linked_by == OWNER

    # The channel's time zone, asked on one process, answered on the other.
    await press(bot_api, b, menu, "Time zone")
    answered = await say(bot_api, a, "Europe/Berlin", user_id=OWNER)
    assert "Summit News" in plain(answered.text)
    stored = await stored_chat(database_url, CHANNEL)
    assert stored is not None and stored.timezone == "Europe/Berlin"
    # The question is answered: the same text again is a search on either process.
    again = await say(bot_api, b, "Europe/Berlin", user_id=OWNER)
    assert "Summit News" not in plain(again.text)


async def test_save_pressed_on_two_processes_at_once_saves_once(
    bot_api: LocalBotApi,
    replicas: Replicas,
    start_bot: StartBot,
    database_url: str,
    clock: FixedClock,
) -> None:
    await load(database_url, TEST_EVENT, clock.now())
    a, b = replicas
    async with start_bot(polling=False, **QUIET) as third:  # shows the preview, then stops
        shown = await say(bot_api, third, "/postpone test-summit 2026-12-08T10:00")
    assert "Check the change" in plain(shown.text)
    data = shown.button("Save")["callback_data"]
    presses = [bot_api.press(shown, data), bot_api.press(shown, data)]
    start = len(bot_api.calls)
    await asyncio.gather(deliver(a, presses[0]), deliver(b, presses[1]))

    alerts = [
        (await bot_api.reply_to(update, method="answerCallbackQuery")).parameters.get("text")
        for update in presses
    ]
    edits = [plain(c.text) for c in bot_api.calls[start:] if c.method == "editMessageText"]
    assert sorted(alerts, key=str) == [None, "This button has expired."]  # one saved
    assert len(edits) == 1 and "Saved." in edits[0]
    assert len(await changes_of(database_url, "test-summit")) == 1


async def test_a_preview_made_on_one_process_is_cancelled_on_another_only_once(
    bot_api: LocalBotApi, replicas: Replicas, database_url: str, clock: FixedClock
) -> None:
    await load(database_url, TEST_EVENT, clock.now())
    before = await events_table(database_url)
    a, b = replicas
    shown = await say(bot_api, a, "/setstatus test-summit held")
    _, cancelled = await press(bot_api, b, shown, "Cancel")
    assert cancelled is not None and "Cancelled; nothing was changed." in plain(cancelled.text)
    # The token is spent everywhere: Save on the first process finds nothing.
    alert, edited = await press(bot_api, a, shown, "Save", edited=cancelled)
    assert alert.parameters["text"] == "This button has expired."
    assert edited is None
    assert await events_table(database_url) == before


async def test_forgetme_drops_the_persons_questions_and_waiting_changes_on_every_process(
    bot_api: LocalBotApi, replicas: Replicas, database_url: str, clock: FixedClock
) -> None:
    await load(database_url, TEST_EVENT, clock.now())
    before = await events_table(database_url)
    a, b = replicas
    shown = await say(bot_api, a, "/setstatus test-summit held")
    await say(bot_api, a, "/addevent")
    confirm = await say(bot_api, b, "/forgetme")
    _, done = await press(bot_api, b, confirm, "Delete")
    assert done is not None and "everything about this chat is deleted" in plain(done.text)

    reply = await say(bot_api, a, "sco")
    assert "What kind of event" not in plain(reply.text)
    alert, _ = await press(bot_api, a, shown, "Save")
    assert alert.parameters["text"] == "This button has expired."
    assert await events_table(database_url) == before


# --- the storage side -------------------------------------------------------------------


async def test_a_waiting_change_comes_back_exactly_as_shown(database: Database) -> None:
    """Save compares the event with the one shown; a change read back any different from
    what was stored would be refused as "changed since this preview"."""
    async with database.sessions() as session:
        exported, problems = parse_text(await export_dataset(session), "export.yaml")
    assert problems == [] and exported.events
    for row in exported.events:
        operation = PendingOperation(changed(row, status=EventStatus.HELD), row, "<b>preview</b>")
        stored = json.loads(json.dumps(operation.to_json()))
        assert PendingOperation.from_json(stored) == operation


async def test_expired_questions_and_changes_are_deleted_when_new_ones_are_kept(
    database: Database, clock: FixedClock
) -> None:
    now = clock.now()
    async with database.transaction() as session:
        await start_dialogue(
            session, 1, 1, DialogueKind.LINK_CHANNEL, "link", {}, now + dt.timedelta(minutes=1), now
        )
        await add_pending_operation(session, 1, 1, {}, now, now + dt.timedelta(minutes=1), 20)
    later = now + dt.timedelta(minutes=2)
    async with database.transaction() as session:
        assert await current_dialogue(session, 1, 1, later) is None
        await start_dialogue(
            session,
            2,
            2,
            DialogueKind.LINK_CHANNEL,
            "link",
            {},
            later + dt.timedelta(minutes=1),
            later,
        )
        await add_pending_operation(session, 2, 2, {}, later, later + dt.timedelta(minutes=1), 20)
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Dialogue)) == 1
        assert await session.scalar(select(func.count()).select_from(StoredOperation)) == 1
