"""Reading a time zone the way people give one: an IANA name, a city, an offset, a location.

Cities come from ``config/cities.yaml`` (about 200 major cities with names in
the five languages and coordinates), so everything works offline.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

import yaml
from rapidfuzz import fuzz, process

from storage.search import normalise

CITIES_FILE = Path(__file__).resolve().parent.parent / "config" / "cities.yaml"
_OFFSET = re.compile(r"^(?:utc|gmt)?\s*([+\-−])\s*(\d{1,2})(?:[:.]?(\d{2}))?$")
MAX_OFFSET_MINUTES = 14 * 60


@dataclass(frozen=True)
class City:
    names: dict[str, str]
    aliases: tuple[str, ...]
    country: str
    lat: float
    lon: float
    timezone: str

    def name(self, language: str) -> str:
        return self.names.get(language) or self.names["en"]


@dataclass(frozen=True)
class ZoneChoice:
    """A time zone chosen from what a person typed, and how it was recognised."""

    zone: str
    city: City | None = None


@functools.cache
def cities(path: Path = CITIES_FILE) -> tuple[City, ...]:
    """The bundled cities (read once)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(
        City(
            names={str(k): str(v) for k, v in entry["names"].items()},
            aliases=tuple(str(a) for a in entry.get("aliases") or ()),
            country=str(entry["country"]),
            lat=float(entry["lat"]),
            lon=float(entry["lon"]),
            timezone=str(entry["timezone"]),
        )
        for entry in raw["cities"]
    )


@functools.cache
def _zones_by_lower_name() -> dict[str, str]:
    return {name.casefold(): name for name in zoneinfo.available_timezones()}


@functools.cache
def _city_index() -> dict[str, City]:
    index: dict[str, City] = {}
    for city in cities():
        for name in (*city.names.values(), *city.aliases):
            index.setdefault(normalise(name), city)
    return index


def zone_for_offset(minutes: int, now: dt.datetime) -> str | None:
    """A zone that is ``minutes`` ahead of UTC (fixed ``Etc/GMT`` zones for whole hours)."""
    if abs(minutes) > MAX_OFFSET_MINUTES:
        return None
    if minutes % 60 == 0:
        hours = minutes // 60
        # POSIX sign convention: Etc/GMT-5 is five hours *ahead* of UTC.
        return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"
    for city in cities():  # e.g. +05:30 → India, +05:45 → Nepal
        offset = now.astimezone(zoneinfo.ZoneInfo(city.timezone)).utcoffset()
        if offset is not None and offset == dt.timedelta(minutes=minutes):
            return city.timezone
    return None


def resolve_timezone(text: str, now: dt.datetime) -> ZoneChoice | None:
    """``Asia/Almaty``, ``Алматы``, ``北京``, ``UTC+5``, ``+05:30``; None if not understood."""
    text = text.strip()
    if not text:
        return None
    zone = _zones_by_lower_name().get(text.casefold().replace(" ", "_"))
    if zone is not None:
        return ZoneChoice(zone)
    if match := _OFFSET.match(text.casefold()):
        sign = -1 if match[1] in "-−" else 1
        minutes = sign * (int(match[2]) * 60 + int(match[3] or 0))
        found = zone_for_offset(minutes, now)
        return ZoneChoice(found) if found else None
    city = _city_index().get(normalise(text))
    if city is None:
        best = process.extractOne(
            normalise(text), list(_city_index()), scorer=fuzz.ratio, score_cutoff=80
        )
        city = _city_index()[best[0]] if best else None
    return ZoneChoice(city.timezone, city) if city else None


def city_suggestions(text: str, language: str, limit: int = 3) -> list[str]:
    found = process.extract(
        normalise(text), list(_city_index()), scorer=fuzz.WRatio, score_cutoff=60, limit=10
    )
    names: list[str] = []
    for key, _, _ in found:
        name = _city_index()[key].name(language)
        if name not in names:
            names.append(name)
    return names[:limit]


def nearest_city(lat: float, lon: float) -> City:
    """The bundled city closest to a shared location (great-circle distance)."""

    def distance(city: City) -> float:
        p1, p2 = math.radians(lat), math.radians(city.lat)
        dp, dl = p2 - p1, math.radians(city.lon - lon)
        a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        return 2 * math.asin(min(1.0, math.sqrt(a)))

    return min(cities(), key=distance)


def offset_label(zone: str, now: dt.datetime) -> str:
    """ "UTC+05:00" for the zone at ``now``."""
    offset = now.astimezone(zoneinfo.ZoneInfo(zone)).utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
