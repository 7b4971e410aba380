"""The data files people edit: reading and checking them, importing them, exporting them.

A data file is YAML with any of the sections ``places``, ``organisations``,
``chairmanships`` and ``events`` (docs/data-files.md documents every field). An import
is all or nothing: every problem in every file is reported with its file and
line, and nothing is written unless there are none. Rows are matched by their
keys, so importing a newer file updates rows in place and never duplicates them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from babel import Locale
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.database import Database
from storage.dates import InvalidDate, PartialDate, Precision, Span, validate_zone
from storage.models import (
    Chairmanship,
    Confidence,
    Event,
    EventChange,
    EventStatus,
    Meta,
    Organisation,
    Place,
)
from storage.notices import plan_change_notices, plan_new_event_notices
from storage.planning import Planner
from storage.rotation import RotationRule

MAX_FILE_BYTES = 5 * 1024 * 1024
SECTIONS = ("places", "organisations", "chairmanships", "events")
RECURRENCES = {"yearly": "FREQ=YEARLY"}
EVENT_KINDS = (
    "summit",
    "informal_summit",
    "ministerial",
    "assembly",
    "congress",
    "forum",
    "session",
    "meeting",
    "observance",
)
FILE_CHECKED_KEY = "checked"
BUNDLED_DIGEST_KEY = "bundled_dataset_digest"
CATALOGUE_VERSION_KEY = "catalogue_version"
_SLUG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


# ---------------------------------------------------------------------------
# YAML with line numbers


class _DatasetLoader(yaml.SafeLoader):
    """Safe YAML in which dates stay strings: ``2024-07`` and ``2024-07-03`` read alike."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # PyYAML keeps the last of two equal keys; a second `events:` would silently win.
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"{key!r} appears twice (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


# Dates stay strings, and only true/false are booleans (YAML 1.1 reads NO, Norway, as false).
_DatasetLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_DatasetLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _DatasetDumper(yaml.SafeDumper):
    """Writes dates unquoted, as people write them."""


_DatasetDumper.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in _DatasetLoader.yaml_implicit_resolvers.items()
}
# Strings such as "NO" or "yes" need no quotes for the loader above, but other YAML
# readers would take them for booleans: keep quoting them.
_DatasetDumper.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N)$"),
    list("yYnNoO"),
)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a data file, where it is and what to do."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class DatasetError(Exception):
    """The data files have problems; nothing was written."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


def _node_line(node: yaml.Node | None, loc: Sequence[int | str]) -> int:
    """The 1-based line of the value at ``loc`` in a composed YAML tree."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def _key_line(root: yaml.Node | None, key: Any) -> int:
    """The 1-based line of a top-level key."""
    if isinstance(root, yaml.MappingNode):
        for key_node, _ in root.value:
            if key_node.value == key:
                return int(key_node.start_mark.line) + 1
    return 1


# ---------------------------------------------------------------------------
# Rows as written in the files


def _as_text(value: Any) -> Any:
    # A plain string is English; a mapping is {language: text}.
    if value is None:
        return {}
    if isinstance(value, str):
        return {"en": value}
    return value


def _check_text(value: dict[str, str]) -> dict[str, str]:
    for language, text in value.items():
        if not _LANGUAGE.match(language):
            raise ValueError(f"{language!r} is not a language code (en, ru, kk, zh, ar…)")
        if not text.strip():
            raise ValueError(f"the {language} text is empty")
    return {language: text.strip() for language, text in value.items()}


def _parse_date(value: Any) -> Any:
    if value is None or isinstance(value, PartialDate):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("a date is written 2024-07-03, 2024-07, 2024 or 2024-07-03T10:00")
    try:
        return PartialDate.parse(value)
    except InvalidDate as exc:
        raise ValueError(str(exc)) from exc


def _check_slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(f"{value!r} must be lowercase letters, digits and dashes (e.g. sco-2024)")
    return value


def _check_country(value: str) -> str:
    code = value.upper()
    if len(code) != 2 or code not in Locale("en").territories:
        raise ValueError(f"{value!r} is not an ISO 3166 country code (e.g. KZ)")
    return code


def _check_zone(value: str) -> str:
    try:
        return validate_zone(value)
    except InvalidDate as exc:
        raise ValueError(str(exc)) from exc


def _parse_checked(value: Any) -> Any:
    """A day: ``checked: 2026-12-06`` (YAML reads it as a date; a string is read too)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        found = PartialDate.parse(value)
    except InvalidDate as exc:
        raise ValueError(str(exc)) from None
    if found.precision is not Precision.DAY:
        raise ValueError(f"{value!r}: checked is a day, e.g. 2026-12-06")
    return found.first_day


def _parse_rule(value: Any) -> Any:
    if isinstance(value, RotationRule):
        return value
    return RotationRule.parse(value, EVENT_KINDS)


Text = Annotated[dict[str, str], BeforeValidator(_as_text), AfterValidator(_check_text)]
CheckedField = Annotated[dt.date, BeforeValidator(_parse_checked)]
RuleField = Annotated[RotationRule, BeforeValidator(_parse_rule)]
RequiredText = Annotated[Text, Field(min_length=1)]
DateField = Annotated[PartialDate, BeforeValidator(_parse_date)]
Slug = Annotated[str, Field(min_length=1, max_length=40), BeforeValidator(str)]
OrganisationKey = Annotated[str, Field(min_length=1, max_length=32), BeforeValidator(str)]
Country = Annotated[str, BeforeValidator(str)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class PlaceRow(_Row):
    key: Slug
    names: RequiredText
    country: Country
    timezone: str

    _key = field_validator("key")(_check_slug)
    _country = field_validator("country")(_check_country)
    _zone = field_validator("timezone")(_check_zone)


class OrganisationRow(_Row):
    key: OrganisationKey
    names: RequiredText
    abbreviations: Text = {}
    aliases: list[Annotated[str, Field(min_length=1, max_length=100)]] = []
    founded: DateField | None = None
    founded_note: Text = {}
    headquarters: Text = {}
    members: Annotated[int, Field(ge=0)] | None = None
    members_note: Text = {}
    rotation: Text = {}
    rotation_rule: RuleField | None = None
    note: Text = {}
    sources: list[str] = []
    checked: CheckedField | None = None

    _key = field_validator("key")(_check_slug)


class ChairmanshipRow(_Row):
    organisation: Slug
    country: Country
    start: DateField | None = None
    end: DateField | None = None
    end_note: Text = {}
    note: Text = {}
    confidence: Confidence = Confidence.MEDIUM
    sources: list[str] = []
    checked: CheckedField | None = None

    _country = field_validator("country")(_check_country)


class EventRow(_Row):
    id: Slug
    organisation: Slug | None = None
    kind: Literal[EVENT_KINDS] = "summit"  # type: ignore[valid-type]
    title: RequiredText
    place: Slug | None = None
    online: bool = False
    country: Country | None = None
    timezone: str | None = None
    start: DateField
    end: DateField | None = None
    status: EventStatus = EventStatus.PLANNED
    recurrence: Literal["yearly"] | None = None
    note: Text = {}
    confidence: Confidence = Confidence.MEDIUM
    sources: list[str] = []
    checked: CheckedField | None = None

    _id = field_validator("id")(_check_slug)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else _check_zone(value)

    @field_validator("country")
    @classmethod
    def _country_code(cls, value: str | None) -> str | None:
        return None if value is None else _check_country(value)


_ROW_MODELS: dict[str, type[_Row]] = {
    "places": PlaceRow,
    "organisations": OrganisationRow,
    "chairmanships": ChairmanshipRow,
    "events": EventRow,
}
# The key that names a row of each section, for references to rows that failed.
_ROW_KEYS = {"places": "key", "organisations": "key", "events": "id"}


@dataclass
class Dataset:
    """Checked rows from one or more files, with where each row came from."""

    places: list[PlaceRow] = field(default_factory=list)
    organisations: list[OrganisationRow] = field(default_factory=list)
    chairmanships: list[ChairmanshipRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    # (section, index within the section) -> (file, line)
    origins: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    # Keys of rows that had problems: references to them are not reported again.
    failed_keys: dict[str, set[str]] = field(default_factory=lambda: {s: set() for s in SECTIONS})

    def origin(self, section: str, index: int) -> tuple[str, int]:
        return self.origins.get((section, index), ("?", 1))


def _format_error(error: Any) -> str:
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown field {error['loc'][-1]!r}"
    if error["type"] == "missing":
        return f"missing field {error['loc'][-1]!r}"
    if error["type"] == "literal_error" and error["loc"]:
        return f"{error['loc'][-1]}: {message}"
    field_name = next((str(part) for part in reversed(error["loc"]) if isinstance(part, str)), "")
    return f"{field_name}: {message}" if field_name else message


def parse_text(text: str, name: str) -> tuple[Dataset, list[Problem]]:
    """Read one data file's text. Returns the rows and the problems found."""
    problems: list[Problem] = []
    if len(text.encode()) > MAX_FILE_BYTES:
        return Dataset(), [Problem(name, 1, f"the file is larger than {MAX_FILE_BYTES} bytes")]
    try:
        for yaml_event in yaml.parse(text, Loader=_DatasetLoader):
            if isinstance(yaml_event, yaml.AliasEvent):
                line = yaml_event.start_mark.line + 1 if yaml_event.start_mark else 1
                return Dataset(), [Problem(name, line, "YAML aliases (*name) are not allowed")]
        loader = _DatasetLoader(text)
        try:
            root = loader.get_single_node()
            raw = loader.construct_document(root) if root is not None else {}
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        return Dataset(), [Problem(name, line, f"not valid YAML: {reason}")]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return Dataset(), [Problem(name, 1, f"expected the sections {', '.join(SECTIONS)}")]
    dataset = Dataset()
    # ``checked:`` at the top: the day every row of the file without its own was checked.
    default_checked = None
    if FILE_CHECKED_KEY in raw:
        try:
            default_checked = _parse_checked(raw.pop(FILE_CHECKED_KEY))
        except ValueError as exc:
            problems.append(Problem(name, _key_line(root, FILE_CHECKED_KEY), str(exc)))
    for section, rows in raw.items():
        if section not in _ROW_MODELS:
            known = ", ".join(SECTIONS)
            line = _key_line(root, section)
            problems.append(Problem(name, line, f"unknown section {section!r} ({known})"))
            continue
        if rows is None:
            continue
        if not isinstance(rows, list):
            problems.append(
                Problem(name, _node_line(root, (section,)), f"{section}: expected a list")
            )
            continue
        for index, row in enumerate(rows):
            line = _node_line(root, (section, index))
            try:
                valid = _ROW_MODELS[section].model_validate(row)
            except ValidationError as exc:
                for error in exc.errors():
                    loc = (section, index, *error["loc"])
                    problems.append(Problem(name, _node_line(root, loc), _format_error(error)))
                key_field = _ROW_KEYS.get(section)
                if key_field and isinstance(row, dict) and row.get(key_field) is not None:
                    dataset.failed_keys[section].add(str(row[key_field]))
                continue
            if default_checked is not None and getattr(valid, "checked", False) is None:
                valid = valid.model_copy(update={"checked": default_checked})
            target = getattr(dataset, section)
            dataset.origins[(section, len(target))] = (name, line)
            target.append(valid)
    return dataset, problems


def _merge(datasets: Iterable[Dataset]) -> Dataset:
    merged = Dataset()
    for dataset in datasets:
        for section in SECTIONS:
            rows = getattr(merged, section)
            for index, row in enumerate(getattr(dataset, section)):
                merged.origins[(section, len(rows))] = dataset.origin(section, index)
                rows.append(row)
            merged.failed_keys[section] |= dataset.failed_keys[section]
    return merged


def read_files(paths: Sequence[Path]) -> tuple[Dataset, list[Problem]]:
    """Read and check the files on their own (references are checked on import)."""
    datasets: list[Dataset] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                problems.append(Problem(str(path), 1, f"larger than {MAX_FILE_BYTES} bytes"))
                continue
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(path), 1, f"cannot read the file: {exc}"))
            continue
        dataset, found = parse_text(text, str(path))
        datasets.append(dataset)
        problems.extend(found)
    return _merge(datasets), problems


def dataset_files(directory: Path) -> list[Path]:
    """The data files of a directory, in a stable order."""
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


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
        "online": event.online,
        "status": EventStatus(event.status).value,
        "title": dict(event.title),
        "note": dict(event.note),
        "sources": list(event.sources),
    }


# What followers are told about: a change of title, note or sources is logged, not announced.
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
    body = yaml.dump(
        document, Dumper=_DatasetDumper, allow_unicode=True, sort_keys=False, width=100
    )
    return header + body
