"""Small builders shared by the tests: events as views, and text as a reader sees it."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any

import pytest

from bot.delivery.send_queue import SendQueue
from bot.transports.emulator import parse_html
from storage.claims import ClaimedBatch, claim_due
from storage.database import Database
from storage.dataset import follow_up_import, import_text
from storage.dates import PartialDate, Span
from storage.models import Confidence, EventStatus
from storage.planning import Planner
from storage.views import EventView, PlaceView

# Babel's thin and no-break spaces, and the bidi marks used for Arabic.
_INVISIBLE = re.compile("[\u2009\u202f\xa0\u200f\u2066\u2069]")


def plain(text: str) -> str:
    """What a reader sees: the HTML rendered, special spaces and direction marks as spaces."""
    return _INVISIBLE.sub(" ", parse_html(text))


# A dash between two numbers, with or without spaces around it.
_SPACED_RANGE = re.compile(r"(?<=\d) ?([–—]) ?(?=\d)")


def tight_ranges(text: str) -> str:
    """`plain` text with number ranges written tight: "3 – 4 Jul" reads "3–4 Jul".

    Day ranges are CLDR's interval formats for the reader's locale (through Babel), and a
    Babel release may re-space them (2.19 put thin spaces around the dash in English).
    What a reader needs is both days, the month and the year: tests assert those, on
    this form, and not one release's spacing."""
    return _SPACED_RANGE.sub(r"\1", plain(text))


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


# A timed summit used by the reminder, channel and operator tests:
# 10:00 in Astana (UTC+5) on 1 December 2026 is 05:00 UTC.
START = dt.datetime(2026, 12, 1, 5, 0, tzinfo=dt.UTC)
TEST_EVENT = """
events:
  - id: test-summit
    organisation: sco
    title: {en: Test summit, ru: Тестовый саммит}
    place: astana
    start: 2026-12-01T10:00
    status: confirmed
    sources: [test]
"""
# The tests drive the dispatcher's sweeps; the periodic one would only add noise.
QUIET = {"reminder_sweep_seconds": 3600}


async def load(database_url: str, text: str, now: dt.datetime, name: str = "test.yaml") -> None:
    """Import a data file the way `summitbot import` does, notices and re-planning included."""
    database = Database(database_url)
    try:
        async with database.transaction() as session:
            report = await import_text(session, text, name, changed_by="test")
            await follow_up_import(session, report, now, Planner())
    finally:
        await database.dispose()


def track_taken(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """The chats whose delivery a sender has taken up (its renewal begun)."""
    taken: set[int] = set()
    take_now = SendQueue.take_now

    def tracked(queue: SendQueue[Any]) -> Any:
        found = take_now(queue)
        if found is not None:
            taken.add(found[0].chat_id)
        return found

    monkeypatch.setattr(SendQueue, "take_now", tracked)
    return taken


async def claimed_by_replicas(
    database_url: str, now: dt.datetime, replicas: int, limit: int
) -> list[tuple[str, ClaimedBatch]]:
    """Replicas claiming at once, each with its own connections, until nothing is due:
    every batch each one got, by the replica's name."""
    batches: list[tuple[str, ClaimedBatch]] = []

    async def replica(name: str) -> None:
        own = Database(database_url)
        try:
            while True:
                async with own.transaction() as session:
                    batch = await claim_due(session, now, name, limit)
                if not batch.candidates:
                    return
                batches.append((name, batch))
        finally:
            await own.dispose()

    await asyncio.gather(*(replica(f"replica-{n}") for n in range(replicas)))
    return batches
