"""What readers see: dates at their precision, their time zone, safe HTML, short messages."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.presentation import callbacks, render
from bot.presentation.i18n import translator
from bot.transports.emulator import parse_html
from storage.models import ChatType
from storage.queries import EventFilter, When
from storage.views import ChatView, EventView
from tests.factories import make_event, plain

UTC = dt.UTC
EN = translator("en")


def chat(zone: str = "Asia/Almaty") -> ChatView:
    return ChatView(1, ChatType.PRIVATE, "t", "en", zone, True)


def event(
    start: str, end: str | None = None, zone: str | None = "Europe/Berlin", title: str = "<Talks>"
) -> EventView:
    return make_event(start, end, zone=zone, title=title)


def shown(reply: render.Reply) -> str:
    return plain(reply.text)


def test_a_month_precision_event_shows_the_month_and_no_hour() -> None:
    text = shown(
        render.event_card(event("2026-10"), chat(), dt.datetime(2026, 1, 5, tzinfo=UTC), EN)
    )
    assert "📅 October 2026" in text
    assert "00:00" not in text and "1 October" not in text
    assert "exact dates not announced yet" in text
    assert "in about 9 months" in text


def test_a_month_precision_event_that_has_begun_claims_nothing() -> None:
    now = dt.datetime(2026, 10, 15, tzinfo=UTC)
    text = shown(render.event_card(event("2026-10"), chat(), now, EN))
    assert "under way" not in text
    assert "⏳" not in text


def test_a_timed_event_is_shown_in_the_readers_zone_and_the_venues() -> None:
    card = render.event_card(
        event("2026-10-24T10:00"), chat("Asia/Almaty"), dt.datetime(2026, 10, 1, tzinfo=UTC), EN
    )
    text = shown(card)
    assert "24 October 2026, 13:00 (Almaty time)" in text
    assert "24 October 2026, 10:00 at the venue (Europe/Berlin)" in text


def test_a_timed_event_in_the_readers_own_zone_is_shown_once() -> None:
    card = render.event_card(
        event("2026-10-24T10:00"), chat("Europe/Berlin"), dt.datetime(2026, 10, 1, tzinfo=UTC), EN
    )
    assert "at the venue" not in shown(card)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (dt.datetime(2026, 10, 14, 12, tzinfo=UTC), "in 10 days"),
        (dt.datetime(2026, 10, 23, 12, tzinfo=UTC), "tomorrow"),
        (dt.datetime(2026, 10, 24, 0, 30, tzinfo=UTC), "under way now"),
    ],
)
def test_countdown_to_a_day_counts_calendar_days_in_the_readers_zone(
    now: dt.datetime, expected: str
) -> None:
    assert render.countdown(event("2026-10-24", zone="Asia/Almaty"), chat(), now, EN) == expected


def test_data_is_escaped_in_every_card() -> None:
    card = render.event_card(event("2026-10"), chat(), dt.datetime(2026, 1, 1, tzinfo=UTC), EN)
    assert "&lt;Talks&gt;" in card.text
    assert parse_html(card.text).startswith("<Talks>")


def test_long_text_is_split_under_the_limit_at_line_breaks() -> None:
    text = "\n".join(f"<b>{i}</b> " + "x" * 90 for i in range(200))
    parts = render.split_message(text)
    assert len(parts) > 1
    assert all(len(part) <= render.MAX_MESSAGE for part in parts)
    assert "\n".join(parts) == text
    for part in parts:
        parse_html(part)  # every part is valid HTML on its own


def test_a_single_overlong_line_is_cut_without_breaking_an_entity() -> None:
    text = ("a &amp; b " * 1000).strip()
    parts = render.split_message(text)
    assert all(len(part) <= render.MAX_MESSAGE for part in parts)
    for part in parts:
        parse_html(part)


def test_list_buttons_round_trip_through_callback_data() -> None:
    query = EventFilter(organisation="sco", year=2024, when=When.PAST)
    action = callbacks.parse(callbacks.event_list(query, 3))
    assert action == callbacks.OpenList(query, 3)
    assert callbacks.parse(callbacks.event("sco-2024-astana")) == callbacks.OpenEvent(
        "sco-2024-astana"
    )


@pytest.mark.parametrize(
    "forged",
    [
        None, "", "e:", "e:UPPER", "o:a/b", "l:u:sco:24:1", "l:u:sco:2024:99999", "x" * 65,
        "l:u:0:0000:0", "l:p:-:9999:0",  # years no list has (the fuzz test found them)
    ],
)  # fmt: skip
def test_forged_callback_data_is_an_expired_button(forged: str | None) -> None:
    with pytest.raises(callbacks.ExpiredButton):
        callbacks.parse(forged)
