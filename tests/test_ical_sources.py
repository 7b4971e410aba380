"""A followed calendar feed as the operator sees it imported: which rows, at which local
times and places, and a line for every event left out (bot/sources/ical.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.sources.ical import FeedError, FeedEvent, ParsedFeed, event_key_for, parse_feed
from storage.datafile import _SLUG, PlaceRow
from storage.models import MAX_LOCATION, Confidence, EventStatus

FEEDS = Path(__file__).parent / "data" / "ical"
FEED_URL = "https://calendar.example.org/summits.ics"

PLACES = [
    PlaceRow(key=key, names=names, country=country, timezone=zone)
    for key, names, country, zone in [
        ("astana", {"en": "Astana", "ru": "Астана", "kk": "Астана"}, "KZ", "Asia/Almaty"),
        ("vienna", {"en": "Vienna", "de": "Wien"}, "AT", "Europe/Vienna"),
        ("brussels", {"en": "Brussels", "fr": "Bruxelles"}, "BE", "Europe/Brussels"),
        ("new-york", {"en": "New York"}, "US", "America/New_York"),
        ("york", {"en": "York"}, "GB", "Europe/London"),
        ("bishkek", {"en": "Bishkek", "ru": "Бишкек"}, "KG", "Asia/Bishkek"),
        ("moscow", {"en": "Moscow", "ru": "Москва"}, "RU", "Europe/Moscow"),
        ("geneva", {"en": "Geneva", "fr": "Genève"}, "CH", "Europe/Zurich"),
        ("sao-paulo", {"en": "São Paulo"}, "BR", "America/Sao_Paulo"),
        ("tokyo", {"en": "Tokyo", "ja": "東京"}, "JP", "Asia/Tokyo"),
    ]
]


def parse(data: bytes, **options: object) -> ParsedFeed:
    arguments: dict[str, object] = {
        "source_key": "src-3",
        "feed_url": FEED_URL,
        "organisation": None,
        "places": PLACES,
    }
    arguments.update(options)
    return parse_feed(data, **arguments)  # type: ignore[arg-type]


def parse_file(name: str, **options: object) -> ParsedFeed:
    return parse((FEEDS / name).read_bytes(), **options)


def calendar(*events: str, header: str = "") -> bytes:
    """A feed as text with CRLF line ends; ``events`` are VEVENT bodies (their lines)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//summitbot tests//EN"]
    lines += [line.strip() for line in header.strip().splitlines() if line.strip()]
    for body in events:
        lines += ["BEGIN:VEVENT", *(line.strip() for line in body.strip().splitlines())]
        lines += ["END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def event(body: str, *, uid: str = "one@example.org", summary: str = "Summit") -> str:
    return f"UID:{uid}\nSUMMARY:{summary}\nDTSTAMP:20261201T000000Z\n{body}"


def only(feed: ParsedFeed) -> FeedEvent:
    assert feed.problems == []
    assert len(feed.events) == 1
    return feed.events[0]


def by_title(feed: ParsedFeed) -> dict[str, FeedEvent]:
    return {item.row.title["en"]: item for item in feed.events}


def when(item: FeedEvent) -> tuple[str, str | None, str | None, str | None]:
    """What a card shows of an event's time: start, end, place, zone."""
    row = item.row
    return (
        row.start.literal,
        row.end.literal if row.end else None,
        row.place,
        row.timezone,
    )


# ---------------------------------------------------------------------------
# Feeds as calendar programs publish them


def test_a_google_calendar_feed_keeps_its_days_zones_and_places() -> None:
    feed = parse_file("google.ics")

    assert feed.problems == []
    assert feed.name == "International meetings 2026"
    events = by_title(feed)
    assert len(events) == 5  # the changed 2028 occurrence of World Water Day is not a row
    # All day 3–4 December: DTEND 5 December is exclusive.
    assert when(events["OSCE Ministerial Council"]) == ("2026-12-03", "2026-12-04", "vienna", None)
    assert when(events["European Council"]) == (
        "2026-12-17T10:00",
        "2026-12-18T18:00",
        "brussels",
        None,
    )
    # 13:00 UTC is 09:00 in New York (EDT): converted to the venue, the instant kept.
    assert when(events["UN General Assembly general debate opens"]) == (
        "2026-09-22T09:00",
        "2026-09-22T18:00",
        "new-york",
        None,
    )
    water_day = events["World Water Day"]
    assert when(water_day) == ("2027-03-22", None, None, None)
    assert water_day.row.recurrence == "yearly"
    assert events["NATO Defence Ministers' Meeting"].row.status is EventStatus.CANCELLED
    assert events["UN General Assembly general debate opens"].row.status is EventStatus.PLANNED
    assert events["OSCE Ministerial Council"].row.status is EventStatus.CONFIRMED
    # Google writes descriptions as HTML; the note is plain text.
    assert events["OSCE Ministerial Council"].row.note == {
        "en": "Annual meeting of the foreign ministers.\n\nAgenda: osce.org (draft)"
    }
    assert events["European Council"].row.note == {}
    assert events["OSCE Ministerial Council"].sequence == 2
    assert events["OSCE Ministerial Council"].last_modified == dt.datetime(
        2026, 11, 20, 14, 30, tzinfo=dt.UTC
    )


def test_an_outlook_feed_with_windows_zone_names_keeps_its_local_times() -> None:
    feed = parse_file("outlook.ics")

    assert feed.problems == []
    assert feed.name == "Secretariat calendar"
    events = by_title(feed)
    # "W. Europe Standard Time" is Europe/Berlin; Berlin is no known place.
    sherpa = events["G20 Sherpa Meeting"]
    assert when(sherpa) == ("2026-11-10T09:30", "2026-11-10T17:00", None, "Europe/Berlin")
    assert sherpa.location == "Bundeskanzleramt, Willy-Brandt-Straße 1, Berlin"
    assert sherpa.row.note == {
        "en": "Sherpas prepare the leaders' declaration.\n\nDial-in details follow."
    }
    # "Central Asia Standard Time" (UTC+6) in Bishkek: the place's own zone.
    assert when(events["SCO Council of Heads of Government"]) == (
        "2026-11-26T10:00",
        "2026-11-26T16:00",
        "bishkek",
        None,
    )
    assert events["SCO Council of Heads of Government"].sequence == 1
    # An Outlook all-day event of one day (DTEND the next day) has no end.
    assert when(events["Human Rights Council – 61st session opens"]) == (
        "2027-02-23",
        None,
        "geneva",
        None,
    )
    un_day = events["United Nations Day"]
    assert when(un_day) == ("2026-10-24", None, None, None)
    assert un_day.row.recurrence == "yearly"  # FREQ=YEARLY;INTERVAL=1;BYMONTHDAY=24;BYMONTH=10
    assert all(_SLUG.match(item.row.id) and len(item.row.id) <= 40 for item in feed.events)


def test_an_apple_calendar_feed_keeps_its_zone_url_and_floating_times() -> None:
    feed = parse_file("apple.ics")

    assert feed.problems == []
    assert feed.name == "SCO 2026"
    events = by_title(feed)
    summit = events["SCO Heads of State Council"]
    assert when(summit) == ("2026-07-03T10:00", "2026-07-04T13:00", "astana", None)
    assert summit.row.sources == [FEED_URL, "https://sco2026.example.org/programme"]
    assert summit.location is None
    assert summit.sequence == 2
    # A floating time is read in the calendar's X-WR-TIMEZONE.
    briefing = events["SCO Secretariat briefing"]
    assert when(briefing) == ("2026-10-05T09:00", "2026-10-05T10:30", None, "Asia/Almaty")
    assert briefing.location == "Online (Zoom)"
    sco_day = events["SCO Day"]
    assert when(sco_day) == ("2026-06-15", None, None, None)
    assert sco_day.row.recurrence == "yearly"


def test_a_thunderbird_feed_keeps_its_zones_including_mozilla_style_tzids() -> None:
    feed = parse_file("thunderbird.ics")

    assert feed.problems == []
    assert feed.name is None
    events = by_title(feed)
    assert set(events) == {"BRICS Summit", "CIS Heads of State Council", "IAEA General Conference"}
    brics = events["BRICS Summit"]
    assert when(brics) == ("2026-10-22T11:00", "2026-10-24T18:00", None, "Europe/Moscow")
    assert brics.location == "Kazan Expo, Kazan, Russia"
    assert brics.row.status is EventStatus.PLANNED  # TENTATIVE
    cis = events["CIS Heads of State Council"]
    assert when(cis) == ("2026-10-11T10:00", "2026-10-11T15:00", "moscow", None)
    assert cis.row.status is EventStatus.CONFIRMED
    # TZID:/mozilla.org/20050126_1/Europe/Vienna is Europe/Vienna.
    assert when(events["IAEA General Conference"]) == (
        "2026-09-14T10:00",
        "2026-09-18T18:00",
        "vienna",
        None,
    )


def test_examples_in_the_style_of_rfc_5545_keep_their_dates() -> None:
    feed = parse_file("rfc5545.ics")

    assert feed.problems == []
    events = by_title(feed)
    # The VJOURNAL and VFREEBUSY are not events.
    assert set(events) == {
        "Working Group Review",
        "Founding Anniversary",
        "Summer Festival of Nations",
        "Networking Conference",
        "Steering committee call",
        "Regional consultations",
    }
    assert when(events["Working Group Review"]) == (
        "1998-03-12T08:30",
        "1998-03-12T09:30",
        "new-york",
        None,
    )
    assert when(events["Founding Anniversary"]) == ("1997-11-02", None, None, None)
    assert events["Founding Anniversary"].row.recurrence == "yearly"
    # DTEND;VALUE=DATE:20070709 is exclusive: the festival's last day is 8 July.
    assert when(events["Summer Festival of Nations"]) == ("2007-06-28", "2007-07-08", None, None)
    assert when(events["Networking Conference"]) == (
        "1996-09-18T14:30",
        "1996-09-20T22:00",
        None,
        "UTC",
    )
    assert events["Networking Conference"].row.note == {
        "en": "Conference and exhibit\nWorld Congress Center\nAtlanta, Georgia"
    }
    # DURATION:PT1H30M and DURATION:P3D stand for DTEND.
    assert when(events["Steering committee call"]) == (
        "1997-07-14T13:30",
        "1997-07-14T15:00",
        None,
        "America/New_York",
    )
    assert when(events["Regional consultations"]) == ("1997-08-04", "1997-08-06", None, None)


def test_an_outlook_customized_time_zone_gives_true_instants() -> None:
    feed = parse_file("outlook_custom_zone.ics")

    assert feed.problems == []
    events = by_title(feed)
    # The VTIMEZONE says UTC+5, as Astana is: the time stays 10:00 in Asia/Almaty.
    assert when(events["CICA Ministerial Council"]) == (
        "2026-11-12T10:00",
        "2026-11-12T17:00",
        "astana",
        None,
    )
    # No place and no IANA name: the fixed UTC+5 zone keeps both instant and wall clock.
    officials = events["CICA Senior Officials Committee"]
    assert when(officials) == ("2026-11-11T09:30", "2026-11-11T18:00", None, "Etc/GMT-5")
    assert officials.location == "Tashkent, Uzbekistan"


def test_another_feed_with_the_same_custom_tzid_uses_its_own_definition() -> None:
    parse_file("outlook_custom_zone.ics")  # defines "Customized Time Zone" as UTC+5
    moscow_time = """
        BEGIN:VTIMEZONE
        TZID:Customized Time Zone
        BEGIN:STANDARD
        DTSTART:16010101T000000
        TZOFFSETFROM:+0300
        TZOFFSETTO:+0300
        END:STANDARD
        END:VTIMEZONE
    """
    feed = parse(
        calendar(
            event(
                "DTSTART;TZID=Customized Time Zone:20261112T100000\nLOCATION:Astana",
                summary="Consultations",
            ),
            header=moscow_time,
        )
    )
    # 10:00 at UTC+3 is 12:00 in Astana (UTC+5), not 10:00.
    assert when(only(feed)) == ("2026-11-12T12:00", None, "astana", None)


OUTLOOK_DISPLAY_NAME_ZONE = """
    BEGIN:VTIMEZONE
    TZID:(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna
    BEGIN:STANDARD
    DTSTART:16010101T030000
    TZOFFSETFROM:+0200
    TZOFFSETTO:+0100
    RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
    END:STANDARD
    BEGIN:DAYLIGHT
    DTSTART:16010101T020000
    TZOFFSETFROM:+0100
    TZOFFSETTO:+0200
    RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
    END:DAYLIGHT
    END:VTIMEZONE
"""
DISPLAY_NAME_START = (
    'DTSTART;TZID="(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna":20260710T100000'
)


def test_a_vtimezone_without_an_iana_name_takes_the_calendar_zone_when_they_agree() -> None:
    feed = parse(
        calendar(
            event(DISPLAY_NAME_START),
            header=f"X-WR-TIMEZONE:Europe/Vienna\n{OUTLOOK_DISPLAY_NAME_ZONE}",
        )
    )

    assert when(only(feed)) == ("2026-07-10T10:00", None, None, "Europe/Vienna")


def test_a_vtimezone_without_an_iana_name_is_a_fixed_offset_otherwise() -> None:
    disagreeing = parse(
        calendar(
            event(DISPLAY_NAME_START),
            header=f"X-WR-TIMEZONE:Asia/Tokyo\n{OUTLOOK_DISPLAY_NAME_ZONE}",
        )
    )
    half_hour = parse(
        calendar(
            event("DTSTART;TZID=Delegation time:20260710T100000"),
            header="""
                BEGIN:VTIMEZONE
                TZID:Delegation time
                BEGIN:STANDARD
                DTSTART:16010101T000000
                TZOFFSETFROM:+0530
                TZOFFSETTO:+0530
                END:STANDARD
                END:VTIMEZONE
            """,
        )
    )

    # 10:00 at UTC+2 (summer time) and at UTC+5:30: the same instants, in zones rows can hold.
    assert when(only(disagreeing)) == ("2026-07-10T10:00", None, None, "Etc/GMT-2")
    assert when(only(half_hour)) == ("2026-07-10T04:30", None, None, "UTC")


# ---------------------------------------------------------------------------
# Days and times


def test_an_all_day_event_of_one_day_has_no_end() -> None:
    without_end = parse(calendar(event("DTSTART;VALUE=DATE:20260703")))
    next_day_end = parse(calendar(event("DTSTART;VALUE=DATE:20260703\nDTEND;VALUE=DATE:20260704")))

    assert when(only(without_end)) == ("2026-07-03", None, None, None)
    assert when(only(next_day_end)) == ("2026-07-03", None, None, None)


def test_an_all_day_span_ends_the_day_before_its_exclusive_dtend() -> None:
    feed = parse(calendar(event("DTSTART;VALUE=DATE:20260701\nDTEND;VALUE=DATE:20260704")))

    assert when(only(feed)) == ("2026-07-01", "2026-07-03", None, None)


def test_an_outlook_all_day_event_written_midnight_to_midnight_is_days() -> None:
    feed = parse(
        calendar(
            event(
                "DTSTART;TZID=W. Europe Standard Time:20261201T000000\n"
                "DTEND;TZID=W. Europe Standard Time:20261203T000000\n"
                "X-MICROSOFT-CDO-ALLDAYEVENT:TRUE\n"
                "LOCATION:Wien"
            )
        )
    )

    assert when(only(feed)) == ("2026-12-01", "2026-12-02", "vienna", None)


def test_a_duration_stands_for_the_end() -> None:
    feed = parse(
        calendar(
            event("DTSTART;VALUE=DATE:20260701\nDURATION:P3D", uid="days", summary="Days"),
            event(
                "DTSTART;TZID=Europe/Vienna:20260701T090000\nDURATION:PT2H30M",
                uid="hours",
                summary="Hours",
            ),
            event(
                # Vienna leaves summer time on 25 October: a day later is still 09:00.
                "DTSTART;TZID=Europe/Vienna:20261024T090000\nDURATION:P1DT1H",
                uid="over-dst",
                summary="Over the clock change",
            ),
        )
    )

    assert feed.problems == []
    events = by_title(feed)
    assert when(events["Days"]) == ("2026-07-01", "2026-07-03", None, None)
    assert when(events["Hours"]) == ("2026-07-01T09:00", "2026-07-01T11:30", None, "Europe/Vienna")
    assert when(events["Over the clock change"]) == (
        "2026-10-24T09:00",
        "2026-10-25T10:00",
        None,
        "Europe/Vienna",
    )


def test_an_iana_tzid_without_a_known_place_sets_the_rows_zone() -> None:
    feed = parse(
        calendar(
            event(
                "DTSTART;TZID=Asia/Tashkent:20261103T100000\n"
                "DTEND;TZID=Asia/Tashkent:20261103T120000\n"
                "LOCATION:Congress Hall\\, Tashkent"
            )
        )
    )

    item = only(feed)
    assert when(item) == ("2026-11-03T10:00", "2026-11-03T12:00", None, "Asia/Tashkent")
    assert item.location == "Congress Hall, Tashkent"


def test_a_tzid_with_a_known_place_is_converted_to_the_places_zone() -> None:
    # 10:00 in Moscow (UTC+3) is 12:00 in Astana (UTC+5).
    feed = parse(calendar(event("DTSTART;TZID=Europe/Moscow:20261103T100000\nLOCATION:Astana")))

    item = only(feed)
    assert when(item) == ("2026-11-03T12:00", None, "astana", None)
    assert item.location is None
    assert item.row.country is None


@pytest.mark.parametrize(
    ("tzid", "zone"),
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Central Asia Standard Time", "Asia/Bishkek"),
        ("Russian Standard Time", "Europe/Moscow"),
        ("Eastern Standard Time", "America/New_York"),
    ],
)
def test_windows_zone_names_are_read_as_iana_zones(tzid: str, zone: str) -> None:
    feed = parse(calendar(event(f"DTSTART;TZID={tzid}:20261103T100000")))

    assert when(only(feed)) == ("2026-11-03T10:00", None, None, zone)


def test_a_utc_time_without_a_place_stays_in_utc() -> None:
    feed = parse(calendar(event("DTSTART:20261103T100000Z\nDTEND:20261103T113000Z")))

    assert when(only(feed)) == ("2026-11-03T10:00", "2026-11-03T11:30", None, "UTC")


def test_a_utc_time_at_a_known_place_is_shown_at_the_place() -> None:
    feed = parse(calendar(event("DTSTART:20261103T230000Z\nLOCATION:Tokyo International Forum")))

    assert when(only(feed)) == ("2026-11-04T08:00", None, "tokyo", None)


def test_a_floating_time_is_read_in_the_feeds_x_wr_timezone() -> None:
    feed = parse(calendar(event("DTSTART:20261103T100000"), header="X-WR-TIMEZONE:Asia/Bishkek"))

    assert when(only(feed)) == ("2026-11-03T10:00", None, None, "Asia/Bishkek")


def test_a_floating_time_without_a_calendar_zone_is_read_at_the_place_else_in_utc() -> None:
    at_place = parse(calendar(event("DTSTART:20261103T100000\nLOCATION:Москва")))
    nowhere = parse(calendar(event("DTSTART:20261103T100000")))

    assert when(only(at_place)) == ("2026-11-03T10:00", None, "moscow", None)
    assert when(only(nowhere)) == ("2026-11-03T10:00", None, None, "UTC")


def test_an_all_day_event_without_a_place_is_a_floating_day() -> None:
    feed = parse(
        calendar(
            event("DTSTART;VALUE=DATE:20261103\nLOCATION:Somewhere else"),
            header="X-WR-TIMEZONE:Europe/Vienna",
        )
    )

    item = only(feed)
    assert when(item) == ("2026-11-03", None, None, None)
    assert item.location == "Somewhere else"


# ---------------------------------------------------------------------------
# Places


@pytest.mark.parametrize(
    ("location", "place"),
    [
        ("Sao Paulo Expo, Brazil", "sao-paulo"),  # accents ignored
        ("SÃO PAULO", "sao-paulo"),  # case ignored
        ("United Nations, New York, NY", "new-york"),  # the longest name wins over York
        ("York Minster, York", "york"),
        ("Кремль, Москва", "moscow"),  # a name in any language
        ("東京国際フォーラム", "tokyo"),  # a name written without spaces
        ("Palais des Nations, GENEVE", "geneva"),
        ("Yorkshire Showground", None),  # whole words only
        ("Astanaville Convention Centre", None),
    ],
)
def test_a_location_names_a_known_place_by_whole_words(location: str, place: str | None) -> None:
    feed = parse(calendar(event(f"DTSTART;VALUE=DATE:20261103\nLOCATION:{location}")))

    item = only(feed)
    assert item.row.place == place
    assert item.location == (None if place else location)
    assert item.row.location == item.location  # kept in words where no place names it


def test_a_location_in_words_is_kept_on_one_line_and_cut_to_what_an_event_holds() -> None:
    folded = parse(
        calendar(event("DTSTART;VALUE=DATE:20261103\nLOCATION:Congress Hall\\n  Floor 2"))
    )
    long = parse(calendar(event("DTSTART;VALUE=DATE:20261103\nLOCATION:" + "Hall " * 60)))

    assert only(folded).row.location == "Congress Hall Floor 2"
    cut = only(long).row.location
    assert cut is not None and len(cut) == MAX_LOCATION and cut.endswith("…")


# ---------------------------------------------------------------------------
# Status and recurrence


@pytest.mark.parametrize(
    ("status_line", "status"),
    [
        ("STATUS:CANCELLED", EventStatus.CANCELLED),
        ("STATUS:TENTATIVE", EventStatus.PLANNED),
        ("STATUS:CONFIRMED", EventStatus.CONFIRMED),
        ("", EventStatus.PLANNED),
    ],
)
def test_the_status_of_an_event(status_line: str, status: EventStatus) -> None:
    feed = parse(calendar(event(f"DTSTART;VALUE=DATE:20261103\n{status_line}")))

    assert only(feed).row.status is status


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=YEARLY",
        "FREQ=YEARLY;INTERVAL=1;BYMONTH=3;BYMONTHDAY=22",
        "FREQ=YEARLY;COUNT=10",
        "FREQ=YEARLY;UNTIL=20400322",
    ],
)
def test_a_yearly_rule_on_the_start_date_is_a_yearly_event(rule: str) -> None:
    feed = parse(calendar(event(f"DTSTART;VALUE=DATE:20260322\nRRULE:{rule}")))

    item = only(feed)
    assert item.row.recurrence == "yearly"
    assert when(item) == ("2026-03-22", None, None, None)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=WEEKLY;BYDAY=MO",
        "FREQ=MONTHLY;BYMONTHDAY=1",
        "FREQ=YEARLY;INTERVAL=2",
        "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH",
        "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=22",
        "FREQ=YEARLY;BYMONTH=3L",
    ],
)
def test_any_other_rule_skips_the_event_with_a_problem(rule: str) -> None:
    feed = parse(
        calendar(
            event(f"DTSTART;VALUE=DATE:20260322\nRRULE:{rule}", uid="series", summary="Series"),
            event("DTSTART;VALUE=DATE:20260401", uid="single", summary="Single"),
        )
    )

    assert [item.uid for item in feed.events] == ["single"]
    assert len(feed.problems) == 1
    assert feed.problems[0].startswith("VEVENT 1 (UID series, “Series”): only yearly recurrences")
    written = feed.problems[0].rsplit("not RRULE:", 1)[1]
    assert set(written.split(";")) == set(rule.split(";"))


def test_a_changed_occurrence_of_a_yearly_series_is_ignored_and_the_series_kept() -> None:
    feed = parse(
        calendar(
            event(
                "RECURRENCE-ID;VALUE=DATE:20270322\nDTSTART;VALUE=DATE:20270323",
                uid="water",
                summary="Water Day (moved)",
            ),
            event("DTSTART;VALUE=DATE:20260322\nRRULE:FREQ=YEARLY", uid="water", summary="Water"),
        )
    )

    item = only(feed)
    assert item.row.title == {"en": "Water"}
    assert item.row.recurrence == "yearly"
    assert when(item) == ("2026-03-22", None, None, None)


def test_a_changed_occurrence_without_its_series_is_a_problem() -> None:
    feed = parse(calendar(event("RECURRENCE-ID;VALUE=DATE:20270322\nDTSTART;VALUE=DATE:20270323")))

    assert feed.events == []
    assert feed.problems == [
        "VEVENT 1 (UID one@example.org, “Summit”): it changes one occurrence of a series "
        "that is not in the feed"
    ]


# ---------------------------------------------------------------------------
# Copies of one event


STALE = "SEQUENCE:1\nDTSTART;VALUE=DATE:20261103\nLAST-MODIFIED:20261201T000000Z"
CURRENT = "SEQUENCE:2\nDTSTART;VALUE=DATE:20261110\nLAST-MODIFIED:20261101T000000Z"


@pytest.mark.parametrize("order", ["stale first", "current first"])
def test_of_copies_of_one_uid_the_highest_sequence_wins(order: str) -> None:
    copies = [event(STALE, summary="Stale"), event(CURRENT, summary="Current")]
    if order == "current first":
        copies.reverse()

    item = only(parse(calendar(*copies)))

    assert item.row.title == {"en": "Current"}
    assert when(item) == ("2026-11-10", None, None, None)
    assert item.sequence == 2


def test_of_copies_with_one_sequence_the_latest_modified_wins() -> None:
    feed = parse(
        calendar(
            "UID:x\nSUMMARY:Later\nDTSTAMP:20261120T000000Z\nDTSTART;VALUE=DATE:20261110",
            "UID:x\nSUMMARY:Earlier\nDTSTAMP:20261101T000000Z\nDTSTART;VALUE=DATE:20261103",
        )
    )

    item = only(feed)
    assert item.row.title == {"en": "Later"}
    assert item.last_modified == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


# ---------------------------------------------------------------------------
# Event ids


def test_an_event_id_is_stable_and_namespaced_by_its_source() -> None:
    first = event_key_for("src-3", "sco-2026@example.org")

    assert first == event_key_for("src-3", "sco-2026@example.org")
    assert first.startswith("src-3-")
    assert first != event_key_for("src-4", "sco-2026@example.org")
    assert first != event_key_for("src-3", "sco-2027@example.org")
    # The row of a parsed feed carries that id.
    feed = parse(calendar(event("DTSTART;VALUE=DATE:20261103", uid="sco-2026@example.org")))
    assert only(feed).row.id == first


@pytest.mark.parametrize(
    ("source_key", "uid"),
    [
        ("src-3", "040000008200E00074C5B7101A82E00800000000D0B6C3A1F25CDB01" * 4),
        ("a-very-long-source-key-named-after-its-organisation", "x"),
        ("Source_With Spaces/and UPPER", "ÜID with spaces & símbols"),
        ("---", ""),
    ],
)
def test_an_event_id_is_a_slug_of_at_most_40_characters(source_key: str, uid: str) -> None:
    key = event_key_for(source_key, uid)

    assert _SLUG.match(key)
    assert len(key) <= 40


def test_long_source_keys_cut_to_one_prefix_still_give_different_ids() -> None:
    stem = "a-very-long-source-key-named-after-its-organisation"

    assert event_key_for(f"{stem}-1", "x") != event_key_for(f"{stem}-2", "x")


# ---------------------------------------------------------------------------
# Events that cannot be rows


def test_broken_events_are_skipped_with_a_line_each_and_the_rest_imported() -> None:
    feed = parse(
        calendar(
            event("DTSTART;VALUE=DATE:20261103", uid="good-1", summary="Good one"),
            event("LOCATION:Astana", uid="no-start", summary="No start"),
            event("DTSTART;VALUE=DATE:18500101", uid="too-old", summary="Too old"),
            event("DTSTART;TZID=Mars/Olympus_Mons:20261103T100000", uid="mars", summary="Mars"),
            "UID:untitled\nDTSTART;VALUE=DATE:20261103",
            event(
                "DTSTART;VALUE=DATE:20261105\nDTEND;VALUE=DATE:20261101",
                uid="backwards",
                summary="Backwards",
            ),
            event("DTSTART:2026-13-45", uid="garbled", summary="Garbled"),
            "SUMMARY:Anonymous\nDTSTART;VALUE=DATE:20261103",
            event(
                "DTSTART:20261103T100000\nDTEND:20261103T120000",
                uid="floating",
                summary="Floating",
            ),
            event("DTSTART;VALUE=DATE:20261104", uid="good-2", summary="Good two"),
        ),
        places=PLACES,
    )

    assert [item.uid for item in feed.events] == ["good-1", "floating", "good-2"]
    assert feed.problems == [
        "VEVENT 2 (UID no-start, “No start”): it has no DTSTART (start)",
        "VEVENT 3 (UID too-old, “Too old”): DTSTART 1850-01-01 is outside the years 1900–2200",
        "VEVENT 4 (UID mars, “Mars”): the time zone 'Mars/Olympus_Mons' of its DTSTART is "
        "unknown (no IANA or Windows name, and no VTIMEZONE of that TZID in the feed)",
        "VEVENT 5 (UID untitled): it has no SUMMARY (title)",
        "VEVENT 6 (UID backwards, “Backwards”): it ends (2026-11-01) before it starts (2026-11-05)",
        "VEVENT 7 (UID garbled, “Garbled”): its DTSTART cannot be read ('2026-13-45')",
        "VEVENT 8 (no UID, “Anonymous”): it has no UID",
    ]


def test_an_unknown_x_wr_timezone_skips_floating_times_only() -> None:
    feed = parse(
        calendar(
            event("DTSTART:20261103T100000", uid="floating", summary="Floating"),
            event("DTSTART;VALUE=DATE:20261103", uid="day", summary="Day"),
            header="X-WR-TIMEZONE:Atlantis/Capital",
        )
    )

    assert [item.uid for item in feed.events] == ["day"]
    assert feed.problems == [
        "VEVENT 1 (UID floating, “Floating”): its DTSTART is a floating time and the feed's "
        "X-WR-TIMEZONE 'Atlantis/Capital' is unknown"
    ]


def test_a_row_that_fails_validation_is_a_problem() -> None:
    feed = parse(calendar(event("DTSTART;VALUE=DATE:20261103")), kind="picnic")

    assert feed.events == []
    assert len(feed.problems) == 1
    assert feed.problems[0].startswith("VEVENT 1 (UID one@example.org, “Summit”): kind: ")


# ---------------------------------------------------------------------------
# Bodies that are no feed at all


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the body is empty"),
        (b"  \r\n\r\n", "the body is empty"),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML"),
        (b'{"events": []}', "does not start with BEGIN:VCALENDAR"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "does not start with BEGIN:VCALENDAR"),
        (b"BEGIN:VEVENT\r\nUID:1\r\nEND:VEVENT\r\n", "does not start with BEGIN:VCALENDAR"),
        (
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTA",
            "BEGIN:VEVENT on line 3 is never closed",
        ),
        (
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:1\r\nEND:VEVENT\r\n",
            "BEGIN:VCALENDAR on line 1 is never closed",
        ),
        (
            b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n",
            "line 3: END:VCALENDAR while BEGIN:VEVENT of line 2 is open",
        ),
        (b"BEGIN:VCALENDAR\r\nthis is not a content line\r\nEND:VCALENDAR\r\n", "not a valid"),
    ],
)
def test_a_body_that_is_no_icalendar_feed_raises_feed_error(body: bytes, reason: str) -> None:
    with pytest.raises(FeedError, match=reason):
        parse(body)


def test_a_feed_cut_short_is_an_error_not_a_feed_with_fewer_events() -> None:
    whole = (FEEDS / "google.ics").read_bytes()
    cut = whole[: whole.index(b"SUMMARY:World Water Day")]

    with pytest.raises(FeedError, match="never closed"):
        parse(cut)


def test_a_calendar_without_events_is_an_empty_feed() -> None:
    feed = parse(calendar(header="X-WR-CALNAME:Nothing yet"))

    assert feed == ParsedFeed(events=[], problems=[], name="Nothing yet")


# ---------------------------------------------------------------------------
# Text


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8"),
        lambda text: b"\xef\xbb\xbf" + text.encode("utf-8"),
        lambda text: text.encode("utf-16"),
        lambda text: text.encode("cp1252"),
    ],
    ids=["utf-8", "utf-8 with BOM", "utf-16 with BOM", "windows-1252"],
)
def test_the_feed_is_decoded_whatever_its_encoding(encode: object) -> None:
    text = calendar(
        event("DTSTART;VALUE=DATE:20261103\nLOCATION:Genève", summary="Sommet à Genève")
    ).decode()

    item = only(parse(encode(text)))  # type: ignore[operator]

    assert item.row.title == {"en": "Sommet à Genève"}
    assert item.row.place == "geneva"


def test_a_row_carries_the_feeds_organisation_kind_language_and_sources() -> None:
    feed = parse(
        calendar(
            event(
                "DTSTART;VALUE=DATE:20261103\n"
                "URL:https://sco.example.org/ru/summit\n"
                "DESCRIPTION:Заседание Совета глав государств",
                summary="  Саммит   ШОС  ",
            )
        ),
        organisation="sco",
        kind="summit",
        language="ru",
    )

    row = only(feed).row
    assert row.organisation == "sco"
    assert row.kind == "summit"
    assert row.title == {"ru": "Саммит ШОС"}
    assert row.note == {"ru": "Заседание Совета глав государств"}
    assert row.sources == [FEED_URL, "https://sco.example.org/ru/summit"]
    assert row.confidence is Confidence.MEDIUM
    assert row.checked is None


def test_long_titles_and_descriptions_are_cut_to_the_rows_limits() -> None:
    feed = parse(
        calendar(
            event(
                f"DTSTART;VALUE=DATE:20261103\nDESCRIPTION:{'word ' * 200}\n"
                "URL:javascript:alert(1)",
                summary="Title " * 60,
            )
        )
    )

    row = only(feed).row
    assert len(row.title["en"]) == 200
    assert row.title["en"].endswith("…")
    assert len(row.note["en"]) == 500
    assert row.note["en"].endswith("…")
    assert row.sources == [FEED_URL]  # only web addresses are sources
