"""Bulk data for the benchmarks: many organisations, events and subscribed chats.

The bundled dataset is loaded first through the real path
(:func:`storage.dataset.prepare_database`); the bulk rows go in with SQLAlchemy Core
inserts into the migrated schema, so seeding 100,000 chats takes seconds. Everything
is drawn from a seeded random generator: two runs build the same data.

Throwaway databases live here too: a SQLite file in a temporary directory, or a
PostgreSQL database with a unique name, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

from bench import seed as seed_module
from bench.common import POSTGRES_ADMIN_URL
from config.settings import DATASET_DIR
from storage.database import Database
from storage.dataset import prepare_database
from storage.dates import PartialDate, Precision, Span
from storage.models import (
    Chairmanship,
    Chat,
    ChatType,
    Confidence,
    Event,
    EventStatus,
    Organisation,
    Place,
    Subscription,
    SubscriptionScope,
)

# "Now" in every benchmark, as in the tests: results do not depend on the day they ran.
BENCH_NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
POSTGRES_URL = POSTGRES_ADMIN_URL  # BENCH_DATABASE_URL, as for the other benchmarks
BACKENDS = ("sqlite", "postgresql")
BENCH_USER_NAME = "Bench"
LANGUAGES = ("en", "ru", "kk", "zh", "ar")
CHAT_ZONES = (
    "Asia/Almaty",
    "Europe/Moscow",
    "Asia/Shanghai",
    "Asia/Tashkent",
    "Europe/Istanbul",
    "Asia/Dubai",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Tokyo",
)
# Bulk organisations: every region with every body, so names share words as real ones do.
REGIONS = (
    ("Eurasian", "Евразийский"),
    ("Caspian", "Каспийский"),
    ("Silk Road", "Шёлкового пути"),
    ("Steppe", "Степной"),
    ("Pacific", "Тихоокеанский"),
    ("Arctic", "Арктический"),
    ("Danube", "Дунайский"),
    ("Andean", "Андский"),
    ("Nordic", "Северный"),
    ("Sahel", "Сахельский"),
    ("Black Sea", "Черноморский"),
    ("Baltic", "Балтийский"),
    ("Aral", "Аральский"),
    ("Himalayan", "Гималайский"),
    ("Mekong", "Меконгский"),
    ("Nile", "Нильский"),
    ("Amazon", "Амазонский"),
    ("Alpine", "Альпийский"),
    ("Gulf", "Заливный"),
    ("Atlantic", "Атлантический"),
)
BODIES = (
    ("Economic Forum", "экономический форум", "EF"),
    ("Cooperation Council", "совет сотрудничества", "CC"),
    ("Energy Union", "энергетический союз", "EU"),
    ("Water Commission", "водная комиссия", "WC"),
    ("Trade Organisation", "торговая организация", "TO"),
    ("Security Dialogue", "диалог по безопасности", "SD"),
    ("Transport Corridor", "транспортный коридор", "TC"),
    ("Science Academy", "академия наук", "SA"),
    ("Health Alliance", "альянс здравоохранения", "HA"),
    ("Climate Platform", "климатическая платформа", "CP"),
)
KINDS = (
    ("summit", "Summit", "саммит"),
    ("ministerial", "Ministerial Meeting", "встреча министров"),
    ("forum", "Forum", "форум"),
    ("meeting", "Working Meeting", "рабочая встреча"),
    ("session", "Session", "сессия"),
)
COUNTRIES = ("KZ", "UZ", "KG", "TJ", "TM", "AZ", "TR", "RU", "BY", "AM", "CN", "IN", "QA")


@dataclass(frozen=True)
class Scale:
    """How much state to build."""

    organisations: int = 200
    events: int = 10_000
    chats: int = 100_000
    first_year: int = 2016
    last_year: int = 2036


@dataclass(frozen=True)
class Seeded:
    """What was built, and the handles the benchmarks use."""

    organisations: int
    events: int
    chats: int
    subscriptions: int
    organisation_names: tuple[str, ...]  # English names of bulk organisations
    chat_ids: tuple[int, ...]  # private chats, for updates from known users
    followed_event_key: str  # followed (directly or not) by every chat

    def describe(self) -> dict[str, int]:
        return {
            "organisations": self.organisations,
            "events": self.events,
            "chats": self.chats,
            "subscriptions": self.subscriptions,
        }


def _event_values(
    rng: random.Random,
    key: str,
    organisation_id: int,
    title: dict[str, str],
    kind: str,
    start: PartialDate,
    end: PartialDate | None,
    place: tuple[int | None, str, str] | None,
    now: dt.datetime,
) -> dict[str, Any]:
    place_id, country, zone = place if place else (None, rng.choice(COUNTRIES), None)
    span = Span(start, end, zone)
    over = span.ends_at <= now
    status = (
        EventStatus.HELD
        if over
        else rng.choices(
            [EventStatus.PLANNED, EventStatus.CONFIRMED, EventStatus.POSTPONED],
            weights=[6, 3, 1],
        )[0]
    )
    if rng.random() < 0.03:
        status = EventStatus.CANCELLED
    return {
        "key": key,
        "organisation_id": organisation_id,
        "kind": kind,
        "title": title,
        "place_id": place_id,
        "online": False,
        "country": country,
        "timezone": zone,
        "date_precision": start.precision,
        "start_local": span.start_local,
        "starts_at": span.starts_at,
        "end_precision": end.precision if end else None,
        "end_local": span.end_local,
        "ends_at": span.ends_at,
        "status": status,
        "revision": 0,
        "recurrence": None,
        "note": {},
        "confidence": Confidence.MEDIUM,
        "sources": ["benchmark"],
        "created_at": now,
        "updated_at": now,
    }


def _random_dates(rng: random.Random, year: int) -> tuple[PartialDate, PartialDate | None]:
    """A start (and maybe an end) at the precisions real announcements have."""
    precision = rng.choices(
        [Precision.DAY, Precision.TIME, Precision.MONTH, Precision.YEAR], weights=[50, 25, 15, 10]
    )[0]
    day = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
    if precision is Precision.YEAR:
        return PartialDate.parse(str(year)), None
    if precision is Precision.MONTH:
        return PartialDate.parse(f"{year:04d}-{day.month:02d}"), None
    if precision is Precision.TIME:
        start = PartialDate.parse(f"{day.isoformat()}T{rng.choice((9, 10, 11, 14, 15)):02d}:00")
        return start, None
    start = PartialDate.parse(day.isoformat())
    length = rng.choice((0, 0, 1, 1, 2))
    end = PartialDate.parse((day + dt.timedelta(days=length)).isoformat()) if length else None
    return start, end


async def _insert(database: Database, model: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    # Core inserts into the table (not ORM bulk inserts): the fastest path SQLAlchemy has.
    async with database.engine.begin() as connection:
        for start in range(0, len(rows), 5_000):
            await connection.execute(insert(model.__table__), list(rows[start : start + 5_000]))


async def seed(
    database: Database, scale: Scale, *, now: dt.datetime = BENCH_NOW, seed: int = 7
) -> Seeded:
    """Migrate, load the bundled dataset, then add ``scale``'s organisations, events,
    chats and subscriptions. Every chat follows the bundled SCO's next summit (through
    everything, the organisation, or the event itself) and one or two bulk organisations."""
    rng = random.Random(seed)
    await prepare_database(database, DATASET_DIR, now)
    async with database.sessions() as session:
        places = [
            (p.id, p.country, p.timezone) for p in (await session.scalars(select(Place))).all()
        ]
        sco = await session.scalar(select(Organisation).where(Organisation.key == "sco"))
        assert sco is not None, "the bundled dataset has the SCO"
        sco_id = sco.id

    # Organisations, three chairmanships each.
    org_rows: list[dict[str, Any]] = []
    names = []
    for index in range(scale.organisations):
        (region_en, region_ru), (body_en, body_ru, initials) = (
            REGIONS[index % len(REGIONS)],
            BODIES[(index // len(REGIONS)) % len(BODIES)],
        )
        series = index // (len(REGIONS) * len(BODIES))
        name_en = f"{region_en} {body_en}" + (f" {series + 1}" if series else "")
        abbreviation = f"{''.join(w[0] for w in region_en.split())}{initials}{series or ''}"
        names.append(name_en)
        org_rows.append(
            {
                "key": f"bench-{index:04d}",
                "names": {"en": name_en, "ru": f"{region_ru} {body_ru}"},
                "abbreviations": {"en": abbreviation},
                "aliases": [],
                "founded": str(rng.randrange(1950, 2015)),
                "founded_note": {},
                "headquarters": {"en": rng.choice(("Astana", "Baku", "Tashkent", "Geneva"))},
                "members": rng.randrange(3, 40),
                "members_note": {},
                "rotation": {"en": "Yearly, in alphabetical order"},
                "note": {},
                "sources": ["benchmark"],
                "updated_at": now,
            }
        )
    await _insert(database, Organisation, org_rows)
    async with database.sessions() as session:
        org_ids = dict(
            (
                await session.execute(
                    select(Organisation.key, Organisation.id).where(
                        Organisation.key.startswith("bench-")
                    )
                )
            ).all()
        )
    bulk_orgs = [(org_ids[row["key"]], row) for row in org_rows]

    chair_rows = []
    for org_id, _ in bulk_orgs:
        for year in (2024, 2025, 2026):
            chair_rows.append(
                {
                    "organisation_id": org_id,
                    "country": rng.choice(COUNTRIES),
                    "start_literal": f"{year}-01-01",
                    "starts_on": dt.date(year, 1, 1),
                    "end_literal": f"{year}-12-31",
                    "ends_on": dt.date(year, 12, 31),
                    "end_note": {},
                    "note": {},
                    "confidence": Confidence.MEDIUM,
                    "sources": ["benchmark"],
                }
            )
    await _insert(database, Chairmanship, chair_rows)

    # Events, spread over the years and organisations.
    event_rows = []
    years = range(scale.first_year, scale.last_year + 1)
    for index in range(scale.events):
        org_id, org = bulk_orgs[index % len(bulk_orgs)]
        year = rng.choice(years)
        kind, kind_en, kind_ru = rng.choice(KINDS)
        abbreviation = org["abbreviations"]["en"]
        title = {
            "en": f"{abbreviation} {kind_en} {year}",
            "ru": f"{org['names']['ru']}: {kind_ru} {year}",
        }
        start, end = _random_dates(rng, year)
        place = rng.choice(places)
        event_rows.append(
            _event_values(
                rng, f"{org['key']}-{year}-{index}", org_id, title, kind, start, end, place, now
            )
        )
    # The event every chat follows: an SCO summit two days ahead, at a time of day, so that
    # its reminders fall into the planning horizon and move when it is postponed.
    followed_key = "sco-bench-summit"
    followed_start = PartialDate.from_local(
        (now + dt.timedelta(days=1, hours=3)).replace(tzinfo=None, minute=0), Precision.TIME
    )
    followed = _event_values(
        rng,
        followed_key,
        sco_id,
        {"en": "SCO Benchmark Summit", "ru": "Саммит ШОС (бенчмарк)"},
        "summit",
        followed_start,
        None,
        (None, "KZ", "UTC"),
        now,
    )
    followed["status"] = EventStatus.CONFIRMED
    event_rows.append(followed)
    await _insert(database, Event, event_rows)
    async with database.sessions() as session:
        followed_id = await session.scalar(select(Event.id).where(Event.key == followed_key))
        bulk_event_ids = list(
            (await session.scalars(select(Event.id).where(Event.key.startswith("bench-")))).all()
        )
    assert followed_id is not None

    # Chats: mostly private, some groups and channels; each follows the SCO summit one way
    # or another, plus one or two bulk organisations or events.
    chat_rows = []
    subscription_rows: list[dict[str, Any]] = []
    private_ids = []
    for index in range(scale.chats):
        roll = rng.random()
        if roll < 0.9:
            chat_id, chat_type = 10_000_000 + index, ChatType.PRIVATE
            private_ids.append(chat_id)
        elif roll < 0.98:
            chat_id, chat_type = -1_000_000_000_000 - index, ChatType.SUPERGROUP
        else:
            chat_id, chat_type = -2_000_000_000_000 - index, ChatType.CHANNEL
        chat_rows.append(
            {
                "id": chat_id,
                "type": chat_type,
                # Returning users: a private chat's title is the name their updates carry.
                "title": BENCH_USER_NAME if chat_type is ChatType.PRIVATE else f"Chat {index}",
                "language": rng.choice(LANGUAGES),
                "timezone": rng.choice(CHAT_ZONES),
                "is_active": True,
                "lead_times": None if rng.random() < 0.8 else [1440, 60],
                "paused": False,
                "created_at": now - dt.timedelta(days=30),
                "updated_at": now - dt.timedelta(days=30),
            }
        )
        base: dict[str, Any] = {
            "chat_id": chat_id,
            "organisation_id": None,
            "event_id": None,
            "lead_times": None,
            "created_at": now - dt.timedelta(days=30),
        }
        follow = rng.random()
        if follow < 0.3:
            subscription_rows.append({**base, "scope": SubscriptionScope.ALL})
        elif follow < 0.8:
            subscription_rows.append(
                {**base, "scope": SubscriptionScope.ORGANISATION, "organisation_id": sco_id}
            )
        else:
            subscription_rows.append(
                {**base, "scope": SubscriptionScope.EVENT, "event_id": followed_id}
            )
        for org_id, _ in rng.sample(bulk_orgs, rng.choice((1, 1, 2))):
            subscription_rows.append(
                {**base, "scope": SubscriptionScope.ORGANISATION, "organisation_id": org_id}
            )
        if rng.random() < 0.3:
            subscription_rows.append(
                {
                    **base,
                    "scope": SubscriptionScope.EVENT,
                    "event_id": rng.choice(bulk_event_ids),
                    "lead_times": [1440],
                }
            )
    await _insert(database, Chat, chat_rows)
    await _insert(database, Subscription, subscription_rows)
    if not database.is_sqlite:
        # What autovacuum has done by the time a real bot is asked anything: statistics
        # for the planner and a visibility map (index-only scans, e.g. counting events).
        async with database.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM ANALYZE")

    async with database.sessions() as session:
        counts = [
            await session.scalar(select(func.count()).select_from(model))
            for model in (Organisation, Event, Chat, Subscription)
        ]
    return Seeded(
        organisations=int(counts[0] or 0),
        events=int(counts[1] or 0),
        chats=int(counts[2] or 0),
        subscriptions=int(counts[3] or 0),
        organisation_names=tuple(names),
        chat_ids=tuple(private_ids),
        followed_event_key=followed_key,
    )


# --- throwaway databases -------------------------------------------------------------


async def postgres_available(url: str = POSTGRES_URL) -> str | None:
    """None if PostgreSQL answers at ``url``, else why not."""
    if await seed_module.postgres_available(url):
        return None
    return f"PostgreSQL at {make_url(url).render_as_string()} unreachable"


@contextlib.asynccontextmanager
async def throwaway_database(backend: str, label: str) -> AsyncIterator[str]:
    """A new, empty database URL for one run; removed afterwards (``bench.seed``)."""
    with tempfile.TemporaryDirectory(prefix=f"summitbot-bench-{label}-") as directory:
        async with seed_module.fresh_database(backend, directory, POSTGRES_URL) as url:
            yield url
