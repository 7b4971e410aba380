"""Importing data files into the database, all or nothing, and loading the bundled
dataset on start.

An import checks every row (storage/datafile.py) and every reference, in the files
or already in the database; nothing is written unless there are no problems. Rows
are matched by their keys, so importing a newer file updates rows in place and never
duplicates them. A changed event is logged (who, when, old, new), its followers are
notified once, and its reminders re-planned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Database
from storage.datafile import (
    RECURRENCES,
    SECTIONS,
    Dataset,
    DatasetError,
    Problem,
    dataset_files,
    parse_text,
    read_files,
)
from storage.dates import InvalidDate, PartialDate, Precision, Span
from storage.models import (
    Chairmanship,
    Event,
    EventChange,
    EventStatus,
    Meta,
    Organisation,
    Place,
)
from storage.notices import plan_change_notices, plan_new_event_notices
from storage.planning import Planner

BUNDLED_DIGEST_KEY = "bundled_dataset_digest"
CATALOGUE_VERSION_KEY = "catalogue_version"


# ---------------------------------------------------------------------------
# Checking references and writing


@dataclass
class ImportReport:
    """What an import did, by section: keys added and keys changed."""

    added: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in SECTIONS})
    changed: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in SECTIONS})
    unchanged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SECTIONS, 0))
    # Changes of date, place or status that followers are told about.
    event_changes: list[EventChange] = field(default_factory=list)
    # Events whose reminders must be planned again (added or changed).
    touched_event_ids: list[int] = field(default_factory=list)
    # New events: followers of their organisation are told.
    added_event_ids: list[int] = field(default_factory=list)
    # Events that only moved in time (same organisation, precision and recurrence, still not
    # cancelled or still cancelled),
    # with where they started before: their pending reminders can move along in place.
    moved_events: dict[int, dt.datetime] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not any(self.added.values()) and not any(self.changed.values())

    def summary(self) -> str:
        parts = []
        for section in SECTIONS:
            added, changed = len(self.added[section]), len(self.changed[section])
            parts.append(
                f"{section}: {added} added, {changed} changed, {self.unchanged[section]} unchanged"
            )
        return "; ".join(parts)


def _check_duplicates(dataset: Dataset) -> list[Problem]:
    problems: list[Problem] = []
    keyed: list[tuple[str, Any]] = [
        ("places", lambda row: row.key),
        ("organisations", lambda row: row.key),
        ("events", lambda row: row.id),
        ("chairmanships", lambda row: (row.organisation, row.country, _literal(row.start))),
    ]
    for section, key_of in keyed:
        seen: dict[Any, tuple[str, int]] = {}
        for index, row in enumerate(getattr(dataset, section)):
            key = key_of(row)
            if key in seen:
                first_file, first_line = seen[key]
                file, line = dataset.origin(section, index)
                shown = key if isinstance(key, str) else " ".join(k for k in key if k)
                problems.append(
                    Problem(
                        file, line, f"{shown} appears twice (first at {first_file}:{first_line})"
                    )
                )
            else:
                seen[key] = dataset.origin(section, index)
    return problems


def _literal(value: PartialDate | None) -> str:
    return value.literal if value is not None else ""


async def _existing_keys(session: AsyncSession, column: Any) -> set[str]:
    return set((await session.scalars(select(column))).all())


async def check_references(session: AsyncSession, dataset: Dataset) -> list[Problem]:
    """Problems with references between rows, in the files or already in the database."""
    problems = _check_duplicates(dataset)
    places = {row.key: row for row in dataset.places}
    known_places = (
        await _existing_keys(session, Place.key) | set(places) | dataset.failed_keys["places"]
    )
    known_orgs = (
        await _existing_keys(session, Organisation.key)
        | {row.key for row in dataset.organisations}
        | dataset.failed_keys["organisations"]
    )

    for index, chair in enumerate(dataset.chairmanships):
        file, line = dataset.origin("chairmanships", index)
        if chair.organisation not in known_orgs:
            problems.append(Problem(file, line, f"unknown organisation {chair.organisation!r}"))
        if chair.start and chair.end and chair.end.last_day < chair.start.first_day:
            problems.append(Problem(file, line, "the end is before the start"))

    for index, event in enumerate(dataset.events):
        file, line = dataset.origin("events", index)
        if event.organisation is not None and event.organisation not in known_orgs:
            problems.append(Problem(file, line, f"unknown organisation {event.organisation!r}"))
        if event.place is not None and event.place not in known_places:
            problems.append(Problem(file, line, f"unknown place {event.place!r}"))
        if event.start.precision is Precision.TIME and event.place is None and not event.timezone:
            problems.append(
                Problem(file, line, "an event with a time of day needs a place or a timezone")
            )
        try:
            Span(event.start, event.end, None).check()
        except InvalidDate as exc:
            problems.append(Problem(file, line, str(exc)))
    return problems


def _assign(row: Any, values: dict[str, Any]) -> bool:
    """Set attributes that differ; whether anything changed."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _upsert(
    session: AsyncSession,
    report: ImportReport,
    section: str,
    existing: dict[Any, Any],
    key: Any,
    label: str,
    factory: type,
    values: dict[str, Any],
) -> Any:
    row = existing.get(key)
    if row is None:
        row = factory(**values)
        session.add(row)
        existing[key] = row
        report.added[section].append(label)
    elif _assign(row, values):
        report.changed[section].append(label)
    else:
        report.unchanged[section] += 1
    return row


async def apply_dataset(
    session: AsyncSession, dataset: Dataset, changed_by: str = "import"
) -> ImportReport:
    """Write checked rows, matching existing ones by key. Never commits.

    Raises :class:`DatasetError` (before writing anything) if references are broken.
    """
    problems = await check_references(session, dataset)
    if problems:
        raise DatasetError(problems)
    report = ImportReport()

    places = {row.key: row for row in (await session.scalars(select(Place))).all()}
    for place in dataset.places:
        _upsert(
            session,
            report,
            "places",
            places,
            place.key,
            place.key,
            Place,
            place.model_dump(),
        )

    organisations = {row.key: row for row in (await session.scalars(select(Organisation))).all()}
    for org in dataset.organisations:
        values = org.model_dump(exclude={"founded", "rotation_rule", "checked"})
        values["founded"] = _literal(org.founded) or None
        values["rotation_rule"] = org.rotation_rule.to_json() if org.rotation_rule else None
        values["checked_on"] = org.checked
        _upsert(
            session, report, "organisations", organisations, org.key, org.key, Organisation, values
        )
    await session.flush()

    chairs = {
        (row.organisation_id, row.country, row.start_literal): row
        for row in (await session.scalars(select(Chairmanship))).all()
    }
    for chair in dataset.chairmanships:
        org_row = organisations[chair.organisation]
        values = {
            "organisation_id": org_row.id,
            "country": chair.country,
            "start_literal": _literal(chair.start),
            "starts_on": chair.start.first_day if chair.start else None,
            "end_literal": _literal(chair.end),
            "ends_on": chair.end.last_day if chair.end else None,
            "end_note": chair.end_note,
            "note": chair.note,
            "confidence": chair.confidence,
            "sources": chair.sources,
            "checked_on": chair.checked,
        }
        label = f"{chair.organisation} {chair.country} {_literal(chair.start)}".strip()
        key = (org_row.id, chair.country, values["start_literal"])
        _upsert(session, report, "chairmanships", chairs, key, label, Chairmanship, values)

    # Only the events in the files: an operator's edit of one event must not load them all.
    keys = [event.id for event in dataset.events]
    events: dict[str, Event] = {}
    for start in range(0, len(keys), 500):
        found = await session.scalars(select(Event).where(Event.key.in_(keys[start : start + 500])))
        events.update((row.key, row) for row in found)
    place_keys = {row.id: key for key, row in places.items()}
    touched: list[Event] = []
    added: list[Event] = []
    for event in dataset.events:
        place_row = places.get(event.place) if event.place else None
        zone = event.timezone or (place_row.timezone if place_row else None)
        span = Span(event.start, event.end, zone)
        values = {
            "key": event.id,
            "organisation_id": organisations[event.organisation].id if event.organisation else None,
            "kind": event.kind,
            "title": event.title,
            "place_id": place_row.id if place_row else None,
            "location_text": event.location,
            "online": event.online,
            "country": event.country or (place_row.country if place_row else None),
            "timezone": zone,
            "date_precision": event.start.precision,
            "start_local": span.start_local,
            "starts_at": span.starts_at,
            "end_precision": event.end.precision if event.end else None,
            "end_local": span.end_local,
            "ends_at": span.ends_at,
            "status": event.status,
            "recurrence": RECURRENCES[event.recurrence] if event.recurrence else None,
            "note": event.note,
            "confidence": event.confidence,
            "sources": event.sources,
            "checked_on": event.checked,
        }
        existing = events.get(event.id)
        before = event_snapshot(existing, place_keys) if existing is not None else None
        planned_as = _planning_fields(existing) if existing is not None else None
        row = _upsert(session, report, "events", events, event.id, event.id, Event, values)
        if before is None:
            touched.append(row)
            added.append(row)
            continue
        after = event_snapshot(row, place_keys)
        if after != before:
            row.revision += 1
            change = EventChange(
                event_id=row.id, revision=row.revision, changed_by=changed_by, old=before, new=after
            )
            session.add(change)
            report.event_changes.append(change)
            touched.append(row)
            if planned_as is not None and _planning_fields(row)[1:] == planned_as[1:]:
                report.moved_events[row.id] = planned_as[0]
        elif event.id in report.changed["events"]:
            touched.append(row)  # e.g. a new title: nothing to announce, reminders re-rendered
    await session.flush()
    report.touched_event_ids = [row.id for row in touched]
    report.added_event_ids = [row.id for row in added]
    if not report.is_empty:
        await _new_catalogue_version(session)
    return report


async def _new_catalogue_version(session: AsyncSession) -> None:
    # A random value, not a counter: two concurrent writers still leave a value that
    # differs from what either saw before, so every replica's reply cache notices.
    version = secrets.token_hex(8)
    stored = await session.get(Meta, CATALOGUE_VERSION_KEY)
    if stored is None:
        session.add(Meta(key=CATALOGUE_VERSION_KEY, value=version))
    else:
        stored.value = version


async def catalogue_version(session: AsyncSession) -> str:
    """Changes whenever places, organisations, chairs or events change (any process)."""
    stored = await session.get(Meta, CATALOGUE_VERSION_KEY)
    return stored.value if stored is not None else ""


def _planning_fields(event: Event) -> tuple[Any, ...]:
    """What reminders of an event depend on: its start first, then what decides who
    follows it and how it is reminded."""
    return (
        event.starts_at,
        event.organisation_id,
        event.date_precision,
        event.recurrence,
        EventStatus(event.status) is EventStatus.CANCELLED,  # postponed ones are reminded
    )


def event_snapshot(event: Event, place_keys: dict[int, str]) -> dict[str, Any]:
    """An event's fields as the change log records them (old and new)."""
    return {
        "start": PartialDate.from_local(event.start_local, event.date_precision).literal,
        "end": (
            PartialDate.from_local(event.end_local, event.end_precision).literal
            if event.end_local is not None and event.end_precision is not None
            else None
        ),
        "timezone": event.timezone,
        "place": place_keys.get(event.place_id) if event.place_id else None,
        "location": event.location_text,
        "online": event.online,
        "status": EventStatus(event.status).value,
        "title": dict(event.title),
        "note": dict(event.note),
        "sources": list(event.sources),
        # An operator's "checked today" is an edit like any other: logged, so that a
        # source's next poll sees someone else changed the event last (storage.sources).
        "checked": event.checked_on.isoformat() if event.checked_on else None,
    }


# What followers are told about: a change of title, note, sources, the location in words
# or the day it was checked is logged, not announced.
NOTICE_FIELDS = ("start", "end", "timezone", "place", "online", "status")


def is_news(change: EventChange) -> bool:
    """Whether a logged change is one followers get a notice of."""
    return any(change.old.get(f) != change.new.get(f) for f in NOTICE_FIELDS)


async def import_files(
    session: AsyncSession, paths: Sequence[Path], changed_by: str = "import"
) -> ImportReport:
    """Read, check and write data files, all or nothing. Never commits.

    Raises :class:`DatasetError` listing every problem with its file and line.
    """
    dataset, problems = read_files(paths)
    if problems:
        raise DatasetError([*problems, *await check_references(session, dataset)])
    return await apply_dataset(session, dataset, changed_by)


async def import_text(
    session: AsyncSession, text: str, name: str, changed_by: str = "import"
) -> ImportReport:
    """Like :func:`import_files` for a file's text (e.g. a document sent to the bot)."""
    dataset, problems = parse_text(text, name)
    if problems:
        raise DatasetError([*problems, *await check_references(session, dataset)])
    return await apply_dataset(session, dataset, changed_by)


async def follow_up_import(
    session: AsyncSession, report: ImportReport, now: dt.datetime, planner: Planner
) -> None:
    """Tell followers about changed events and re-plan their reminders. Never commits."""
    for change in report.event_changes:
        event = await session.get(Event, change.event_id)
        if event is not None and is_news(change):
            await plan_change_notices(session, change, event, now)
    for event_id in report.added_event_ids:
        event = await session.get(Event, event_id)
        if event is not None:
            await plan_new_event_notices(session, event, now)
    if report.touched_event_ids:
        await planner.replan(
            session, now, event_ids=report.touched_event_ids, moved=report.moved_events
        )


def digest_of(paths: Sequence[Path]) -> str:
    """A digest of the files' names and contents, to notice a newer bundled dataset."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


async def sync_bundled_dataset(session: AsyncSession, directory: Path) -> ImportReport | None:
    """Import the bundled dataset if it changed since the last start. Never commits.

    Returns None when the database already has this version.
    """
    paths = dataset_files(directory)
    digest = digest_of(paths)
    stored = await session.get(Meta, BUNDLED_DIGEST_KEY)
    if stored is not None and stored.value == digest:
        return None
    report = await import_files(session, paths, changed_by="bundled dataset")
    if stored is None:
        session.add(Meta(key=BUNDLED_DIGEST_KEY, value=digest))
    else:
        stored.value = digest
    return report


async def prepare_database(
    database: Database, dataset_dir: Path, now: dt.datetime | None = None
) -> ImportReport | None:
    """Migrate the schema and load the bundled dataset if it is new or changed.

    Every entry point calls this first, so a new machine needs no set-up step.
    """
    async with database.setup_lock():
        await database.upgrade()
        async with database.transaction() as session:
            report = await sync_bundled_dataset(session, dataset_dir)
            if report is not None:
                await follow_up_import(session, report, now or dt.datetime.now(dt.UTC), Planner())
            return report
