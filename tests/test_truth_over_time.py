"""Facts that age honestly: a year walked through with a fixed clock.

An event whose dates are over without a recorded outcome is never upcoming and never
"the next"; an undated event whose period is mostly gone may already have happened; a
chair's term ends by its date or its rotation rule, and who comes next is a projection.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from bot.clock import FixedClock
from bot.presentation import render
from bot.presentation.i18n import Translator, directional, translator
from config.languages import SUPPORTED_LANGUAGES
from storage.aging import Standing, can_be_next, mostly_gone, standing, the_next
from storage.database import Database
from storage.dates import PartialDate
from storage.models import Confidence, EventStatus
from storage.queries import Catalogue, EventFilter, When
from storage.rotation import (
    OrganisationChairs,
    PassesTo,
    ProjectedChair,
    RotationKind,
    RotationRule,
    chairs_between,
)
from storage.views import ChairView, EventView, OrganisationRef
from tests.botapi import LocalBotApi
from tests.conftest import StartBot
from tests.factories import QUIET, make_event, plain

UTC = dt.UTC
ORG = OrganisationRef("org", {"en": "Organisation"}, {"en": "ORG"})
SUMMITS = RotationRule(RotationKind.AT_SUMMIT, passes_to=PassesTo.NEXT_HOST)
HOST_TAKES_IT = RotationRule(RotationKind.AT_SUMMIT, passes_to=PassesTo.HOST)
CALENDAR = RotationRule(RotationKind.CALENDAR_YEAR, order=("AM", "BY", "KZ", "KG", "RU", "TJ"))
KINDS = ("summit", "assembly")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def chair(country: str, start: str | None, end: str | None = None) -> ChairView:
    return ChairView(
        organisation=ORG,
        country=country,
        start=PartialDate.parse(start) if start else None,
        end=PartialDate.parse(end) if end else None,
        end_note={},
        note={},
        confidence=Confidence.HIGH,
        sources=("test",),
    )


def summit(
    key: str,
    start: str,
    end: str | None = None,
    *,
    country: str,
    status: EventStatus = EventStatus.PLANNED,
) -> EventView:
    place = (key, key, country)
    return make_event(start, end, key=key, zone="Asia/Almaty", place=place, status=status)


def on(
    day: dt.date, chairs: list[ChairView], rule: RotationRule | None, events: list[EventView]
) -> OrganisationChairs:
    return chairs_between(ORG, chairs, rule, events, day, day)


# --- events ------------------------------------------------------------------------------


def test_a_planned_summit_lapses_the_day_after_its_dates() -> None:
    moscow = make_event("2026-11-11", zone="Europe/Moscow", place=("moscow", "Moscow", "RU"))
    assert standing(moscow, at(2026, 11, 10, 12)) is Standing.COMING
    assert standing(moscow, at(2026, 11, 11, 12)) is Standing.COMING  # under way
    assert standing(moscow, at(2026, 11, 11, 21, 1)) is Standing.LAPSED  # midnight in Moscow
    assert not can_be_next(moscow, at(2026, 11, 12))


# A postponement carries the new dates: once those are over, nothing says what happened.
@pytest.mark.parametrize(
    "status",
    [EventStatus.PLANNED, EventStatus.PROPOSED, EventStatus.CONFIRMED, EventStatus.POSTPONED],
)
def test_every_status_that_awaits_an_outcome_lapses(status: EventStatus) -> None:
    event = make_event("2026-04-22", "2026-04-24", status=status)
    assert standing(event, at(2026, 12, 6)) is Standing.LAPSED


def test_an_outcome_on_record_is_not_lapsed() -> None:
    for status in (EventStatus.HELD, EventStatus.CANCELLED):
        event = make_event("2026-04-22", status=status)
        assert standing(event, at(2026, 12, 6)) is Standing.OVER


def test_a_month_precision_summit_on_the_last_day_of_its_month_and_the_day_after() -> None:
    baku = make_event("2026-10", zone="Asia/Baku", place=("baku", "Baku", "AZ"))
    assert standing(baku, at(2026, 9, 30, 12)) is Standing.COMING
    assert can_be_next(baku, at(2026, 9, 30, 12))
    assert standing(baku, at(2026, 10, 10)) is Standing.UNDATED_NOW
    assert can_be_next(baku, at(2026, 10, 10))  # a third of October gone
    assert mostly_gone(baku, at(2026, 10, 31, 12))
    assert not can_be_next(baku, at(2026, 10, 31, 12))
    assert standing(baku, at(2026, 11, 1, 0, 0)) is Standing.LAPSED  # 04:00 in Baku


def test_a_year_precision_summit_may_have_happened_once_most_of_its_year_is_gone() -> None:
    bishkek = make_event("2026", zone="Asia/Bishkek", place=("bishkek", "Bishkek", "KG"))
    assert standing(bishkek, at(2026, 3, 1)) is Standing.UNDATED_NOW
    assert not mostly_gone(bishkek, at(2026, 6, 30))
    assert mostly_gone(bishkek, at(2026, 7, 3))
    assert standing(bishkek, at(2026, 12, 31, 17, 59)) is Standing.UNDATED_NOW
    assert standing(bishkek, at(2026, 12, 31, 18, 0)) is Standing.LAPSED  # 1 Jan in Bishkek


def test_a_meeting_at_a_time_of_day_with_no_end_runs_to_the_end_of_its_day() -> None:
    talks = make_event("2026-12-10T10:00", zone="Asia/Almaty", place=("astana", "Astana", "KZ"))
    assert standing(talks, at(2026, 12, 10, 5, 1)) is Standing.COMING  # 10:01 in Astana
    assert standing(talks, at(2026, 12, 10, 18, 59)) is Standing.COMING
    assert standing(talks, at(2026, 12, 10, 19, 0)) is Standing.LAPSED  # midnight there


def test_a_yearly_observance_is_seen_at_its_next_occurrence_never_lapsed() -> None:
    water = replace(
        make_event("2024-03-22", zone=None, place=None, key="water"), recurrence="FREQ=YEARLY"
    )
    assert standing(water, at(2026, 12, 6)) is Standing.COMING


def test_an_undated_event_is_not_the_next_while_a_dated_one_is_to_come() -> None:
    undated = make_event("2027", key="undated")
    dated = make_event("2027-03-10", key="dated")
    assert the_next([undated, dated], at(2027, 2, 1)) == (dated, (undated,))
    # With no dated event ahead, a year only begun is the next; once mostly gone, not.
    assert the_next([undated], at(2027, 2, 1)) == (undated, ())
    assert the_next([undated], at(2027, 9, 1)) == (None, (undated,))
    # Not begun, it is as precise as anything known and comes first in its order.
    assert the_next([undated, dated], at(2026, 12, 6)) == (undated, ())


# --- chairs ------------------------------------------------------------------------------


def test_calendar_year_chairs_roll_over_on_the_first_of_january() -> None:
    chairs = [chair("KG", "2025-01-01", "2025-12-31"), chair("RU", "2026-01-01", "2026-12-31")]
    eve = on(dt.date(2026, 12, 31), chairs, CALENDAR, [])
    assert [c.country for c in eve.chairs] == ["RU"] and eve.ended is None
    new_year = on(dt.date(2027, 1, 1), chairs, CALENDAR, [])
    assert new_year.chairs == ()
    assert new_year.ended is not None and new_year.ended.chair.country == "RU"
    assert new_year.ended.last_day == dt.date(2026, 12, 31)
    assert new_year.projected == (ProjectedChair("TJ", year=2027),)


def test_a_projection_wraps_around_the_order_and_covers_each_year_asked() -> None:
    chairs = [chair("RU", "2026-01-01", "2026-12-31")]
    found = chairs_between(ORG, chairs, CALENDAR, [], dt.date(2027, 1, 1), dt.date(2028, 12, 31))
    assert found.projected == (ProjectedChair("TJ", year=2027), ProjectedChair("AM", year=2028))


def test_a_recorded_successor_wins_over_the_projection() -> None:
    chairs = [chair("RU", "2026-01-01", "2026-12-31"), chair("KZ", "2027-01-01", "2027-12-31")]
    found = on(dt.date(2027, 3, 1), chairs, CALENDAR, [])
    assert [c.country for c in found.chairs] == ["KZ"]
    assert found.ended is None and found.projected == ()


def test_a_gap_in_the_record_is_not_an_ended_term() -> None:
    chairs = [chair("AM", "2022", "2022-11-23"), chair("BY", "2023-01-01", "2023-12-31")]
    found = on(dt.date(2022, 12, 1), chairs, CALENDAR, [])
    assert found.chairs == () and found.ended is None and found.projected == ()


def test_a_summit_hands_the_sco_chair_to_the_next_host() -> None:
    kyrgyzstan = [chair("KG", "2025-09-01")]
    bishkek = summit("bishkek", "2026-09-01", "2026-09-02", country="KG", status=EventStatus.HELD)
    islamabad = summit("islamabad", "2027", country="PK")
    events = [bishkek, islamabad]
    before = on(dt.date(2026, 9, 2), kyrgyzstan, SUMMITS, events)
    assert [c.country for c in before.chairs] == ["KG"] and before.ended is None
    after = on(dt.date(2026, 9, 3), kyrgyzstan, SUMMITS, events)
    assert after.chairs == ()
    assert after.ended is not None and after.ended.handover == bishkek
    assert after.ended.handover_recorded and after.ended.last_day == dt.date(2026, 9, 2)
    assert after.projected == (ProjectedChair("PK", host_of=islamabad),)


def test_a_handover_summit_without_an_outcome_leaves_the_term_due_not_recorded() -> None:
    azerbaijan = [chair("AZ", "2024-12-17")]
    baku = summit("baku", "2026-10", country="AZ")
    during = on(dt.date(2026, 10, 20), azerbaijan, SUMMITS, [baku])
    assert [c.country for c in during.chairs] == ["AZ"]
    found = on(dt.date(2026, 12, 6), azerbaijan, SUMMITS, [baku])
    assert found.chairs == ()
    assert found.ended is not None and found.ended.handover == baku
    assert not found.ended.handover_recorded
    assert found.projected == ()  # no next summit is known, so no host


def test_the_host_of_a_summit_takes_the_chair_at_it() -> None:
    azerbaijan = [chair("AZ", "2025-10-07")]
    turkiye = summit("turkiye", "2026-07", "2026-12", country="TR")
    found = on(dt.date(2027, 1, 2), azerbaijan, HOST_TAKES_IT, [turkiye])
    assert found.ended is not None and found.ended.handover == turkiye
    assert found.projected == (ProjectedChair("TR", host_of=turkiye),)


def test_a_term_begun_at_a_summit_known_only_to_its_year_is_not_ended_by_that_summit() -> None:
    azerbaijan = [chair("AZ", "2025")]
    gabala = summit("gabala", "2025-10-06", "2025-10-07", country="AZ", status=EventStatus.HELD)
    found = on(dt.date(2025, 12, 1), azerbaijan, HOST_TAKES_IT, [gabala])
    assert [c.country for c in found.chairs] == ["AZ"] and found.ended is None


def test_a_postponed_summit_still_hands_the_chair_on_at_its_new_dates() -> None:
    kyrgyzstan = [chair("KG", "2025-09-01")]
    bishkek = summit("bishkek", "2027-03", country="KG", status=EventStatus.POSTPONED)
    islamabad = summit("islamabad", "2027-09", country="PK")
    found = on(dt.date(2027, 4, 2), kyrgyzstan, SUMMITS, [bishkek, islamabad])
    assert found.chairs == ()
    assert found.ended is not None and found.ended.handover == bishkek
    assert found.projected == (ProjectedChair("PK", host_of=islamabad),)


def test_an_elected_term_from_29_february_ends_on_28_february() -> None:
    rule = RotationRule(RotationKind.ELECTED, term_years=1)
    found = on(dt.date(2025, 3, 1), [chair("KZ", "2024-02-29")], rule, [])
    assert found.ended is not None and found.ended.last_day == dt.date(2025, 2, 28)


def test_an_elected_term_ends_and_nobody_is_projected() -> None:
    kazakhstan = [chair("KZ", "2024-01-01")]
    rule = RotationRule(RotationKind.ELECTED, term_years=3)
    assert [c.country for c in on(dt.date(2026, 12, 31), kazakhstan, rule, []).chairs] == ["KZ"]
    found = on(dt.date(2027, 1, 1), kazakhstan, rule, [])
    assert found.ended is not None and found.ended.last_day == dt.date(2026, 12, 31)
    assert found.projected == ()


def test_without_a_rule_an_open_term_simply_goes_on() -> None:
    found = on(dt.date(2030, 1, 1), [chair("QA", "2023-10-03")], None, [])
    assert [c.country for c in found.chairs] == ["QA"] and found.ended is None


# --- rules as data -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "calendar_year", "order": ["AM", "BY"]},
        {"kind": "at_summit", "passes_to": "host", "events": ["assembly"]},
        {"kind": "elected", "term_years": 3},
        {"kind": "elected"},
    ],
)
def test_a_rule_round_trips_through_its_json(data: dict[str, object]) -> None:
    rule = RotationRule.parse(data, KINDS)
    assert RotationRule.parse(rule.to_json(), KINDS) == rule


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "monarchy"}, "kind must be"),
        ({"kind": "calendar_year"}, "needs order"),
        ({"kind": "calendar_year", "order": ["Armenia"]}, "country codes"),
        ({"kind": "calendar_year", "order": ["AM", "AM"]}, "twice"),
        ({"kind": "at_summit", "passes_to": "oldest"}, "next_host or host"),
        ({"kind": "at_summit", "events": ["picnic"]}, "event kinds"),
        ({"kind": "elected", "term_years": 0}, "1 to 50"),
        ({"kind": "elected", "order": ["AM"]}, "not order"),
        ("yearly", "expected kind"),
    ],
)
def test_a_wrong_rule_is_refused_with_what_is_wrong(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RotationRule.parse(data, KINDS)  # type: ignore[arg-type]


# --- the bundled dataset, as a reader meets it ---------------------------------------------


@pytest.fixture
def catalogue(database: Database) -> Catalogue:
    return Catalogue(database)


def chairs_by_key(found: list[OrganisationChairs]) -> dict[str, OrganisationChairs]:
    return {group.organisation.key: group for group in found}


async def test_on_6_december_2026_nothing_over_is_offered_as_to_come(catalogue: Catalogue) -> None:
    now = at(2026, 12, 6, 9)
    page = await catalogue.events(EventFilter(when=When.UPCOMING), now, 0, 50)
    upcoming = {e.key for e in page.events}
    assert "sco-2027-pakistan" in upcoming
    past = await catalogue.events(EventFilter(when=When.PAST), now, 0, 50)
    lapsed = {e.key for e in past.events if standing(e, now) is Standing.LAPSED}
    assert {"csto-2026-moscow", "cis-2026-ashgabat", "cica-2026-baku"} <= lapsed
    assert not lapsed & upcoming
    for key in ("sco", "csto", "cis", "cica", "ots", "ifas", "iofs"):
        found = await catalogue.next_events(key, now)
        if found.next is not None:
            assert can_be_next(found.next, now), key
    sco = await catalogue.next_events("sco", now)
    assert sco.next is not None and sco.next.key == "sco-2027-pakistan"
    assert [e.key for e in sco.uncertain] == ["sco-2026-bishkek"]
    assert (await catalogue.next_events("csto", now)).next is None


async def test_on_6_december_2026_each_chair_is_what_the_record_allows(
    catalogue: Catalogue,
) -> None:
    found = chairs_by_key(await catalogue.chairs_on(dt.date(2026, 12, 6)))
    current = {key: [c.country for c in group.chairs] for key, group in found.items()}
    assert current == {
        "sco": ["KG"],
        "csto": ["RU"],
        "cis": ["TM"],
        "ots": ["AZ"],
        "ifas": ["KZ"],
        "iofs": ["QA"],  # its next Assembly is only proposed: nothing hands the chair on
        "cica": [],  # due to pass on at the Baku summit (October 2026), not on record
    }
    cica = found["cica"].ended
    assert cica is not None and cica.handover is not None
    assert cica.handover.key == "cica-2026-baku" and not cica.handover_recorded
    assert all(group.ended is None for key, group in found.items() if key != "cica")
    assert all(group.projected == () for group in found.values())


async def test_on_2_january_2027_the_calendar_year_chairs_have_moved_on(
    catalogue: Catalogue,
) -> None:
    found = chairs_by_key(await catalogue.chairs_on(dt.date(2027, 1, 2)))
    for key, was, expected in (("csto", "RU", "TJ"), ("cis", "TM", "UZ")):
        group = found[key]
        assert group.chairs == ()
        assert group.ended is not None and group.ended.chair.country == was
        assert group.ended.last_day == dt.date(2026, 12, 31)
        assert group.projected == (ProjectedChair(expected, year=2027),)
    ifas = found["ifas"]
    assert ifas.ended is not None and ifas.projected == ()  # elected: nobody projected
    ots = found["ots"]
    assert ots.ended is not None and [p.country for p in ots.projected] == ["TR"]
    sco = found["sco"]
    assert sco.ended is not None and [p.country for p in sco.projected] == ["PK"]


async def test_chairs_in_2027_are_projections_where_nothing_is_recorded(
    catalogue: Catalogue,
) -> None:
    found = chairs_by_key(await catalogue.chairs_during(dt.date(2027, 1, 1), dt.date(2027, 12, 31)))
    assert found["csto"].chairs == ()  # Russia's term ends before 2027 begins
    assert found["csto"].projected == (ProjectedChair("TJ", year=2027),)
    # Recorded terms that reach into 2027 stay the record; the rule adds, never replaces.
    assert [c.country for c in found["iofs"].chairs] == ["QA"]
    assert found["iofs"].projected == ()


# --- in every language -----------------------------------------------------------------

NEW_WORDS = (
    "dates passed — outcome not recorded",
    "expected in {period}, dates not announced; may already have taken place",
    "By rotation expected: {country} for {year} (a projection, unconfirmed)",
    "{country}'s term ended on {date}; the successor is not recorded.",
    "checked {date}",
)


async def ask(bot_api: LocalBotApi, text: str, language: str) -> str:
    chat_id = 9100 + SUPPORTED_LANGUAGES.index(language)
    update = bot_api.message(text, chat_id=chat_id, language_code=language)
    return (await bot_api.reply_to(update)).text


def as_read(html_text: str, tr: Translator) -> str:
    return plain(directional(html_text, tr))


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
async def test_readers_see_ended_terms_projections_and_lapsed_dates_in_their_language(
    language: str, bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    tr = translator(language)
    if language != "en":
        untranslated = [words for words in NEW_WORDS if tr.gettext(words) == words]
        assert not untranslated, untranslated
    clock.set(at(2027, 1, 2, 9))
    async with start_bot(**QUIET):
        chairs = plain(await ask(bot_api, "/chairs", language))
        projected = render.projection_line(ProjectedChair("TJ", year=2027), tr)
        assert as_read(projected, tr) in chairs
        ended = tr.gettext(
            "{country}'s term ended on {date}; the successor is not recorded.",
            country=render.country_name("RU", tr),
            date=render.format_day(dt.date(2026, 12, 31), tr),
        )
        assert as_read(render.esc(ended), tr) in chairs

        card = plain(await ask(bot_api, "/event csto-2026-moscow", language))
        assert tr.gettext("dates passed — outcome not recorded") in card
        checked = tr.gettext("checked {date}", date=render.format_day(dt.date(2026, 12, 7), tr))
        assert as_read(render.esc(checked), tr) in card


async def test_a_chair_whose_handover_summit_may_be_past_says_so_only_from_today_on(
    bot_api: LocalBotApi, start_bot: StartBot, clock: FixedClock
) -> None:
    clock.set(at(2026, 12, 7, 9))
    caveat = "The summit due to hand the chair on (26th SCO Heads of State Council"
    async with start_bot(**QUIET):
        today = plain(await ask(bot_api, "/chairs", "en"))
        assert "Kyrgyzstan: since 1 September 2025" in today
        assert caveat in today and "may already have taken place" in today
        card = plain(await ask(bot_api, "/org sco", "en"))
        assert caveat in card
        # In February the year had barely begun: nothing to say then.
        february = plain(await ask(bot_api, "/chairs 2026-02-01", "en"))
        assert "Kyrgyzstan: since 1 September 2025" in february
        assert caveat not in february
