"""The operator review queue: what needs a person, most urgent first (with a fixed clock),
and /review end to end: one-tap actions through the preview → Save path, refusals, and
the weekly notice sent once through the ledger."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.handlers.operators.pending import PendingOperation
from bot.presentation import callbacks, render
from bot.presentation.i18n import translator
from storage.database import Database
from storage.datafile import ChairmanshipRow, EventRow, OrganisationRow
from storage.dates import PartialDate
from storage.models import (
    Chairmanship,
    Confidence,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Event,
    EventStatus,
    Organisation,
)
from storage.review import ReviewKind, ReviewQueue, build_queue
from storage.rotation import RotationKind, RotationRule, chairs_between
from storage.views import ChairView, EventView, OrganisationRef
from tests.botapi import ApiCall, LocalBotApi
from tests.conftest import NOW, OPERATOR_ID, StartBot
from tests.factories import QUIET, load, make_event, plain

UTC = dt.UTC
RECENTLY = dt.date(2026, 11, 1)
ORG = OrganisationRef("testorg", {"en": "Test Organisation"}, {"en": "TO"})
RULE = RotationRule(RotationKind.CALENDAR_YEAR, order=("KZ", "KG", "TJ"))


def at(day: str, hour: int = 9) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def checked(event: EventView, day: dt.date | None = RECENTLY, **values: object) -> EventView:
    return dataclasses.replace(event, checked=day, **values)  # type: ignore[arg-type]


def chair(country: str, start: str, day: dt.date | None = RECENTLY) -> ChairView:
    return ChairView(ORG, country, PartialDate.parse(start), None, {}, {}, Confidence.HIGH, (), day)


def queue_of(
    now: dt.datetime,
    events: list[EventView] = (),  # type: ignore[assignment]
    chairs: list[ChairView] = (),  # type: ignore[assignment]
    organisations: list[tuple[OrganisationRef, dt.date | None]] = (),  # type: ignore[assignment]
) -> ReviewQueue:
    today = now.date()
    groups = [chairs_between(ORG, chairs, RULE, [], today, today)] if chairs else []
    return build_queue(now, events, chairs, organisations, groups)


def kinds(queue: ReviewQueue) -> list[tuple[ReviewKind, str]]:
    return [(item.kind, item.key) for item in queue.items]


# --- the queue, with a fixed clock -------------------------------------------------------


def test_an_event_enters_the_queue_the_day_after_its_dates_with_no_outcome() -> None:
    # A day in Berlin: over at midnight there (23:00 UTC).
    summit = checked(make_event("2026-11-20", key="berlin-talks"))
    assert kinds(queue_of(at("2026-11-20", 12), [summit])) == []
    assert kinds(queue_of(at("2026-11-20", 22), [summit])) == []
    assert kinds(queue_of(at("2026-11-20", 23), [summit])) == [
        (ReviewKind.LAPSED, "event:berlin-talks")
    ]
    # Held: an outcome is recorded, and settled history is never re-checked.
    held = checked(summit, None, status=EventStatus.HELD)
    assert kinds(queue_of(at("2027-06-01"), [held])) == []


def test_a_calendar_year_chair_ends_on_1_january_and_the_rule_names_the_successor() -> None:
    kazakhstan = chair("KZ", "2026-01-01")
    assert kinds(queue_of(at("2026-12-31", 23), chairs=[kazakhstan])) == []
    queue = queue_of(at("2027-01-01", 0), chairs=[kazakhstan])
    assert kinds(queue) == [(ReviewKind.TERM_ENDED, "chair:testorg:KZ:2026-01-01")]
    item = queue.items[0]
    assert item.ended is not None and item.ended.last_day == dt.date(2026, 12, 31)
    assert item.successor is not None and item.successor.country == "KG"
    assert item.successor_start == PartialDate.parse("2027-01-01")
    # Once the successor is recorded, nothing is left to do.
    kyrgyzstan = chair("KG", "2027-01-01")
    assert kinds(queue_of(at("2027-01-01", 0), chairs=[kazakhstan, kyrgyzstan])) == []


def test_a_fact_not_checked_for_more_than_90_days_needs_checking() -> None:
    coming = checked(make_event("2027-05-10", key="coming"), dt.date(2026, 8, 24))
    current = chair("KZ", "2026-01-01", dt.date(2026, 8, 24))
    org = (ORG, dt.date(2026, 8, 24))
    day_90 = queue_of(at("2026-11-22"), [coming], [current], [org])
    assert kinds(day_90) == []
    day_91 = queue_of(at("2026-11-23"), [coming], [current], [org])
    assert kinds(day_91) == [
        (ReviewKind.UNCHECKED, "event:coming"),
        (ReviewKind.UNCHECKED, "chair:testorg:KZ:2026-01-01"),
        (ReviewKind.UNCHECKED, "organisation:testorg"),
    ]
    # A fact never checked needs it at once; a term long over with a successor does not.
    past = chair("TJ", "2024-01-01", None)
    never = queue_of(at("2026-11-22"), [checked(coming, None)], [past, current], [(ORG, None)])
    assert kinds(never) == [
        (ReviewKind.UNCHECKED, "event:coming"),
        (ReviewKind.UNCHECKED, "organisation:testorg"),
    ]
    assert [item.reason for item in never.items] == ["never checked", "never checked"]


def test_the_most_urgent_come_first_and_each_fact_once_with_its_other_reasons() -> None:
    now = at("2026-11-22")
    older = checked(make_event("2026-10-01", key="older-lapsed"))
    newer = checked(make_event("2026-11-01", key="newer-lapsed"))
    undated = checked(make_event("2026", key="undated-2026"))
    weak = checked(
        make_event("2027-03-01", key="weak", sources=("blog",)), confidence=Confidence.LOW
    )
    weak_and_stale = checked(weak, None, key="weak-stale")
    well_sourced = checked(weak, key="two-sources", sources=("a", "b"))
    ended = chair("KZ", "2025-01-01")
    queue = queue_of(
        now,
        [weak, newer, undated, older, weak_and_stale, well_sourced],
        [ended],
        [(ORG, dt.date(2026, 1, 5))],
    )
    assert kinds(queue) == [
        (ReviewKind.LAPSED, "event:older-lapsed"),
        (ReviewKind.LAPSED, "event:newer-lapsed"),
        (ReviewKind.TERM_ENDED, "chair:testorg:KZ:2025-01-01"),
        (ReviewKind.UNDATED, "event:undated-2026"),
        (ReviewKind.UNCHECKED, "event:weak-stale"),
        (ReviewKind.UNCHECKED, "organisation:testorg"),
        (ReviewKind.WEAKLY_SOURCED, "event:weak"),
    ]
    stale = queue.find("event:weak-stale")
    assert stale is not None and stale.also == (ReviewKind.WEAKLY_SOURCED,)
    assert queue.find("event:weak-stale", ReviewKind.WEAKLY_SOURCED) is stale
    assert queue.find("event:weak", ReviewKind.LAPSED) is None


def test_review_buttons_are_short_and_forged_ones_are_refused() -> None:
    longest = "chair:" + "o" * 32 + ":KZ:2026-10-12T10:00"
    data = callbacks.review_action(callbacks.ReviewVerb.SUCCESSOR, longest)
    assert len(data.encode()) <= callbacks.MAX_CALLBACK_BYTES
    assert callbacks.parse(data) == callbacks.ReviewAction(callbacks.ReviewVerb.SUCCESSOR, longest)
    event = callbacks.review_action(callbacks.ReviewVerb.HELD, "event:sco-2026-bishkek")
    assert callbacks.parse(event) == callbacks.ReviewAction(
        callbacks.ReviewVerb.HELD, "event:sco-2026-bishkek"
    )
    for forged in (
        "rv:h:o:sco",  # only events are held
        "rv:s:e:sco-2026",  # only chairs have successors
        "rv:c:c:sco:KZ:2026-13-01",  # no such date
        "rv:c:c:sco:KZ:2026-1-1",  # not as a data file writes it
        "rv:c:c:sco:kz:2026",
        "rv:x:e:sco-2026",
        "rv:p:99999",
        "rv:h:e:" + "a" * 41,
    ):
        with pytest.raises(callbacks.ExpiredButton):
            callbacks.parse(forged)


def test_a_pending_operation_keeps_a_chairmanship_or_an_organisation_through_json() -> None:
    successor = ChairmanshipRow(
        organisation="cis", country="UZ", start="2027-01-01", confidence="L", checked="2027-01-02"
    )
    org = OrganisationRow(
        key="cis",
        names={"en": "CIS"},
        founded="1991-12-08",
        rotation_rule={"kind": "calendar_year", "order": ["TM", "UZ"]},
        checked="2026-12-06",
    )
    event = EventRow(id="x-2026", title="X", start="2026-05", checked="2026-12-06")
    for row, before in ((successor, None), (org, org), (event, event)):
        operation = PendingOperation(row, before, "<b>preview</b>")
        assert PendingOperation.from_json(operation.to_json()) == operation
    # One stored before chairmanships could wait, without its section, is an event's.
    stored = PendingOperation(event, None, "p").to_json()
    del stored["section"]
    assert PendingOperation.from_json(stored).row == event


# --- /review end to end --------------------------------------------------------------------

OPERATOR = OPERATOR_ID
READER = 5001
# An event far in the past with no outcome (first in the queue), and an organisation whose
# calendar-year chair ended in 2025 with nobody recorded after it.
REVIEW_DATA = """
organisations:
  - key: testorg
    names: {en: Test Organisation}
    abbreviations: {en: TO}
    rotation_rule: {kind: calendar_year, order: [KZ, KG, TJ]}
chairmanships:
  - organisation: testorg
    country: KZ
    start: 2025-01-01
    checked: 2026-11-01
events:
  - id: review-summit
    organisation: sco
    title: Review summit
    place: astana
    start: 2020-03-10
    status: planned
    sources: [a, b]
    checked: 2026-11-01
"""


@pytest.fixture
async def with_review_data(database_url: str, clock: FixedClock) -> None:
    await load(database_url, REVIEW_DATA, clock.now())


async def say(bot_api: LocalBotApi, text: str, expect: str, *, user_id: int = OPERATOR) -> ApiCall:
    update = bot_api.message(text, chat_id=user_id)
    start = bot_api._index_at_push[update["update_id"]]
    return await bot_api.wait_for(
        lambda c: c.method == "sendMessage" and c.chat_id == user_id and expect in plain(c.text),
        after=start,
    )


async def tap(
    bot_api: LocalBotApi, shown: ApiCall, data: str, expect: str | None = None, **kwargs: int
) -> ApiCall:
    """Press a button (by its data) under ``shown``: the message it brings, or its alert."""
    update = bot_api.press(shown, data, **kwargs)
    if expect is None:
        return await bot_api.reply_to(update, method="answerCallbackQuery")
    start = bot_api._index_at_push[update["update_id"]]
    return await bot_api.wait_for(
        lambda c: c.method in ("sendMessage", "editMessageText") and expect in plain(c.text),
        after=start,
    )


async def page_with(bot_api: LocalBotApi, shown: ApiCall, needle: str) -> ApiCall:
    """The page of the queue (turned with ▶ from ``shown``) that shows ``needle``."""
    while needle not in plain(shown.text):
        forward = callbacks.review_page(int(plain(shown.text).split("Page ")[1].split()[0]))
        assert forward in [b["callback_data"] for b in shown.buttons], f"no {needle!r}"
        before = len(bot_api.calls)
        bot_api.press(shown, forward)
        shown = await bot_api.wait_for(lambda c: c.method == "editMessageText", after=before)
    return shown


async def save(bot_api: LocalBotApi, preview: ApiCall) -> str:
    before = len(bot_api.calls)
    bot_api.press(preview, preview.button("Save")["callback_data"])
    saved = await bot_api.wait_for(lambda c: c.method == "editMessageText", after=before)
    return plain(saved.text)


async def read(database_url: str, statement: object) -> list[object]:
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            return list((await session.scalars(statement)).all())  # type: ignore[call-overload]
    finally:
        await database.dispose()


@pytest.mark.usefixtures("with_review_data")
async def test_an_operator_marks_a_lapsed_event_held_and_it_leaves_the_queue(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    async with start_bot(**QUIET):
        shown = await say(bot_api, "/review", "Review queue")
        text = plain(shown.text)
        assert "1. ⚠️ dates passed — outcome not recorded" in text
        assert "Review summit" in text and "/event review-summit" in text
        held = callbacks.review_action(callbacks.ReviewVerb.HELD, "event:review-summit")
        assert held in [b["callback_data"] for b in shown.buttons]

        preview = await tap(bot_api, shown, held, "Check the change")
        assert "Status: planned → held" in plain(preview.text)
        assert await save(bot_api, preview) == plain(preview.text) + "\n\n✅ Saved."

        again = plain((await say(bot_api, "/review", "Review queue")).text)
        assert "review-summit" not in again
        # The button under the old list finds the item gone.
        alert = await tap(bot_api, shown, held)
        assert alert.parameters["text"] == "This is no longer in the review queue."
    statuses = await read(database_url, select(Event.status).where(Event.key == "review-summit"))
    assert statuses == [EventStatus.HELD]


@pytest.mark.usefixtures("with_review_data")
async def test_an_operator_sets_the_successor_and_marks_an_organisation_checked(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    async with start_bot(**QUIET):
        first = await say(bot_api, "/review", "Review queue")
        shown = await page_with(bot_api, first, "Kazakhstan's term ended on 31 December 2025")
        assert "By rotation expected: Kyrgyzstan for 2026 (a projection" in plain(shown.text)
        successor = callbacks.review_action(
            callbacks.ReviewVerb.SUCCESSOR, "chair:testorg:KZ:2025-01-01"
        )
        assert shown.button("👤 Kyrgyzstan")["callback_data"] == successor
        preview = await tap(bot_api, shown, successor, "New chairmanship")
        assert "TO · Kyrgyzstan: since 1 January 2026" in plain(preview.text)
        assert (await save(bot_api, preview)).endswith("✅ Saved.")

        # The organisation was never checked: it waits further down the queue.
        checked_today = callbacks.review_action(
            callbacks.ReviewVerb.CHECKED, "organisation:testorg"
        )
        alert = await tap(bot_api, shown, checked_today)  # (the old list's button is fine)
        preview = await bot_api.wait_for(
            lambda c: c.method == "sendMessage" and "Checked: never →" in plain(c.text)
        )
        assert alert.parameters.get("text") is None
        assert "Checked: never → 22 November 2026" in plain(preview.text)
        assert (await save(bot_api, preview)).endswith("✅ Saved.")

        postpone = callbacks.review_action(callbacks.ReviewVerb.DATES, "event:review-summit")
        hint = await tap(bot_api, shown, postpone, "/postpone")
        assert "/postpone review-summit DATE" in plain(hint.text)

        again = plain((await say(bot_api, "/review", "Review queue")).text)
        assert "Kazakhstan's term ended" not in again
    chairs = await read(
        database_url,
        select(Chairmanship)
        .join(Organisation)
        .where(Organisation.key == "testorg")
        .order_by(Chairmanship.start_literal),
    )
    assert [(c.country, c.start_literal, c.confidence) for c in chairs] == [  # type: ignore[attr-defined]
        ("KZ", "2025-01-01", Confidence.MEDIUM),
        ("KG", "2026-01-01", Confidence.LOW),
    ]
    checked_on = await read(
        database_url, select(Organisation.checked_on).where(Organisation.key == "testorg")
    )
    assert checked_on == [dt.date(2026, 11, 22)]


@pytest.mark.usefixtures("with_review_data")
async def test_a_non_operator_and_a_forged_button_are_refused(
    bot_api: LocalBotApi, start_bot: StartBot, database_url: str
) -> None:
    held = callbacks.review_action(callbacks.ReviewVerb.HELD, "event:review-summit")
    async with start_bot(**QUIET):
        refused = await say(bot_api, "/review", "operators", user_id=READER)
        assert plain(refused.text) == "Only operators can do that."
        mine = await say(bot_api, "/start", "Summit", user_id=READER)
        alert = await tap(bot_api, mine, held, user_id=READER)
        assert alert.parameters["text"] == "Only operators can do that."

        shown = await say(bot_api, "/review", "Review queue")
        alert = await tap(bot_api, shown, "rv:h:e:no-such-event")
        assert alert.parameters["text"] == "This is no longer in the review queue."
        alert = await tap(bot_api, shown, "rv:h:o:testorg")
        assert alert.parameters["text"] == "This button has expired."
    statuses = await read(database_url, select(Event.status).where(Event.key == "review-summit"))
    assert statuses == [EventStatus.PLANNED]


def test_an_empty_queue_says_nothing_needs_a_person() -> None:
    # (Any bot started loads the bundled dataset, whose queue is rarely empty.)
    reply = render.review_page(ReviewQueue(NOW, ()), 0, translator("en"))
    assert plain(reply.text) == "🔎 Review queue\nNothing in the data needs a person right now."
    assert reply.keyboard is None


@pytest.mark.usefixtures("with_review_data")
async def test_operators_get_the_weekly_notice_once_and_stats_and_metrics_count_the_queue(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock, database_url: str
) -> None:
    # 778 is an operator who never wrote to the bot: there is no chat to send to.
    async with start_bot(operator_ids=[OPERATOR, 778], **QUIET) as app:
        await say(bot_api, "/start", "Summit")
        dispatcher = app.bot_data.services.dispatcher
        await dispatcher.sweep()
        assert not [c for c in bot_api.sent_to(OPERATOR) if "Weekly review" in c.text]
        # Monday 23 November, 09:00 in Almaty (the operator's zone) is 04:00 UTC.
        monday = dt.datetime(2026, 11, 23, 4, 0, 1, tzinfo=UTC)
        for moment in (monday, monday, monday + dt.timedelta(hours=8)):
            clock.set(moment)
            await dispatcher.sweep()
        notices = [plain(c.text) for c in bot_api.sent_to(OPERATOR) if "Weekly review" in c.text]
        assert len(notices) == 1
        assert "events whose dates passed with no outcome recorded" in notices[0]
        assert "whose term ended with no successor recorded" in notices[0]
        assert "1. ⚠️ dates passed — outcome not recorded" in notices[0]
        assert "Review summit" in notices[0]  # the oldest, first

        stats = plain((await say(bot_api, "/stats", "Statistics")).text)
        line = next(line for line in stats.split("\n") if "need a person: /review" in line)
        items = int(line.split()[0])
        assert items >= 2  # the lapsed event and the ended term, at least
        metrics = app.bot_data.services.metrics.exposition().decode()
        assert f"summitbot_review_queue_items {float(items)}" in metrics
    rows = await read(
        database_url, select(Delivery).where(Delivery.kind == DeliveryKind.REVIEW_NOTICE)
    )
    assert [(row.chat_id, row.status, row.slot) for row in rows] == [  # type: ignore[attr-defined]
        (OPERATOR, DeliveryStatus.SENT, 0)
    ]
    assert rows[0].occurrence_at == dt.datetime(2026, 11, 23, tzinfo=UTC)  # type: ignore[attr-defined]
    assert rows[0].event_id is None  # type: ignore[attr-defined]
