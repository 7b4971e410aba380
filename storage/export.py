"""The database as a data file: ``summitbot export``, and an event as the row a data
file would write (what operators' edits start from). Importing an export gives back
the same data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.datafile import RECURRENCES, DatasetDumper, EventRow
from storage.dates import PartialDate, Precision
from storage.models import (
    Chairmanship,
    Event,
    Organisation,
    Place,
)

# ---------------------------------------------------------------------------
# Export


def _text_out(value: dict[str, str]) -> Any:
    if not value:
        return None
    if set(value) == {"en"}:
        return value["en"]
    return dict(value)


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    # Leave out empty optional fields, as a person would.
    return {name: value for name, value in values.items() if value not in (None, [], {}, "")}


def _local_literal(local: dt.datetime | None, precision: Precision | None) -> str | None:
    if local is None or precision is None:
        return None
    return PartialDate.from_local(local, precision).literal


def event_to_row(event: Event, organisation_key: str | None, place: Place | None) -> EventRow:
    """An event as a data file writes it (the same fields ``summitbot export`` writes).

    Country and time zone are left to the place when they are the place's, so a new
    place brings its own.
    """
    recurrence_names = {rule: name for name, rule in RECURRENCES.items()}
    values: dict[str, Any] = {
        "id": event.key,
        "organisation": organisation_key,
        "kind": event.kind,
        "title": dict(event.title),
        "place": place.key if place else None,
        "location": event.location_text,
        "online": event.online,
        "country": event.country if place is None or place.country != event.country else None,
        "timezone": (event.timezone if place is None or place.timezone != event.timezone else None),
        "start": PartialDate.from_local(event.start_local, event.date_precision),
        "end": (
            PartialDate.from_local(event.end_local, event.end_precision)
            if event.end_local is not None and event.end_precision is not None
            else None
        ),
        "status": event.status,
        "recurrence": recurrence_names.get(event.recurrence or ""),
        "note": dict(event.note),
        "confidence": event.confidence,
        "sources": list(event.sources),
        "checked": event.checked_on,
    }
    return EventRow.model_validate(values)


async def export_dataset(session: AsyncSession) -> str:
    """Everything in the database as one data file (the same format as the imports)."""
    places = (await session.scalars(select(Place).order_by(Place.key))).all()
    orgs = (await session.scalars(select(Organisation).order_by(Organisation.key))).all()
    org_keys = {org.id: org.key for org in orgs}
    place_keys = {place.id: place for place in places}
    chairs = (
        await session.scalars(
            select(Chairmanship)
            .join(Chairmanship.organisation)
            .order_by(Organisation.key, Chairmanship.starts_on, Chairmanship.country)
        )
    ).all()
    events = (await session.scalars(select(Event).order_by(Event.starts_at, Event.key))).all()

    document: dict[str, Any] = {
        "places": [
            {
                "key": place.key,
                "names": _text_out(place.names),
                "country": place.country,
                "timezone": place.timezone,
            }
            for place in places
        ],
        "organisations": [
            _compact(
                {
                    "key": org.key,
                    "names": _text_out(org.names),
                    "abbreviations": _text_out(org.abbreviations),
                    "aliases": list(org.aliases),
                    "founded": org.founded,
                    "founded_note": _text_out(org.founded_note),
                    "headquarters": _text_out(org.headquarters),
                    "members": org.members,
                    "members_note": _text_out(org.members_note),
                    "rotation": _text_out(org.rotation),
                    "rotation_rule": org.rotation_rule,
                    "note": _text_out(org.note),
                    "sources": list(org.sources),
                    "checked": org.checked_on,
                }
            )
            for org in orgs
        ],
        "chairmanships": [
            _compact(
                {
                    "organisation": org_keys[chair.organisation_id],
                    "country": chair.country,
                    "start": chair.start_literal,
                    "end": chair.end_literal,
                    "end_note": _text_out(chair.end_note),
                    "note": _text_out(chair.note),
                    "confidence": chair.confidence.value,
                    "sources": list(chair.sources),
                    "checked": chair.checked_on,
                }
            )
            for chair in chairs
        ],
        "events": [],
    }
    for event in events:
        place = place_keys.get(event.place_id) if event.place_id else None
        org_key = org_keys.get(event.organisation_id) if event.organisation_id else None
        row = event_to_row(event, org_key, place)
        document["events"].append(
            _compact(
                {
                    "id": row.id,
                    "organisation": row.organisation,
                    "kind": row.kind,
                    "title": _text_out(row.title),
                    "place": row.place,
                    "location": row.location,
                    "online": row.online or None,
                    "country": row.country,
                    "timezone": row.timezone,
                    "start": row.start.literal,
                    "end": row.end.literal if row.end else None,
                    "status": row.status.value,
                    "recurrence": row.recurrence,
                    "note": _text_out(row.note),
                    "confidence": row.confidence.value,
                    "sources": list(row.sources),
                    "checked": row.checked,
                }
            )
        )
    header = "# summitbot data file, exported. Import it with: summitbot import FILE\n"
    body = yaml.dump(document, Dumper=DatasetDumper, allow_unicode=True, sort_keys=False, width=100)
    return header + body
