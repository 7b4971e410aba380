"""The Mini App's JSON API end to end (docs/webapp.md): the real webhook server with the
app mounted, every call signed with initData built in the test as Telegram builds it,
and the same chat seen through the local Bot API server, so a change made in the app
shows in chat and the other way round. Forged, expired or malformed initData changes
nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from bot.app import build_services
from bot.clock import FixedClock
from bot.context import BotApplication
from bot.presentation.i18n import translator
from bot.runtime.cli import main
from bot.runtime.serve import WebAppServer, WebhookServer
from bot.webapp.init_data import sign_init_data
from bot.webapp.strings import ui_strings
from config.settings import Settings, webapp_url
from storage.chats import chat_views, link_channel
from tests.botapi import LocalBotApi
from tests.conftest import TEST_TOKEN, StartBot, make_settings
from tests.factories import QUIET, START, TEST_EVENT, load, plain, tight_ranges

SECRET = "s3cret-Token_for-tests_0123456789abcdef"
USER = 6101
GROUP = -100_700_001
ADMIN = 6201
MEMBER = 6202
# Events of every precision, and one whose dates passed with no outcome recorded.
EVENTS = """
events:
  - id: app-day-summit
    organisation: sco
    title: {en: Day summit, ru: Саммит дня}
    place: astana
    start: 2027-07-03
    end: 2027-07-04
    status: confirmed
    sources: [https://example.org/day-summit]
  - id: app-month-forum
    organisation: sco
    kind: forum
    title: {en: Month forum}
    place: astana
    start: 2027-10
    status: planned
    sources: [example month]
  - id: app-year-meeting
    organisation: cis
    kind: meeting
    title: {en: Year meeting}
    place: moscow
    start: 2027
    status: planned
    sources: [example year]
  - id: app-lapsed-talks
    organisation: sco
    kind: meeting
    title: {en: Lapsed talks}
    place: astana
    start: 2026-03-10
    status: planned
    sources: [example lapsed]
"""


class MiniApp:
    """What the page does: calls /app/api/ with ``Authorization: tma <initData>``."""

    def __init__(self, base: str, http: aiohttp.ClientSession, clock: FixedClock) -> None:
        self.base = base
        self.http = http
        self.clock = clock

    def init_data(
        self,
        user_id: int = USER,
        *,
        language: str = "en",
        token: str = TEST_TOKEN,
        auth_date: dt.datetime | None = None,
        **fields: str,
    ) -> str:
        user = {"id": user_id, "first_name": "Tester", "language_code": language}
        return sign_init_data(token, user=user, auth_date=auth_date or self.clock.now(), **fields)

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        init_data: str | None = None,
        authorization: str | None = None,
        user_id: int = USER,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        header = authorization or f"tma {init_data or self.init_data(user_id)}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        async with self.http.request(
            method,
            self.base + path,
            data=data,
            headers={"Authorization": header, "Content-Type": "application/json"},
        ) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def get(self, path: str, **options: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **options)

    async def post(self, path: str, body: Any, **options: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, **options)


class Chat:
    """What Telegram does to the webhook: posts the user's messages."""

    def __init__(self, server: WebhookServer, http: aiohttp.ClientSession, api: LocalBotApi):
        self.server = server
        self.http = http
        self.api = api

    async def say(self, text: str, chat_id: int = USER, **options: Any) -> str:
        update = self.api.message(text, chat_id=chat_id, **options)
        async with self.http.post(
            f"http://127.0.0.1:{self.server.port}/telegram",
            data=json.dumps(update),
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        ) as response:
            assert response.status == 200
        return plain((await self.api.reply_to(update)).text)


Running = tuple[BotApplication, MiniApp, Chat]
StartApp = Callable[..., AbstractAsyncContextManager[Running]]


@pytest.fixture
def start_app(start_bot: StartBot, bot_api: LocalBotApi, clock: FixedClock) -> StartApp:
    @asynccontextmanager
    async def start(**overrides: object) -> AsyncIterator[Running]:
        settings = {
            "webhook_url": "https://bot.example.org/telegram",
            "webhook_secret": SECRET,
            "webhook_port": 0,
            "requests_per_minute": 1000,
            **QUIET,
            **overrides,
        }
        async with start_bot(polling=False, **settings) as application:
            server = WebhookServer(application, application.bot_data.services.settings)
            await server.start()
            try:
                async with aiohttp.ClientSession() as http:
                    base = f"http://127.0.0.1:{server.port}"
                    yield application, MiniApp(base, http, clock), Chat(server, http, bot_api)
            finally:
                await server.stop()

    return start


@pytest.fixture
async def app(start_app: StartApp, database_url: str, clock: FixedClock) -> AsyncIterator[Running]:
    await load(database_url, EVENTS, clock.now())
    async with start_app() as running:
        yield running


# --- initData -------------------------------------------------------------------------


def _forgeries(app: MiniApp) -> dict[str, str]:
    now = app.clock.now()
    valid = app.init_data()
    user = json.dumps({"id": USER, "first_name": "Tester"})
    return {
        "expired": app.init_data(auth_date=now - dt.timedelta(days=1, seconds=1)),
        "from the future": app.init_data(auth_date=now + dt.timedelta(hours=1)),
        "tampered user": valid.replace(str(USER), str(USER + 1)),
        "tampered hash": valid[:-1] + ("0" if valid[-1] != "0" else "1"),
        "another bot's token": app.init_data(token="654321:ANOTHER-bot-token"),
        "no hash": "&".join(p for p in valid.split("&") if not p.startswith("hash=")),
        "no user": sign_init_data(TEST_TOKEN, user=None, auth_date=now),
        "no auth_date": _signed_without_auth_date(user),
        "a user without an id": sign_init_data(TEST_TOKEN, user={"first_name": "X"}, auth_date=now),
        "garbage": "%%%&&&===",
        "empty": "",
    }


def _signed_without_auth_date(user: str) -> str:
    # Signed correctly, but Telegram always sends auth_date.
    import hashlib
    import hmac
    from urllib.parse import urlencode

    fields = {"user": user}
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", TEST_TOKEN.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


async def test_signed_init_data_opens_the_session_of_the_users_private_chat(app: Running) -> None:
    _, mini_app, _ = app
    status, session = await mini_app.get("/app/api/session")
    assert status == 200, session
    assert session["chat"]["id"] == USER and session["chat"]["type"] == "private"
    assert session["chat"]["can_edit"] is True
    assert session["language"] == "en" and session["direction"] == "ltr"
    assert session["today"] == "2026-11-22"  # Asia/Almaty, the default zone
    assert session["strings"]["calendar"] == "Calendar"
    assert [lang["code"] for lang in session["languages"]] == ["en", "ru", "kk", "zh", "ar"]
    assert {d["value"] for d in session["digests"]} == {"off", "daily", "weekly"}
    assert {"minutes": 1440, "label": "1 day"} in session["lead_times"]
    assert {"key": "sco", "name": "Shanghai Cooperation Organisation", "abbreviation": "SCO"} in (
        session["organisations"]
    )
    assert {2024, 2026, 2027} <= set(session["years"])


@pytest.mark.parametrize(
    "forgery",
    [
        "expired",
        "from the future",
        "tampered user",
        "tampered hash",
        "another bot's token",
        "no hash",
        "no user",
        "no auth_date",
        "a user without an id",
        "garbage",
        "empty",
    ],
)
async def test_forged_expired_or_malformed_init_data_is_refused_and_changes_nothing(
    app: Running, database_url: str, forgery: str
) -> None:
    application, mini_app, chat = app
    forged = _forgeries(mini_app)[forgery]
    header = f"tma {forged}"
    read = await mini_app.get("/app/api/me", authorization=header)
    follow = await mini_app.post(
        "/app/api/follow", {"scope": "organisation", "key": "sco"}, authorization=header
    )
    settings = await mini_app.post("/app/api/settings", {"language": "ru"}, authorization=header)
    for status, body in (read, follow, settings):
        assert status == 401, body
        assert body["error"] == "unauthorized"
        assert body["message"] == ui_strings(translator("en"))["error_unauthorized"]
    # Nothing was stored, not even the chat; the chat itself still follows nothing.
    views = await chat_views(application.bot_data.services.database, [USER, USER + 1])
    assert views == {}
    assert "follows nothing" in await chat.say("/mysubs")


@pytest.mark.parametrize(
    "authorization", ["", "tma", "Bearer abc", "tma-x y", "TMA user=1&hash=00", "tma  \t "]
)
async def test_a_missing_or_garbled_authorization_header_is_401(
    app: Running, authorization: str
) -> None:
    _, mini_app, _ = app
    status, body = await mini_app.get("/app/api/session", authorization=authorization or " ")
    assert status == 401 and body["error"] == "unauthorized"


async def test_a_refusal_is_in_the_language_the_user_claims(app: Running) -> None:
    _, mini_app, _ = app
    stale = mini_app.init_data(language="ru", auth_date=mini_app.clock.now() - dt.timedelta(days=2))
    status, body = await mini_app.get("/app/api/session", init_data=stale)
    assert status == 401
    assert body["message"] == ui_strings(translator("ru"))["error_unauthorized"]


async def test_init_data_older_than_the_setting_is_refused(
    start_app: StartApp, clock: FixedClock
) -> None:
    async with start_app(webapp_auth_max_age_seconds=600) as (_, mini_app, _):
        fresh = mini_app.init_data(auth_date=clock.now() - dt.timedelta(seconds=599))
        stale = mini_app.init_data(auth_date=clock.now() - dt.timedelta(seconds=601))
        assert (await mini_app.get("/app/api/me", init_data=fresh))[0] == 200
        assert (await mini_app.get("/app/api/me", init_data=stale))[0] == 401


# --- reads ----------------------------------------------------------------------------


async def test_the_calendar_shows_each_event_at_its_own_precision(app: Running) -> None:
    _, mini_app, _ = app
    status, calendar = await mini_app.get("/app/api/calendar?year=2027")
    assert status == 200, calendar
    assert calendar["year"] == 2027
    events = {e["key"]: e for e in calendar["events"]}
    day, month, year = (
        events["app-day-summit"],
        events["app-month-forum"],
        events["app-year-meeting"],
    )
    assert (day["precision"], day["start"], day["end"]) == ("day", "2027-07-03", "2027-07-04")
    assert day["status"] == "confirmed" and day["status_label"] == "confirmed"
    assert day["organisation"] == "sco" and day["organisation_label"] == "SCO"
    assert day["place"] == "Astana, Kazakhstan"
    assert tight_ranges(day["when"]) == "3–4 Jul 2027"
    assert (month["precision"], month["start"], month["end"]) == (
        "month",
        "2027-10-01",
        "2027-10-31",
    )
    assert month["when"] == "October 2027"
    assert (year["precision"], year["start"], year["end"]) == ("year", "2027-01-01", "2027-12-31")
    assert year["when"] == "2027"
    # A recurring observance first held in 2024 appears at its 2027 occurrence.
    water = events["world-water-day"]
    assert (water["start"], water["precision"]) == ("2027-03-22", "day")
    starts = [e["start"] for e in calendar["events"]]
    assert starts == sorted(starts)
    assert not any(e["followed"] for e in calendar["events"])
    # A month, as the page asks: what touches it, and what is known only to the year.
    _, july = await mini_app.get("/app/api/calendar?year=2027&month=7")
    keys = {e["key"] for e in july["events"]}
    assert {"app-day-summit", "app-year-meeting"} <= keys
    assert "app-month-forum" not in keys and "world-water-day" not in keys
    _, october = await mini_app.get("/app/api/calendar?year=2027&month=10")
    assert "app-month-forum" in {e["key"] for e in october["events"]}
    assert "app-day-summit" not in {e["key"] for e in october["events"]}
    for month in ("13", "0", "x", "-1"):
        status, refused = await mini_app.get(f"/app/api/calendar?year=2027&month={month}")
        assert (status, refused["error"]) == (400, "bad_month"), month


async def test_a_planned_event_whose_dates_passed_shows_as_passed(app: Running) -> None:
    _, mini_app, _ = app
    status, calendar = await mini_app.get("/app/api/calendar?year=2026&org=sco")
    assert status == 200
    lapsed = next(e for e in calendar["events"] if e["key"] == "app-lapsed-talks")
    assert lapsed["status"] == "passed"
    assert lapsed["status_label"] == "dates passed — outcome not recorded"
    assert {e["organisation"] for e in calendar["events"]} == {"sco"}
    # An observance that comes every year is never "passed", as in chat.
    _, everything = await mini_app.get("/app/api/calendar?year=2026")
    water = next(e for e in everything["events"] if e["key"] == "world-water-day")
    assert (water["start"], water["status"]) == ("2026-03-22", "confirmed")
    assert water["standing"] is None


async def test_an_undated_event_whose_period_is_mostly_gone_says_so_in_the_list(
    app: Running,
) -> None:
    _, mini_app, _ = app
    mini_app.clock.set(dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC))
    _, calendar = await mini_app.get("/app/api/calendar?year=2026")
    bishkek = next(e for e in calendar["events"] if e["key"] == "sco-2026-bishkek")
    # Still "planned" by its status, but never shown as simply still to come.
    assert bishkek["status"] == "planned"
    assert bishkek["standing"] == (
        "expected in 2026, dates not announced; may already have taken place"
    )


@pytest.mark.parametrize(
    ("query", "code"),
    [("year=20x7", "bad_year"), ("year=99999", "bad_year"), ("org=nope", "unknown_organisation")],
)
async def test_a_bad_calendar_query_is_400_in_the_readers_language(
    app: Running, query: str, code: str
) -> None:
    _, mini_app, _ = app
    status, body = await mini_app.get(f"/app/api/calendar?{query}")
    assert status == 400 and body["error"] == code and body["message"]


async def test_an_event_card_has_its_sources_countdown_and_the_chats_subscription(
    app: Running,
) -> None:
    _, mini_app, _ = app
    status, card = await mini_app.get("/app/api/events/app-day-summit")
    assert status == 200, card
    assert card["title"] == "Day summit" and card["sources"] == ["https://example.org/day-summit"]
    assert card["countdown"] == "in 223 days"
    assert card["subscription_id"] is None and card["followed"] is False
    created = await mini_app.post("/app/api/follow", {"scope": "event", "key": "app-day-summit"})
    assert created[0] == 200
    _, card = await mini_app.get("/app/api/events/app-day-summit")
    assert card["followed"] is True
    assert card["subscription_id"] == created[1]["subscription"]["id"]
    _, lapsed = await mini_app.get("/app/api/events/app-lapsed-talks")
    assert lapsed["status"] == "passed" and lapsed["standing"] == (
        "dates passed — outcome not recorded"
    )
    status, missing = await mini_app.get("/app/api/events/no-such-event")
    assert status == 404 and missing["error"] == "unknown_event"


async def test_the_chairs_timeline_has_recorded_terms_and_labelled_projections(
    app: Running,
) -> None:
    _, mini_app, _ = app
    status, timeline = await mini_app.get("/app/api/chairs")
    assert status == 200, timeline
    assert (timeline["today"], timeline["from"], timeline["to"]) == (
        "2026-11-22",
        "2024-01-01",
        "2028-12-31",
    )
    bars = [bar for org in timeline["organisations"] for bar in org["chairs"]]
    recorded = [bar for bar in bars if not bar["projected"]]
    projected = [bar for bar in bars if bar["projected"]]
    assert recorded and projected
    assert all(bar["period"] and bar["country_name"] for bar in bars)
    assert all("projection" in bar["period"] and not bar["sources"] for bar in projected)
    assert sum(bar["current"] for bar in recorded) >= 3
    assert not any(bar["current"] for bar in projected)
    status, body = await mini_app.get("/app/api/chairs?from=2030&to=2020")
    assert status == 400 and body["error"] == "bad_period"


# --- the same chat, in the app and in chat ------------------------------------------------


async def test_following_in_the_app_shows_in_mysubs_and_unfollowing_there_too(
    app: Running,
) -> None:
    _, mini_app, chat = app
    status, followed = await mini_app.post(
        "/app/api/follow", {"scope": "organisation", "key": "sco"}
    )
    assert status == 200, followed
    assert followed["created"] is True
    assert followed["subscription"]["label"] == "SCO"
    assert followed["subscription"]["lead_times_label"] == "7 days, 1 day and 1 hour"
    again = await mini_app.post("/app/api/follow", {"scope": "organisation", "key": "sco"})
    assert again[1]["created"] is False
    assert "1. SCO — 7 days, 1 day and 1 hour" in await chat.say("/mysubs")
    removed = await mini_app.post(
        "/app/api/unfollow", {"subscription_id": followed["subscription"]["id"]}
    )
    assert removed == (200, {"removed": True})
    assert "follows nothing" in await chat.say("/mysubs")


async def test_a_follow_in_the_app_plans_the_reminders_a_subscribe_would(
    start_app: StartApp, database_url: str, clock: FixedClock, bot_api: LocalBotApi
) -> None:
    await load(database_url, TEST_EVENT, clock.now())
    async with start_app() as (application, mini_app, _):
        status, _body = await mini_app.post(
            "/app/api/follow", {"scope": "event", "key": "test-summit"}
        )
        assert status == 200
        clock.set(START - dt.timedelta(days=1) + dt.timedelta(seconds=5))
        await application.bot_data.services.dispatcher.sweep()
    reminders = [plain(c.text) for c in bot_api.sent_to(USER) if "⏰" in c.text]
    assert len(reminders) == 1 and "Test summit" in reminders[0]


async def test_another_chats_subscription_cannot_be_changed_by_its_id(app: Running) -> None:
    _, mini_app, chat = app
    _, followed = await mini_app.post("/app/api/follow", {"scope": "all"})
    theirs = followed["subscription"]["id"]
    intruder = USER + 50
    removed = await mini_app.post(
        "/app/api/unfollow", {"subscription_id": theirs}, user_id=intruder
    )
    assert removed == (200, {"removed": False})
    status, _ = await mini_app.post(
        f"/app/api/subscriptions/{theirs}/lead_times", {"lead_times": [60]}, user_id=intruder
    )
    assert status == 404
    for bad in ({"subscription_id": "1"}, {"subscription_id": True}, {"subscription_id": -3}):
        assert (await mini_app.post("/app/api/unfollow", bad))[0] == 400
    assert "all summits and meetings — 7 days, 1 day and 1 hour" in await chat.say("/mysubs")


async def test_subscribing_in_chat_shows_in_the_app(app: Running) -> None:
    _, mini_app, chat = app
    assert "You now follow" in await chat.say("/subscribe app-day-summit")
    status, me = await mini_app.get("/app/api/me")
    assert status == 200
    [subscription] = me["subscriptions"]
    assert (subscription["scope"], subscription["key"]) == ("event", "app-day-summit")
    assert subscription["label"] == "Day summit"
    status, calendar = await mini_app.get("/app/api/calendar?year=2027")
    followed = {e["key"] for e in calendar["events"] if e["followed"]}
    assert followed == {"app-day-summit"}


async def test_a_subscriptions_lead_times_set_in_the_app_show_in_chat(app: Running) -> None:
    _, mini_app, chat = app
    _, followed = await mini_app.post("/app/api/follow", {"scope": "all", "key": None})
    subscription_id = followed["subscription"]["id"]
    status, changed = await mini_app.post(
        f"/app/api/subscriptions/{subscription_id}/lead_times", {"lead_times": [180, 10080]}
    )
    assert status == 200, changed
    assert changed["subscription"]["lead_times"] == [10080, 180]
    assert "all summits and meetings — 7 days and 3 hours" in await chat.say("/mysubs")
    for body, code in (
        ({"lead_times": []}, "bad_lead_times"),
        ({"lead_times": [7]}, "bad_lead_times"),
        ({"lead_times": [True]}, "bad_lead_times"),
        ({"lead_times": "60"}, "bad_lead_times"),
        ({"minutes": [60]}, "bad_request"),
    ):
        status, refused = await mini_app.post(
            f"/app/api/subscriptions/{subscription_id}/lead_times", body
        )
        assert (status, refused["error"]) == (400, code), body
    status, missing = await mini_app.post(
        "/app/api/subscriptions/999999/lead_times", {"lead_times": [60]}
    )
    assert status == 404 and missing["error"] == "unknown_subscription"
    assert "7 days and 3 hours" in await chat.say("/mysubs")


async def test_settings_saved_in_the_app_are_the_chats_settings(
    app: Running, database_url: str
) -> None:
    _, mini_app, chat = app
    assert (await mini_app.post("/app/api/follow", {"scope": "all"}))[0] == 200
    status, saved = await mini_app.post(
        "/app/api/settings",
        {"language": "ru", "timezone": "Berlin", "digest": "weekly", "lead_times": [1440]},
    )
    assert status == 200, saved
    assert saved["chat"]["language"] == "ru"
    assert saved["chat"]["timezone"] == "Europe/Berlin"
    assert saved["chat"]["timezone_label"] == "Berlin (UTC+01:00)"
    assert (saved["chat"]["digest"], saved["chat"]["lead_times"]) == ("weekly", [1440])
    reply = await chat.say("/tz", language_code="en")
    assert "Europe/Berlin" in reply and "Часовой пояс" in reply
    assert "1 день" in await chat.say("/mysubs", language_code="en")
    _, session = await mini_app.get("/app/api/session")
    assert session["language"] == "ru"
    assert {"minutes": 1440, "label": "1 день"} in session["lead_times"]
    # And the other way round: /lang in chat is the app's language.
    await chat.say("/lang ar")
    _, session = await mini_app.get("/app/api/session")
    assert (session["language"], session["direction"]) == ("ar", "rtl")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"language": "xx"}, "unknown_language"),
        ({"timezone": "Atlantis Prime"}, "unknown_timezone"),
        ({"timezone": 5}, "unknown_timezone"),
        ({"digest": "hourly"}, "unknown_digest"),
        ({"lead_times": [1440, 13]}, "bad_lead_times"),
        ({"colour": "red"}, "bad_request"),
        ([1, 2], "bad_request"),
    ],
)
async def test_a_bad_setting_is_400_and_saves_nothing_of_the_request(
    app: Running, body: Any, code: str
) -> None:
    _, mini_app, _chat = app
    # A good value beside the bad one is not saved either.
    if isinstance(body, dict) and "language" not in body:
        body = {"language": "kk", **body}
    status, refused = await mini_app.post("/app/api/settings", body)
    assert (status, refused["error"]) == (400, code)
    assert refused["message"]
    _, session = await mini_app.get("/app/api/session")
    assert session["chat"]["language"] == "en"
    assert session["chat"]["timezone"] == "Asia/Almaty"
    assert session["chat"]["digest"] == "off"


async def test_bodies_that_are_too_large_or_not_json_are_refused(app: Running) -> None:
    _, mini_app, _ = app
    big = json.dumps({"scope": "all", "key": None, "x": "y" * 20_000}).encode()
    status, body = await mini_app.call("POST", "/app/api/follow", raw=big)
    assert status == 413 and body["error"] == "too_large"
    status, body = await mini_app.call("POST", "/app/api/follow", raw=b"{not json")
    assert status == 400 and body["error"] == "bad_request"
    for method, path in (("GET", "/app/api/nothing"), ("GET", "/app/api/follow")):
        status, body = await mini_app.call(method, path)
        assert (status, body["error"]) == (404, "not_found"), path
    for bad in (
        {"scope": "planet"},
        {"scope": "all", "key": "sco"},
        {"scope": "event", "key": ""},
        {"scope": "event"},
    ):
        status, body = await mini_app.post("/app/api/follow", bad)
        assert status == 400, bad
    status, body = await mini_app.post("/app/api/follow", {"scope": "event", "key": "no-such"})
    assert (status, body["error"]) == (400, "unknown_target")
    _, me = await mini_app.get("/app/api/me")
    assert me["subscriptions"] == []


async def test_the_flood_limit_of_chat_holds_in_the_app(start_app: StartApp) -> None:
    async with start_app(requests_per_minute=3) as (_, mini_app, _):
        statuses = [(await mini_app.get("/app/api/me"))[0] for _ in range(4)]
        other = await mini_app.get("/app/api/me", user_id=USER + 7)
    assert statuses == [200, 200, 200, 429]
    assert other[0] == 200


async def test_while_the_database_is_away_the_app_is_told_so_in_json(
    app: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    application, mini_app, _ = app

    async def unreachable(*_: object) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(application.bot_data.services.subscriptions, "of_chat", unreachable)
    status, body = await mini_app.get("/app/api/me")
    assert (status, body["error"]) == (503, "unavailable")
    assert body["message"] == "The bot is temporarily unavailable. Please try again in a minute."


# --- groups -----------------------------------------------------------------------------


async def test_in_a_group_members_read_admins_write_others_are_refused(
    app: Running, bot_api: LocalBotApi
) -> None:
    _, mini_app, chat = app
    bot_api.emulator.admins[GROUP] = {ADMIN}
    await chat.say("/help", chat_id=GROUP, user_id=ADMIN, chat_type="supergroup", title="Summits")
    status, session = await mini_app.get(f"/app/api/session?chat={GROUP}", user_id=MEMBER)
    assert status == 200, session
    assert session["chat"]["title"] == "Summits" and session["chat"]["can_edit"] is False
    follow = {"scope": "organisation", "key": "sco"}
    status, refused = await mini_app.post(f"/app/api/follow?chat={GROUP}", follow, user_id=MEMBER)
    assert (status, refused["error"]) == (403, "forbidden")
    assert "admins" in refused["message"]
    status, _ = await mini_app.post(
        f"/app/api/settings?chat={GROUP}", {"language": "ru"}, user_id=MEMBER
    )
    assert status == 403
    status, followed = await mini_app.post(f"/app/api/follow?chat={GROUP}", follow, user_id=ADMIN)
    assert status == 200, followed
    reply = await chat.say("/mysubs", chat_id=GROUP, user_id=MEMBER, chat_type="supergroup")
    assert "1. SCO" in reply
    # The t.me link's start_param names the group when the page gives no ?chat=.
    linked = mini_app.init_data(ADMIN, start_param=f"c{GROUP}")
    _, me = await mini_app.get("/app/api/me", init_data=linked)
    assert me["chat"]["id"] == GROUP and me["chat"]["can_edit"] is True
    # Any other start_param is not about a chat: the private chat opens.
    other = mini_app.init_data(ADMIN, start_param="calendar")
    _, me = await mini_app.get("/app/api/me", init_data=other)
    assert me["chat"]["id"] == ADMIN
    # Someone Telegram does not know there, and another person's private chat.
    bot_api.fail("getChatMember", 400, "Bad Request: PARTICIPANT_ID_INVALID")
    status, refused = await mini_app.get(f"/app/api/me?chat={GROUP}", user_id=6999)
    assert status == 403
    status, _ = await mini_app.get(f"/app/api/me?chat={MEMBER}", user_id=USER)
    assert status == 403
    status, _ = await mini_app.get("/app/api/me?chat=12abc", user_id=USER)
    assert status == 400


async def test_a_group_the_bot_has_not_stored_yet_is_stored_as_on_first_contact(
    app: Running, bot_api: LocalBotApi
) -> None:
    application, mini_app, _ = app
    bot_api.emulator.register_chat({"id": GROUP, "type": "supergroup", "title": "New group"})
    status, session = await mini_app.get(f"/app/api/session?chat={GROUP}", user_id=MEMBER)
    assert status == 200, session
    stored = await chat_views(application.bot_data.services.database, [GROUP])
    assert stored[GROUP].title == "New group" and stored[GROUP].language == "en"


async def test_a_channel_is_changed_from_the_app_only_once_linked_as_in_chat(
    app: Running, bot_api: LocalBotApi
) -> None:
    application, mini_app, _ = app
    channel = -100_700_009
    bot_api.emulator.register_chat({"id": channel, "type": "channel", "title": "Summit news"})
    bot_api.emulator.admins[channel] = {ADMIN}
    follow = {"scope": "organisation", "key": "sco"}
    status, session = await mini_app.get(f"/app/api/session?chat={channel}", user_id=ADMIN)
    assert status == 200 and session["chat"]["can_edit"] is False
    status, refused = await mini_app.post(f"/app/api/follow?chat={channel}", follow, user_id=ADMIN)
    assert (status, refused["error"]) == (403, "forbidden")
    assert refused["message"] == "Link the channel first: /channels in a private chat with me."
    database = application.bot_data.services.database
    async with database.transaction() as session_:
        await link_channel(
            session_, channel, "Summit news", ADMIN, "en", "UTC", mini_app.clock.now()
        )
    status, followed = await mini_app.post(f"/app/api/follow?chat={channel}", follow, user_id=ADMIN)
    assert status == 200, followed
    _, me = await mini_app.get(f"/app/api/me?chat={channel}", user_id=ADMIN)
    assert me["chat"]["can_edit"] is True
    assert [item["key"] for item in me["subscriptions"]] == ["sco"]


# --- the page and its files ---------------------------------------------------------------


async def test_the_page_and_its_files_are_served_with_types_and_etags(app: Running) -> None:
    _, mini_app, _ = app
    http, base = mini_app.http, mini_app.base
    async with http.get(base + "/app/") as page:
        assert page.status == 200 and page.content_type == "text/html"
        assert "telegram-web-app.js" in await page.text()
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    async with http.get(base + "/app") as redirected:
        assert redirected.status == 200 and str(redirected.url).endswith("/app/")
    async with http.get(base + "/app/static/app.js") as script:
        assert script.status == 200 and script.content_type == "text/javascript"
        etag = script.headers["ETag"]
    async with http.get(base + "/app/static/app.js", headers={"If-None-Match": etag}) as again:
        assert again.status == 304
    async with http.get(base + "/app/static/app.css") as style:
        assert style.content_type == "text/css"
    for path in (
        "/app/static/..%2Fapi.py",
        "/app/static/../api.py",
        "/app/static/.hidden",
        "/app/static/nothing.js",
        "/app/static/%2e%2e%2finit_data.py",
    ):
        async with http.get(base + path) as refused:
            assert refused.status == 404, path


async def test_summitbot_webapp_serves_the_app_alone_against_the_bots_database(
    bot_api: LocalBotApi, database_url: str, clock: FixedClock
) -> None:
    settings = make_settings(database_url, bot_api.base_url, webapp_port=0)
    server = WebAppServer(settings, build_services(settings, clock))
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            mini_app = MiniApp(f"http://127.0.0.1:{server.port}", http, clock)
            status, followed = await mini_app.post("/app/api/follow", {"scope": "all"})
            assert status == 200, followed
            status, me = await mini_app.get("/app/api/me")
    finally:
        await server.stop()
    assert [s["scope"] for s in me["subscriptions"]] == ["all"]
    # It takes no updates and sends nothing.
    assert not [c for c in bot_api.calls if c.method in ("getUpdates", "sendMessage")]


# --- the way in from chat -------------------------------------------------------------------


async def test_the_menu_button_opens_the_app_and_cards_carry_open_calendar(
    app: Running, bot_api: LocalBotApi
) -> None:
    _, _, chat = app
    [menu] = [c for c in bot_api.calls if c.method == "setChatMenuButton"]
    button = menu.parameters["menu_button"]
    assert button["type"] == "web_app"
    assert button["web_app"] == {"url": "https://bot.example.org/app/"}
    assert "chat_id" not in menu.parameters  # every private chat's default
    for command in ("/upcoming", "/chairs", "/event app-day-summit", "/next sco"):
        await chat.say(command)
        sent = bot_api.sent_to(USER)[-1]
        opened = sent.button("Open calendar")
        assert opened["web_app"] == {"url": "https://bot.example.org/app/"}, command


async def test_in_a_group_open_calendar_is_a_t_me_link_and_only_with_a_short_name(
    start_app: StartApp, database_url: str, clock: FixedClock, bot_api: LocalBotApi
) -> None:
    await load(database_url, EVENTS, clock.now())
    async with start_app(webapp_short_name="calendar") as (_, _, chat):
        await chat.say("/upcoming", chat_id=GROUP, user_id=MEMBER, chat_type="supergroup")
        linked = bot_api.sent_to(GROUP)[-1].button("Open calendar")
        await chat.say("/chairs", chat_id=GROUP, user_id=MEMBER, chat_type="supergroup")
        chairs = bot_api.sent_to(GROUP)[-1].button("Open calendar")
    assert linked == {
        "text": "🗓 Open calendar",
        "url": f"https://t.me/summit_test_bot/calendar?startapp=c{GROUP}",
    }
    assert chairs == linked
    async with start_app() as (_, _, chat):
        await chat.say("/upcoming", chat_id=GROUP, user_id=MEMBER, chat_type="supergroup")
        assert not [b for b in bot_api.sent_to(GROUP)[-1].buttons if "Open calendar" in b["text"]]


async def test_without_an_app_address_there_is_no_button_and_no_menu_button(
    start_bot: StartBot, bot_api: LocalBotApi
) -> None:
    async with start_bot(polling=True, **QUIET):
        update = bot_api.message("/upcoming", chat_id=USER)
        reply = await bot_api.reply_to(update)
    assert not [b for b in reply.buttons if "Open calendar" in b["text"]]
    assert not [c for c in bot_api.calls if c.method == "setChatMenuButton"]


async def test_a_failing_menu_button_does_not_stop_the_bot(
    start_bot: StartBot, bot_api: LocalBotApi
) -> None:
    bot_api.fail("setChatMenuButton", 400, "Bad Request: BUTTON_URL_INVALID")
    async with start_bot(polling=True, webapp_url="https://calendar.example.org/app/", **QUIET):
        update = bot_api.message("/upcoming", chat_id=USER)
        reply = await bot_api.reply_to(update)
    assert reply.button("Open calendar")["web_app"] == {"url": "https://calendar.example.org/app/"}


# --- settings and the command ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("webapp_url", "ftp://x.example/app/", "WEBAPP_URL"),
        ("webapp_url", "https://x.example/app/ with space", "WEBAPP_URL"),
        ("webapp_short_name", "ab", "WEBAPP_SHORT_NAME"),
        ("webapp_short_name", "no spaces", "WEBAPP_SHORT_NAME"),
        ("webapp_auth_max_age_seconds", 5, "greater than or equal to 60"),
    ],
)
def test_invalid_mini_app_settings_are_refused(setting: str, value: object, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        Settings(_env_file=None, **{setting: value})  # type: ignore[arg-type]


def test_the_app_address_is_the_setting_or_the_webhooks_origin() -> None:
    def url(**values: object) -> str | None:
        return webapp_url(Settings(_env_file=None, **values))  # type: ignore[arg-type]

    assert url() is None
    assert url(webhook_url="https://bot.example.org:8443/telegram") == (
        "https://bot.example.org:8443/app/"
    )
    assert url(webhook_url="https://a.example/t", webapp_url="https://b.example/cal/") == (
        "https://b.example/cal/"
    )


def test_summitbot_webapp_needs_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the working directory
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    assert main(["webapp"]) == 2
    assert "BOT_TOKEN is not set" in capsys.readouterr().err
