"""Small builders shared by the tests: events as views, and text as a reader sees it."""

from __future__ import annotations

import datetime as dt
import re

from bot.transports.emulator import parse_html
from storage.dates import PartialDate, Span
from storage.models import Confidence, EventStatus
from storage.views import EventView, PlaceView

# Babel's thin and no-break spaces, and the bidi marks used for Arabic.
_INVISIBLE = re.compile("[\u2009\u202f\xa0\u200f\u2066\u2069]")


def plain(text: str) -> str:
    """What a reader sees: the HTML rendered, special spaces and direction marks as spaces."""
    return _INVISIBLE.sub(" ", parse_html(text))


def make_event(
    start: str,
    end: str | None = None,
    *,
    zone: str | None = "Europe/Berlin",
    place: tuple[str, str, str] | None = ("berlin", "Berlin", "DE"),
    key: str = "talks",
    title: str = "Talks",
    status: EventStatus = EventStatus.PLANNED,
    sources: tuple[str, ...] = ("example 2026",),
) -> EventView:
    """An event view at a place (key, English name, country) in ``zone``."""
    span = Span(PartialDate.parse(start), PartialDate.parse(end) if end else None, zone)
    venue = PlaceView(place[0], {"en": place[1]}, place[2], zone) if place and zone else None
    return EventView(
        key=key,
        organisation=None,
        kind="summit",
        title={"en": title},
        place=venue,
        online=False,
        country=venue.country if venue else None,
        timezone=zone,
        start=span.start,
        end=span.end,
        starts_at=span.starts_at,
        ends_at=span.ends_at,
        status=status,
        recurrence=None,
        note={},
        confidence=Confidence.HIGH,
        sources=sources,
        updated_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
