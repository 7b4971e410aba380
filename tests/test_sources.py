"""Sources the bot follows by itself, end to end: a local HTTP server serves feeds and
data files that change between polls, and the real bot polls them (SOURCES_ALLOW_LOCAL
on), tells followers once, moves reminders, keeps operators' edits, flags what left a
feed, and shows every failure in /sources with the data untouched."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import icalendar
import pytest
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import FixedClock
from bot.context import BotApplication
from bot.presentation import callbacks, ics
from bot.presentation.i18n import translator
from bot.sources.ical import event_key_for
from bot.sources.poller import SourcePoller
from config.settings import Settings
from storage.database import Database
from storage.datafile import EventRow
from storage.dataset import import_text
from storage.dates import PartialDate
from storage.export import export_dataset
from storage.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Event,
    EventChange,
    EventStatus,
    Source,
    SourceEvent,
    SubscriptionScope,
)
from storage.operations import changed, find_place, load_event_row, save_event, with_place
from storage.planning import Planner
from tests.botapi import ApiCall, LocalBotApi
from tests.conftest import NOW, OPERATOR_ID, StartBot, make_settings
from tests.factories import QUIET, plain
from tests.test_cli import summitbot

UTC = dt.UTC
FOLLOWERS = (1001, 1002)
# The job never runs by itself in these tests: polls are started by the test.
SOURCES = {**QUIET, "sources_allow_local": True, "source_poll_check_seconds": 3600}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- a local server of feeds -------------------------------------------------------------


class FeedServer:
    """Serves bodies by path with an ETag (answering 304 to a matching If-None-Match), or
    misbehaves as told; counts requests by path."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.hits: Counter[str] = Counter()
        self.requested = asyncio.Event()  # set at every request
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        self.hits[path] += 1
        self.requested.set()
        handler = self.handlers.get(path)
        if handler is None:
            return web.Response(status=404)
        return await handler(request)

    def serve(self, path: str, body: bytes, content_type: str = "text/calendar") -> None:
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'

        async def handler(request: web.Request) -> web.StreamResponse:
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            return web.Response(body=body, content_type=content_type, headers={"ETag": etag})

        self.handlers[path] = handler

    def misbehave(self, path: str, how: str) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            match how:
                case "500":
                    return web.Response(status=500, text="boom")
                case "slow":
                    await asyncio.sleep(5)
                    return web.Response(text="late")
                case "huge":
                    return web.Response(
                        body=b"X" * (20 * 1024 * 1024), content_type="text/calendar"
                    )
                case "garbage":
                    return web.Response(
                        text="<html>not a calendar</html>", content_type="text/html"
                    )
                case _:  # "loop": a redirect to itself
                    raise web.HTTPFound(location=f"/{path}")

        self.handlers[path] = handler


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    await server.start()
    yield server
    await server.stop()


def vevent(
    uid: str,
    summary: str,
    start: str,
    *,
    sequence: int = 0,
    status: str | None = None,
    modified: str = "20261101T000000Z",
    location: str | None = None,
) -> str:
    lines = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{modified}",
        f"LAST-MODIFIED:{modified}",
        f"SEQUENCE:{sequence}",
        f"SUMMARY:{summary}",
        f"DTSTART:{start}",
    ]
    if status:
        lines.append(f"STATUS:{status}")
    if location:
        lines.append(f"LOCATION:{location}")
    return "\r\n".join([*lines, "END:VEVENT"])


def calendar(*events: str) -> bytes:
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//feeds//EN", "X-WR-CALNAME:SCO"]
    return ("\r\n".join([*head, *events, "END:VCALENDAR"]) + "\r\n").encode()


TALKS = vevent("talks@sco.example", "SCO Foreign Ministers", "20261123T120000Z")
FEED = "https://example.org/feed.ics"
FORUM = vevent("forum@sco.example", "SCO Youth Forum", "20261210T080000Z")


# --- helpers -----------------------------------------------------------------------------


async def say(bot_api: LocalBotApi, text: str, expect: str, *, user_id: int = OPERATOR_ID) -> str:
    update = bot_api.message(text, chat_id=user_id)
    start = bot_api._index_at_push[update["update_id"]]
    call = await bot_api.wait_for(
        lambda c: c.method == "sendMessage" and c.chat_id == user_id and expect in plain(c.text),
        after=start,
    )
    return plain(call.text)


async def scalar(database_url: str, statement: Any) -> Any:
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            return await session.scalar(statement)
    finally:
        await database.dispose()


async def rows(database_url: str, statement: Any) -> list[Any]:
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            return list((await session.execute(statement)).all())
    finally:
        await database.dispose()


async def follow_sco(app: BotApplication, bot_api: LocalBotApi) -> None:
    services = app.bot_data.services
    for chat_id in FOLLOWERS:
        await say(bot_api, "/start", "", user_id=chat_id)
        await services.subscriptions.follow(chat_id, SubscriptionScope.ORGANISATION, "sco", NOW)


def notices(bot_api: LocalBotApi, chat_id: int, heading: str, title: str) -> list[ApiCall]:
    return [c for c in bot_api.sent_to(chat_id) if heading in plain(c.text) and title in c.text]


def key_of(uid: str, source_id: int = 1) -> str:
    return event_key_for(f"sco-s{source_id}", uid)


def pending_reminders(key: str) -> Any:
    return (
        select(Delivery.due_at)
        .join(Event, Event.id == Delivery.event_id)
        .where(
            Event.key == key,
            Delivery.kind == DeliveryKind.REMINDER,
            Delivery.status == DeliveryStatus.PENDING,
        )
        .order_by(Delivery.due_at)
    )


async def operator_saves(
    app: BotApplication, before: EventRow, after: EventRow, *, session: AsyncSession | None = None
) -> None:
    """An operator's Save of ``before`` → ``after`` (in ``session``'s transaction, if given)."""
    services = app.bot_data.services

    async def save(session: AsyncSession) -> None:
        await save_event(
            session,
            after,
            before=before,
            changed_by=f"operator {OPERATOR_ID}",
            now=services.clock.now(),
            planner=services.dispatcher.planner,
        )

    if session is not None:
        await save(session)
        return
    async with services.database.transaction() as own:
        await save(own)


# --- a feed followed over time -----------------------------------------------------------


async def test_a_feed_brings_new_events_then_a_postponement_and_a_cancellation_once(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    clock: FixedClock,
    database_url: str,
    feeds: FeedServer,
) -> None:
    feeds.serve("sco.ics", calendar(TALKS, FORUM))
    talks, forum = key_of("talks@sco.example"), key_of("forum@sco.example")
    async with start_bot(**SOURCES) as app:
        services = app.bot_data.services
        await follow_sco(app, bot_api)
        added = await say(bot_api, f"/sources add {feeds.url('sco.ics')} sco 30m", "Source #1")
        assert added == (
            f"✅ Source #1 added: {feeds.url('sco.ics')}. "
            "It is polled within a minute, then every 30 minutes."
        )
        checked = await say(bot_api, "/sources check 1", "checked")
        assert checked == "Source #1 checked: 2 new, 0 changed, 0 gone."

        # New events: each follower of the SCO is told once about each.
        await services.dispatcher.sweep()
        for chat_id in FOLLOWERS:
            assert len(notices(bot_api, chat_id, "New event", "SCO Foreign Ministers")) == 1
            assert len(notices(bot_api, chat_id, "New event", "SCO Youth Forum")) == 1
        card = await say(bot_api, f"/event {talks}", "SCO Foreign Ministers")
        assert feeds.url("sco.ics") in card  # its source
        # The day-before reminder is planned (within the planner's horizon).
        before = [when for (when,) in await rows(database_url, pending_reminders(talks))]
        assert dt.datetime(2026, 11, 22, 12, 0, tzinfo=UTC) in before

        # The feed postpones the talks by a day and cancels the forum.
        postponed = vevent(
            "talks@sco.example", "SCO Foreign Ministers", "20261124T120000Z", sequence=1
        )
        cancelled = vevent(
            "forum@sco.example", "SCO Youth Forum", "20261210T080000Z", sequence=1,
            status="CANCELLED",
        )  # fmt: skip
        feeds.serve("sco.ics", calendar(postponed, cancelled))
        clock.advance(dt.timedelta(minutes=31))
        [outcome] = await services.sources.poll_due()
        assert outcome.status == "ok" and outcome.report is not None
        assert sorted(outcome.report.changed) == sorted([talks, forum])
        await services.dispatcher.sweep()
        for chat_id in FOLLOWERS:
            assert len(notices(bot_api, chat_id, "Changed", "SCO Foreign Ministers")) == 1
            assert len(notices(bot_api, chat_id, "Changed", "SCO Youth Forum")) == 1
        after = [when for (when,) in await rows(database_url, pending_reminders(talks))]
        assert all(when >= dt.datetime(2026, 11, 23, 12, 0, tzinfo=UTC) for when in after)
        statuses = dict(await rows(database_url, select(Event.key, Event.status)))
        assert statuses[forum] == EventStatus.CANCELLED
        who = await rows(
            database_url, select(EventChange.changed_by).join(Event).where(Event.key == talks)
        )
        assert who == [("source:1",)]

        # Nothing new: the server answers 304, which costs nothing else.
        changes = await scalar(database_url, select(func.count()).select_from(EventChange))
        clock.advance(dt.timedelta(minutes=31))
        [outcome] = await services.sources.poll_due()
        assert outcome.status == "not_modified"
        assert await scalar(database_url, select(func.count()).select_from(EventChange)) == changes
        listing = await say(bot_api, "/sources", "Sources")
        assert "Last poll: 22 Nov 2026, 15:02, ok, not modified" in listing  # Almaty time

        # Polling again at once does nothing: it is not due.
        assert await services.sources.poll_due() == []
        metrics = services.metrics.exposition().decode()
        assert 'summitbot_source_last_success_timestamp_seconds{source="1"}' in metrics
        stats = await say(bot_api, "/stats", "Statistics")
        assert "Sources: 1 followed (1 on, 0 failing): /sources" in stats
    assert feeds.hits["sco.ics"] == 3
    # Each follower got exactly the four notices, no more.
    for chat_id in FOLLOWERS:
        sent = [c for c in bot_api.sent_to(chat_id) if "SCO" in c.text and "📣" in c.text]
        assert len(sent) == 2


async def test_an_operators_edit_survives_and_a_vanished_event_is_flagged_not_deleted(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    database_url: str,
    feeds: FeedServer,
) -> None:
    feeds.serve("sco.ics", calendar(TALKS, FORUM))
    talks, forum = key_of("talks@sco.example"), key_of("forum@sco.example")
    async with start_bot(**SOURCES) as app:
        services = app.bot_data.services
        await say(bot_api, f"/sources add {feeds.url('sco.ics')} sco", "Source #1")
        assert "2 new" in await say(bot_api, "/sources check 1", "checked")

        # An operator moves the talks to a day (the change log says who).
        async with services.database.sessions() as session:
            row = await load_event_row(session, talks)
        assert row is not None
        edited = EventRow.model_validate(
            {**dict(row), "start": PartialDate.parse("2026-11-25"), "timezone": None}
        )
        await operator_saves(app, row, edited)

        # The feed then moves the talks itself, and drops the forum; an older copy of the
        # forum's first version comes back later.
        moved = vevent("talks@sco.example", "SCO Foreign Ministers", "20261126T120000Z", sequence=1)
        feeds.serve("sco.ics", calendar(moved))
        checked = await say(bot_api, "/sources check 1", "checked")
        assert checked == (
            "Source #1 checked: 0 new, 0 changed, 1 gone.\n"
            "1 changed in the feed, kept the operator's edit (see /review)."
        )
        start = await scalar(database_url, select(Event.start_local).where(Event.key == talks))
        assert start == dt.datetime(2026, 11, 25)  # the operator's day
        assert await scalar(database_url, select(Event.id).where(Event.key == forum)) is not None
        review = await say(bot_api, "/review", "Sources that need a person")
        assert "SCO Youth Forum (/event " + forum + "): gone from its feed since" in review
        assert (
            f"SCO Foreign Ministers (/event {talks}): changed in the feed, kept the operator's "
            f"edit. Seen: /sources seen {talks}"
        ) in review

        # The same feed again: nothing is written, nothing flagged anew.
        feeds.serve("sco.ics", calendar(moved, FORUM.replace("SEQUENCE:0", "SEQUENCE:0")))
        assert (await services.sources.poll_now(1)).report.kept_edits == []  # type: ignore[union-attr]
        assert await scalar(database_url, select(Event.start_local).where(Event.key == talks)) == (
            dt.datetime(2026, 11, 25)
        )
        # The forum is back: its flag is cleared.
        review = await say(bot_api, "/review", "Sources that need a person")
        assert "gone from its feed" not in review
        assert await say(bot_api, f"/sources seen {talks}", "Marked") == f"Marked as seen: {talks}."
        missing = await rows(database_url, select(SourceEvent.missing_since))
        assert missing == [(None,), (None,)]

        # A stale copy (a lower SEQUENCE) of the talks is ignored.
        stale = vevent("talks@sco.example", "SCO Foreign Ministers", "20261201T120000Z")
        feeds.serve("sco.ics", calendar(stale, FORUM))
        outcome = await services.sources.poll_now(1)
        assert outcome is not None and outcome.report is not None
        assert outcome.report.stale == 1 and outcome.report.kept_edits == []


async def test_failures_leave_the_data_untouched_and_show_in_sources(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    clock: FixedClock,
    database_url: str,
    feeds: FeedServer,
) -> None:
    feeds.serve("sco.ics", calendar(TALKS))
    async with start_bot(**SOURCES, source_timeout_seconds=1) as app:
        services = app.bot_data.services
        await say(bot_api, f"/sources add {feeds.url('sco.ics')} sco", "Source #1")
        assert "1 new" in await say(bot_api, "/sources check 1", "checked")
        events = await scalar(database_url, select(func.count()).select_from(Event))
        changes = await scalar(database_url, select(func.count()).select_from(EventChange))
        cases = {
            "500": "the server answered with an error",
            "slow": "no answer in time",
            "huge": "the file is too large",
            "garbage": "not an iCalendar feed",
            "loop": "too many redirects",
        }
        for failures, (how, reason) in enumerate(cases.items(), start=1):
            feeds.misbehave("sco.ics", how)
            answer = await say(bot_api, "/sources check 1", "Source #1")
            assert answer.startswith(f"Source #1 failed: {reason} (")
            assert answer.endswith("). Nothing was changed.")
            listing = await say(bot_api, "/sources", "Sources")
            assert f"Last poll: 22 Nov 2026, 14:00, {reason}" in listing
            assert "Error: " in listing
            assert f"{failures} failure" in listing
        assert await scalar(database_url, select(func.count()).select_from(Event)) == events
        assert await scalar(database_url, select(func.count()).select_from(EventChange)) == changes

        # Backing off: not due after one interval, due after the back-off (capped at a day).
        feeds.serve("sco.ics", calendar(TALKS))
        clock.advance(dt.timedelta(hours=2))
        assert await services.sources.poll_due() == []
        # Failing for more than a day: in /review, /stats and /metrics.
        clock.advance(dt.timedelta(hours=23))
        review = await say(bot_api, "/review", "Sources that need a person")
        assert "Source #1 has failed since 22 Nov 2026, 14:00: too many redirects." in review
        assert "1 failing" in await say(bot_api, "/stats", "Statistics")
        metrics = services.metrics.exposition().decode()
        assert 'summitbot_source_failures_total{source="1"} 5.0' in metrics
        [outcome] = await services.sources.poll_due()
        # The feed is back as it was when last imported: the stored ETag still matches.
        assert outcome.status == "not_modified"
        assert "0 failing" in await say(bot_api, "/stats", "Statistics")


async def test_a_data_file_source_adds_events_and_may_not_touch_others(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str, feeds: FeedServer
) -> None:
    own = (
        "events:\n"
        "  - id: sco-club-meeting\n"
        "    organisation: sco\n"
        "    kind: meeting\n"
        "    title: {en: SCO club meeting}\n"
        "    start: 2027-02-03\n"
    )
    feeds.serve("events.yaml", own.encode(), content_type="application/yaml")
    async with start_bot(**SOURCES):
        await say(bot_api, f"/sources add {feeds.url('events.yaml')} 1h", "Source #1")
        listing = await say(bot_api, "/sources", "Sources")
        assert "data file · — · every 1 hour · on" in listing
        assert await say(bot_api, "/sources check 1", "checked") == (
            "Source #1 checked: 1 new, 0 changed, 0 gone."
        )
        assert "SCO club meeting" in await say(bot_api, "/event sco-club-meeting", "SCO club")

        # An event it did not create (the bundled dataset's), or an organisation: refused.
        bishkek = await scalar(
            database_url, select(Event.title).where(Event.key == "sco-2026-bishkek")
        )
        other = own + "  - id: sco-2026-bishkek\n    title: {en: Taken}\n    start: 2026-08-01\n"
        feeds.serve("events.yaml", other.encode())
        refused = await say(bot_api, "/sources check 1", "failed")
        assert "event 'sco-2026-bishkek' was not created by this source" in refused
        assert refused.endswith("Nothing was changed.")
        places = "places:\n  - {key: nowhere, names: {en: Nowhere}, country: KZ, timezone: UTC}\n"
        feeds.serve("events.yaml", (places + own).encode())
        refused = await say(bot_api, "/sources check 1", "failed")
        assert "a source may carry events only; places are added by operators" in refused
    assert (
        await scalar(database_url, select(Event.title).where(Event.key == "sco-2026-bishkek"))
        == bishkek
    )


async def test_a_location_no_known_place_names_is_kept_in_words_shown_and_exported(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    database_url: str,
    empty_database_url: str,
    feeds: FeedServer,
) -> None:
    hall = vevent(
        "hall@sco.example",
        "SCO Energy Forum",
        "20261215T050000Z",
        location="Rue du Lac 5\\, Hall B",
    )
    residence = vevent(
        "residence@sco.example",
        "SCO Culture Week",
        "20261216T050000Z",
        location="Ala-Archa Residence\\, Bishkek",
    )
    feeds.serve("sco.ics", calendar(hall, residence))
    forum, week = key_of("hall@sco.example"), key_of("residence@sco.example")
    async with start_bot(**SOURCES) as app:
        services = app.bot_data.services
        await say(bot_api, f"/sources add {feeds.url('sco.ics')} sco", "Source #1")
        assert "2 new" in await say(bot_api, "/sources check 1", "checked")

        # Where no known place is named, the words are the place on the card, in lists
        # and in a calendar file; a known place still wins.
        card = await say(bot_api, f"/event {forum}", "SCO Energy Forum")
        assert "📍 Rue du Lac 5, Hall B\n" in card
        assert "📍 Bishkek, Kyrgyzstan\n" in await say(bot_api, f"/event {week}", "Culture")
        stored = dict(await rows(database_url, select(Event.key, Event.location_text)))
        assert (stored[forum], stored[week]) == ("Rue du Lac 5, Hall B", None)
        view = await services.catalogue.event(forum)
        assert view is not None
        entry = icalendar.Calendar.from_ical(ics.calendar_file([view], [], translator("en"), NOW))
        assert [str(e["LOCATION"]) for e in entry.walk("VEVENT")] == ["Rue du Lac 5, Hall B"]

        # An operator's edit keeps the words; a place the operator sets wins over them.
        async with services.database.sessions() as session:
            row = await load_event_row(session, forum)
            astana = await find_place(session, "Astana")
        assert row is not None and row.location == "Rue du Lac 5, Hall B"
        renamed = changed(row, title={"en": "SCO Energy Ministers"})
        for before, after in ((row, renamed), (renamed, with_place(renamed, astana, None))):
            await operator_saves(app, before, after)
            card = await say(bot_api, f"/event {forum}", "SCO Energy Ministers")
            where = "Rue du Lac 5, Hall B" if after is renamed else "Astana, Kazakhstan"
            assert f"📍 {where}\n" in card

    # The data file format carries it: an export imported elsewhere gives the same file.
    source, target = Database(database_url), Database(empty_database_url)
    try:
        async with source.sessions() as session:
            exported = await export_dataset(session)
        assert "location: Rue du Lac 5, Hall B\n" in exported
        async with target.transaction() as session:
            await import_text(session, exported, "export.yaml")
        async with target.sessions() as session:
            again = await export_dataset(session)
            kept = await session.scalar(select(Event.location_text).where(Event.key == forum))
    finally:
        await source.dispose()
        await target.dispose()
    assert again == exported
    assert kept == "Rue du Lac 5, Hall B"


def checked_day(key: str) -> Any:
    return select(Event.checked_on).where(Event.key == key)


async def test_an_operators_checked_today_is_an_edit_the_feed_keeps_and_never_clears(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    database_url: str,
    feeds: FeedServer,
) -> None:
    feeds.serve("sco.ics", calendar(TALKS))
    talks, forum = key_of("talks@sco.example"), key_of("forum@sco.example")
    async with start_bot(**SOURCES) as app:
        services = app.bot_data.services
        await say(bot_api, f"/sources add {feeds.url('sco.ics')} sco", "Source #1")
        assert "1 new" in await say(bot_api, "/sources check 1", "checked")

        # The feed's event was never checked: "☑ Checked today" in /review, then Save.
        update = bot_api.message("/review", chat_id=OPERATOR_ID)
        shown = await bot_api.wait_for(
            lambda c: c.chat_id == OPERATOR_ID and "Review queue" in plain(c.text),
            after=bot_api._index_at_push[update["update_id"]],
        )
        before = len(bot_api.calls)
        bot_api.press(
            shown, callbacks.review_action(callbacks.ReviewVerb.CHECKED, f"event:{talks}")
        )
        preview = await bot_api.wait_for(
            lambda c: c.method == "sendMessage" and "Save" in str(c.parameters), after=before
        )
        before = len(bot_api.calls)
        bot_api.press(preview, preview.button("Save")["callback_data"])
        saved = await bot_api.wait_for(lambda c: c.method == "editMessageText", after=before)
        assert plain(saved.text).endswith("✅ Saved.")
        today = dt.date(2026, 11, 22)
        assert await scalar(database_url, checked_day(talks)) == today
        # Logged like any operator's edit: who, and the day old and new.
        logged = await rows(
            database_url,
            select(EventChange.changed_by, EventChange.old, EventChange.new)
            .join(Event)
            .where(Event.key == talks),
        )
        assert [(who, old["checked"], new["checked"]) for who, old, new in logged] == [
            (f"operator {OPERATOR_ID}", None, "2026-11-22")
        ]

        # The feed changes beside it (a new event), the talks as they were: the day stays,
        # and nothing is flagged.
        feeds.serve("sco.ics", calendar(TALKS, FORUM))
        outcome = await services.sources.poll_now(1)
        assert outcome is not None and outcome.report is not None
        assert (outcome.report.added, outcome.report.changed) == ([forum], [])
        assert outcome.report.kept_edits == []
        assert await scalar(database_url, checked_day(talks)) == today

        # The feed then moves the talks: the fact the operator confirmed is kept.
        moved = vevent("talks@sco.example", "SCO Foreign Ministers", "20261126T120000Z", sequence=1)
        feeds.serve("sco.ics", calendar(moved, FORUM))
        outcome = await services.sources.poll_now(1)
        assert outcome is not None and outcome.report is not None
        assert outcome.report.kept_edits == [talks]
        start = await scalar(database_url, select(Event.start_local).where(Event.key == talks))
        assert start == dt.datetime(2026, 11, 23, 12, 0)  # as the feed first gave it (UTC)
        assert await scalar(database_url, checked_day(talks)) == today


async def test_a_source_that_does_not_say_when_it_was_checked_keeps_the_day_there_was(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str, feeds: FeedServer
) -> None:
    def meeting(title: str, checked: str = "") -> bytes:
        return (
            "events:\n"
            "  - id: sco-club-meeting\n"
            "    organisation: sco\n"
            "    kind: meeting\n"
            f"    title: {{en: {title}}}\n"
            "    start: 2027-02-03\n" + (f"    checked: {checked}\n" if checked else "")
        ).encode()

    feeds.serve("events.yaml", meeting("SCO club meeting", "2026-11-20"), "application/yaml")
    async with start_bot(**SOURCES):
        await say(bot_api, f"/sources add {feeds.url('events.yaml')}", "Source #1")
        assert "1 new" in await say(bot_api, "/sources check 1", "checked")
        assert await scalar(database_url, checked_day("sco-club-meeting")) == dt.date(2026, 11, 20)
        # A new title, and no `checked` any more: the title changes, the day stays.
        feeds.serve("events.yaml", meeting("SCO club assembly"), "application/yaml")
        assert "1 changed" in await say(bot_api, "/sources check 1", "checked")
        title = await scalar(
            database_url, select(Event.title).where(Event.key == "sco-club-meeting")
        )
        assert title == {"en": "SCO club assembly"}
        assert await scalar(database_url, checked_day("sco-club-meeting")) == dt.date(2026, 11, 20)


async def test_links_kept_before_locations_were_do_not_read_as_changed_in_the_feed(
    bot_api: LocalBotApi, start_bot: StartBot, feeds: FeedServer
) -> None:
    """A source's last values stored before rows had ``location`` (migration 0014): the
    same feed is no change, so an operator's edit is not flagged for it."""
    feeds.serve("sco.ics", calendar(TALKS))
    talks = key_of("talks@sco.example")
    async with start_bot(**SOURCES) as app:
        services = app.bot_data.services
        await say(bot_api, f"/sources add {feeds.url('sco.ics')} sco", "Source #1")
        assert "1 new" in await say(bot_api, "/sources check 1", "checked")
        async with services.database.transaction() as session:
            link = await session.scalar(select(SourceEvent))
            assert link is not None and "location" in link.snapshot
            link.snapshot = {k: v for k, v in link.snapshot.items() if k != "location"}
            row = await load_event_row(session, talks)
            assert row is not None
            renamed = changed(row, title={"en": "SCO Ministers of Foreign Affairs"})
            await operator_saves(app, row, renamed, session=session)
        feeds.serve("sco.ics", calendar(TALKS, FORUM))  # a new body, the talks as they were
        outcome = await services.sources.poll_now(1)
        assert outcome is not None and outcome.report is not None
        assert (outcome.report.changed, outcome.report.kept_edits) == ([], [])


async def test_bad_input_is_refused_clearly(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    async with start_bot(**QUIET):  # SOURCES_ALLOW_LOCAL off, as in production
        for text, expected in [
            (
                "/sources add https://127.0.0.1/feed.ics sco",
                "This address cannot be followed: the address is on a local or private network.",
            ),
            (
                "/sources add http://example.org/feed.ics sco",
                "This address cannot be followed: the address must start with https://.",
            ),
            (f"/sources add {FEED} nosuchorg", "Unknown organisation: nosuchorg."),
            (f"/sources add {FEED} sco 1m", "The interval must be at least 5 minutes."),
            (
                f"/sources add {FEED}",
                "A calendar feed needs an organisation: /sources add URL ORGANISATION [INTERVAL]",
            ),
            ("/sources check 99", "There is no source #99."),
            ("/sources remove 99", "There is no source #99."),
            ("/sources off 1;", "1; is not a source number."),
            ("/sources check ²", "² is not a source number."),
        ]:  # fmt: skip
            assert await say(bot_api, text, expected[:12]) == expected
        refused = await say(bot_api, "/sources", "operators", user_id=4242)
        assert refused == "Only operators can do that."
        added = await say(bot_api, "/sources add https://example.org/sco.ics sco 2h", "Source #1")
        assert added.startswith("✅ Source #1 added: https://example.org/sco.ics.")
        again = await say(bot_api, "/sources add https://example.org/sco.ics sco", "followed")
        assert again == "This address is followed already: /sources"
        assert await say(bot_api, "/sources off 1", "off") == "Source #1 is off."
        assert "every 2 hours · off" in await say(bot_api, "/sources", "Sources")
        removed = await say(bot_api, "/sources remove 1", "removed")
        assert removed == "Source #1 removed; the events it created stay."
        assert "No sources yet." in await say(bot_api, "/sources", "Sources")


async def test_two_replicas_racing_on_one_due_source_import_it_once(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    clock: FixedClock,
    database_url: str,
    feeds: FeedServer,
) -> None:
    feeds.serve("sco.ics", calendar(TALKS, FORUM))
    async with start_bot(**SOURCES):
        await say(bot_api, f"/sources add {feeds.url('sco.ics')} sco", "Source #1")
    settings: Settings = make_settings(database_url, bot_api.base_url, **SOURCES)
    databases = [Database(database_url), Database(database_url)]
    pollers = [SourcePoller(db, clock, settings, Planner()) for db in databases]
    try:
        outcomes = await asyncio.gather(*(poller.poll_due() for poller in pollers))
    finally:
        for poller, db in zip(pollers, databases, strict=True):
            await poller.stop(1.0)
            await db.dispose()
    statuses = [outcome.status for found in outcomes for outcome in found]
    assert statuses == ["ok"]
    assert feeds.hits["sco.ics"] == 1
    assert await scalar(database_url, select(func.count()).select_from(SourceEvent)) == 2


async def test_summitbot_sources_adds_lists_checks_and_removes_from_the_shell(
    tmp_path: Path, database_url: str, feeds: FeedServer
) -> None:
    feeds.serve("sco.ics", calendar(TALKS, FORUM))
    env = {"DATABASE_URL": database_url, "SOURCES_ALLOW_LOCAL": "true"}
    code, out, err = await summitbot(tmp_path, "sources", "add", feeds.url("sco.ics"), **env)
    assert code == 2 and "A calendar feed needs an organisation" in err
    code, out, _ = await summitbot(
        tmp_path, "sources", "add", feeds.url("sco.ics"), "-o", "sco", "-i", "30m", **env
    )
    assert (code, out) == (0, f"Added source #1: {feeds.url('sco.ics')}\n")
    code, out, _ = await summitbot(tmp_path, "sources", "check", "1", **env)
    assert (code, out) == (
        0,
        "Source #1: 2 new, 0 changed, 0 gone, 0 kept as edited, 0 skipped\n",
    )
    code, out, _ = await summitbot(tmp_path, "sources", "list", **env)
    assert code == 0
    assert out.startswith(f"#1 | {feeds.url('sco.ics')} | ical | sco | every 30 min | on | ")
    assert " ok" in out
    code, _, err = await summitbot(
        tmp_path, "sources", "add", "https://10.0.0.1/x.ics", "-o", "sco", DATABASE_URL=database_url
    )
    assert code == 2 and "(private_address)" in err
    code, out, _ = await summitbot(tmp_path, "sources", "remove", "1", **env)
    assert (code, out) == (0, "Removed source #1; the events it created stay.\n")
    code, _, err = await summitbot(tmp_path, "sources", "check", "1", **env)
    assert (code, err) == (1, "There is no source #1.\n")
    assert await scalar(database_url, select(func.count()).select_from(SourceEvent)) == 0
    assert (
        await scalar(
            database_url, select(func.count()).select_from(Event).where(Event.key.like("sco-s1-%"))
        )
        == 2
    )


async def test_a_poll_in_flight_does_not_hold_up_a_stop_and_gives_its_lease_back(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str, feeds: FeedServer
) -> None:
    feeds.misbehave("sco.ics", "slow")  # answers after 5 s
    async with start_bot(**SOURCES, shutdown_timeout_seconds=1) as app:
        await say(bot_api, f"/sources add {feeds.url('sco.ics')} sco", "Source #1")
        poll = asyncio.ensure_future(app.bot_data.services.sources.poll_now(1))
        await asyncio.wait_for(feeds.requested.wait(), 5)
        stopping = asyncio.get_running_loop().time()
    assert asyncio.get_running_loop().time() - stopping < 4
    with pytest.raises(asyncio.CancelledError):
        await poll
    leases = await rows(database_url, select(Source.claimed_by, Source.last_status))
    assert leases == [(None, None)]  # free for another replica; nothing recorded


async def test_a_bug_while_reading_a_feed_is_recorded_and_backs_off_like_any_failure(
    bot_api: LocalBotApi,
    start_bot: StartBot,
    feeds: FeedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("bot.sources.poller._ical_rows", broken)
    feeds.serve("sco.ics", calendar(TALKS))
    async with start_bot(**SOURCES) as app:
        await say(bot_api, f"/sources add {feeds.url('sco.ics')} sco", "Source #1")
        failed = await say(bot_api, "/sources check 1", "failed")
        assert failed == (
            "Source #1 failed: an error in the bot (see its log) (RuntimeError). "
            "Nothing was changed."
        )
        assert await app.bot_data.services.sources.poll_due() == []  # backing off
