"""Data files as people write them: reading YAML with line numbers, and checking
every row.

A data file is YAML with any of the sections ``places``, ``organisations``,
``chairmanships`` and ``events`` (docs/data-files.md documents every field), and
optionally ``checked:``, the day its facts were last checked. Every problem is
reported with its file and line; references between rows are checked on import
(storage/dataset.py), against the database too.
"""

from __future__ import annotations

import datetime as dt
import re
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

from storage.dates import InvalidDate, PartialDate, Precision, validate_zone
from storage.models import (
    MAX_LOCATION,
    Confidence,
    EventStatus,
)
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


class DatasetDumper(yaml.SafeDumper):
    """Writes dates unquoted, as people write them."""


DatasetDumper.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in _DatasetLoader.yaml_implicit_resolvers.items()
}
# Strings such as "NO" or "yes" need no quotes for the loader above, but other YAML
# readers would take them for booleans: keep quoting them.
DatasetDumper.add_implicit_resolver(
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
    # Where it is in words, when no known place names it (a feed's LOCATION); a place wins.
    location: Annotated[str, Field(min_length=1, max_length=MAX_LOCATION)] | None = None
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

    @field_validator("location", mode="before")
    @classmethod
    def _one_line(cls, value: Any) -> Any:
        # Blank is none; inner runs of white space (a feed's folded lines) are one space.
        if isinstance(value, str):
            return " ".join(value.split()) or None
        return value

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
