"""Importing data files as an operator does (``summitbot import FILE``): every problem
reported with its file and line, all or nothing, rows matched by key, dates stored at the
precision they were written in, and export/import round trips."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from storage.database import Database
from storage.datafile import MAX_FILE_BYTES, SECTIONS, DatasetError
from storage.dataset import ImportReport, import_files, import_text
from storage.dates import Precision
from storage.export import export_dataset
from storage.models import Chairmanship, Event, Organisation, Place

TABLES = dict(zip(SECTIONS, (Place, Organisation, Chairmanship, Event), strict=True))


@pytest.fixture
def db(database: Database) -> Database:
    """The per-test database loaded with the bundled dataset (conftest's ``database``)."""
    return database


@pytest.fixture
async def empty_db(empty_database_url: str) -> AsyncIterator[Database]:
    db = Database(empty_database_url)
    yield db
    await db.dispose()


def write(tmp_path: Path, name: str, text: str) -> Path:
    """A data file in tmp_path; ``text`` is dedented and its first line is line 1."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


async def import_paths(db: Database, *paths: Path) -> ImportReport:
    async with db.transaction() as session:
        return await import_files(session, list(paths))


async def problems_of(db: Database, *paths: Path) -> list[tuple[str, int, str]]:
    with pytest.raises(DatasetError) as caught:
        await import_paths(db, *paths)
    return [(problem.file, problem.line, problem.message) for problem in caught.value.problems]


def assert_problems(found: list[tuple[str, int, str]], expected: list[tuple[Any, ...]]) -> None:
    """Exactly the expected (file, line, words in the message), in order."""
    assert len(found) == len(expected), found
    for (file, line, message), (path, want_line, words) in zip(found, expected, strict=True):
        assert (file, line) == (str(path), want_line) and words in message, found


async def counts(db: Database) -> dict[str, int]:
    async with db.transaction() as session:
        return {
            name: (await session.execute(select(func.count()).select_from(model))).scalar_one()
            for name, model in TABLES.items()
        }


async def one(db: Database, model: Any, *where: Any) -> Any:
    async with db.transaction() as session:
        return (await session.scalars(select(model).where(*where))).one()


async def export_of(db: Database) -> str:
    async with db.transaction() as session:
        return await export_dataset(session)


# ---------------------------------------------------------------------------
# Problems are reported with file and line; nothing is written

SEVERAL_PROBLEMS = """
    places:
      - {key: test-berlin, names: Berlin, country: DE, timezone: Europe/Berlin}
      - key: atlantis
        names: Atlantis
        country: XX
        timezone: Mars/Olympus
    organisations:
      - key: newco
        names: New Co
        colour: red
    events:
      - {id: fine, title: Fine, place: test-berlin, start: 2026-10-12}
      - id: bad-date
        title: Bad date
        start: 2024-13-01
      - {id: no-title, start: 2026}
      - {id: orphan, organisation: no-such-org, place: no-such-place, title: O, start: 2026}
      - {id: backwards, title: Backwards, start: 2026-10-12, end: 2026-10-10}
      - {id: fine, title: Fine again, start: 2026-11}
    """
# Problems of single rows (found reading the file)...
ROW_PROBLEMS = [
    (5, "'XX' is not an ISO 3166 country code"),
    (6, "'Mars/Olympus' is not an IANA time zone"),
    (10, "unknown field 'colour'"),
    (15, "'2024-13-01': month 13 does not exist"),
    (16, "missing field 'title'"),
]
# ...and between rows and the database (found on import). The same file with its row
# problems fixed in place has only these, at the same lines.
REFERENCE_PROBLEMS = [
    (17, "unknown organisation 'no-such-org'"),
    (17, "unknown place 'no-such-place'"),
    (18, "the end 2026-10-10 is before the start 2026-10-12"),
    (19, "fine appears twice (first at "),
]
ROWS_FIXED = (
    SEVERAL_PROBLEMS.replace("XX", "DE")
    .replace("Mars/Olympus", "Europe/Paris")
    .replace("colour: red", "note: red")
    .replace("2024-13-01", "2024-12-01")
    .replace("{id: no-title,", "{id: no-title, title: T,")
)


async def test_every_problem_in_a_file_is_reported_at_its_line(
    db: Database, tmp_path: Path
) -> None:
    path = write(tmp_path, "several.yaml", SEVERAL_PROBLEMS)
    expected = [(path, *item) for item in sorted(ROW_PROBLEMS + REFERENCE_PROBLEMS)]
    assert_problems(await problems_of(db, path), expected)


async def test_row_problems_are_reported_at_their_lines_and_nothing_is_written(
    db: Database, tmp_path: Path
) -> None:
    before = await counts(db)
    path = write(tmp_path, "several.yaml", SEVERAL_PROBLEMS)
    found = await problems_of(db, path)
    row_found = [p for p in found if any(words in p[2] for _, words in ROW_PROBLEMS)]
    assert_problems(row_found, [(path, *item) for item in ROW_PROBLEMS])
    assert await counts(db) == before


async def test_reference_problems_are_reported_at_their_rows_and_nothing_is_written(
    db: Database, tmp_path: Path
) -> None:
    before = await counts(db)
    path = write(tmp_path, "fixed.yaml", ROWS_FIXED)
    expected = [(path, *item) for item in REFERENCE_PROBLEMS]
    found = await problems_of(db, path)
    assert_problems(found, expected)
    assert found[-1][2].endswith(f"(first at {path}:12)")
    # Nothing, not even the valid place, organisation and event of the same file.
    assert await counts(db) == before


async def test_problems_in_two_files_are_all_reported_with_their_file_names(
    db: Database, tmp_path: Path
) -> None:
    first = write(tmp_path, "a.yaml", "events:\n  - id: a\n    title: A\n    start: 2026-02-30\n")
    second = write(tmp_path, "b.yaml", "places:\n  - {key: b, names: B, country: KZ}\n")
    assert_problems(
        await problems_of(db, first, second),
        [(first, 4, "day 30 does not exist"), (second, 2, "missing field 'timezone'")],
    )


async def test_a_duplicate_across_two_files_names_both_files(db: Database, tmp_path: Path) -> None:
    before = await counts(db)
    event = "  - {id: newco-2026, organisation: newco, title: T, start: 2026}\n"
    first = write(
        tmp_path, "a.yaml", "organisations:\n  - {key: newco, names: N}\nevents:\n" + event
    )
    # The second file's event refers to the first file's organisation: no problem there.
    second = write(tmp_path, "b.yaml", "events:\n" + event.replace("2026}", "2027}"))
    assert_problems(
        await problems_of(db, first, second),
        [(second, 2, f"newco-2026 appears twice (first at {first}:4)")],
    )
    assert await counts(db) == before


# ---------------------------------------------------------------------------
# Files that are not data files


async def test_malformed_yaml_reports_the_file_and_line(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, "indent.yaml", "events:\n  - id: x\n    title: X\n   start: 2026\n")
    assert_problems(await problems_of(db, path), [(path, 4, "not valid YAML")])


async def test_yaml_aliases_are_rejected(db: Database, tmp_path: Path) -> None:
    laughs = ['a: &a ["lol", "lol", "lol"]'] + [
        f"{name}: &{name} [*{prev}, *{prev}, *{prev}]"
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    path = write(tmp_path, "laughs.yaml", "\n".join(laughs) + "\n")
    assert_problems(await problems_of(db, path), [(path, 2, "aliases")])


async def test_a_file_over_the_size_limit_is_rejected_without_parsing(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(yaml, "parse", no_parsing)
    monkeypatch.setattr("storage.datafile._DatasetLoader", no_parsing)
    text = "# " + "x" * MAX_FILE_BYTES + "\n"
    path = write(tmp_path, "huge.yaml", text)
    assert_problems(await problems_of(db, path), [(path, 1, "larger than")])
    with pytest.raises(DatasetError) as caught:  # a document sent to the bot
        async with db.transaction() as session:
            await import_text(session, text, "huge.yaml")
    assert_problems(
        [(p.file, p.line, p.message) for p in caught.value.problems],
        [("huge.yaml", 1, "larger than")],
    )


async def test_a_top_level_list_is_rejected(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, "list.yaml", "- id: x\n  title: X\n  start: 2026\n")
    assert_problems(await problems_of(db, path), [(path, 1, "expected the sections")])


async def test_an_empty_file_imports_nothing_and_succeeds(db: Database, tmp_path: Path) -> None:
    before = await counts(db)
    report = await import_paths(db, write(tmp_path, "empty.yaml", ""))
    assert report.is_empty
    assert await counts(db) == before


# ---------------------------------------------------------------------------
# A valid file: rows added, dates stored at the precision written

VALID = """
    places:
      - {key: test-berlin, names: {en: Berlin, de: Berlin}, country: de, timezone: Europe/Berlin}
      - {key: test-almaty, names: Almaty, country: KZ, timezone: Asia/Almaty}
    organisations:
      - {key: newco, names: {en: New Co, ru: Нью Ко}, founded: 2020-05}
    chairmanships:
      - {organisation: newco, country: DE, start: 2026-01, end: 2026-12}
    events:
      - {id: newco-month, organisation: newco, title: Month, place: test-berlin, start: 2026-10}
      - {id: newco-year, organisation: newco, title: Year, start: 2026}
      - {id: newco-day, title: Day, place: test-berlin, start: 2026-10-12}
      - {id: newco-time-cest, title: October, place: test-berlin, start: 2026-10-12T10:00,
         end: 2026-10-13T12:00}
      - {id: newco-time-cet, title: December, place: test-berlin, start: 2026-12-01T10:00}
      - {id: almaty-utc6, title: Before, place: test-almaty, start: 2024-02-20T10:00}
      - {id: almaty-utc5, title: After, timezone: Asia/Almaty, country: KZ, start: 2024-03-05T10:00}
    """
# key: precision, zone ("-": none, a floating date read as UTC), start_local, then starts_at
# and ends_at in UTC. ends_at is the exclusive end of the span; an exact time with no end is
# an instant. Berlin is UTC+2 until 25 October 2026, then UTC+1. Almaty was UTC+6 until
# 1 March 2024 and is UTC+5 since.
EXPECTED_EVENTS = {
    "newco-month": "month Europe/Berlin 2026-10-01T00:00 2026-09-30T22:00 2026-10-31T23:00",
    "newco-year": "year - 2026-01-01T00:00 2026-01-01T00:00 2027-01-01T00:00",
    "newco-day": "day Europe/Berlin 2026-10-12T00:00 2026-10-11T22:00 2026-10-12T22:00",
    "newco-time-cest": "time Europe/Berlin 2026-10-12T10:00 2026-10-12T08:00 2026-10-13T10:00",
    "newco-time-cet": "time Europe/Berlin 2026-12-01T10:00 2026-12-01T09:00 2026-12-01T09:00",
    "almaty-utc6": "time Asia/Almaty 2024-02-20T10:00 2024-02-20T04:00 2024-02-20T04:00",
    "almaty-utc5": "time Asia/Almaty 2024-03-05T10:00 2024-03-05T05:00 2024-03-05T05:00",
}


def stored_as(event: Event) -> str:
    """An event's stored dates, written as in EXPECTED_EVENTS."""
    assert event.starts_at.utcoffset() == event.ends_at.utcoffset() == dt.timedelta(0)
    times = [value.strftime("%Y-%m-%dT%H:%M") for value in (event.start_local, event.starts_at)]
    times.append(event.ends_at.strftime("%Y-%m-%dT%H:%M"))
    return " ".join([event.date_precision, event.timezone or "-", *times])


async def test_a_valid_file_adds_rows_with_dates_at_the_precision_written(
    db: Database, tmp_path: Path
) -> None:
    before = await counts(db)
    report = await import_paths(db, write(tmp_path, "new.yaml", VALID))
    assert report.added == {
        "places": ["test-berlin", "test-almaty"],
        "organisations": ["newco"],
        "chairmanships": ["newco DE 2026-01"],
        "events": list(EXPECTED_EVENTS),
    }
    added = {"places": 2, "organisations": 1, "chairmanships": 1, "events": 7}
    assert await counts(db) == {name: before[name] + added[name] for name in TABLES}
    place = await one(db, Place, Place.key == "test-berlin")
    assert (place.names, place.country) == ({"en": "Berlin", "de": "Berlin"}, "DE")
    org = await one(db, Organisation, Organisation.key == "newco")
    assert (org.names["ru"], org.founded) == ("Нью Ко", "2020-05")
    chair = await one(db, Chairmanship, Chairmanship.organisation_id == org.id)
    assert chair_dates(chair) == "2026-01 2026-01-01 2026-12 2026-12-31"
    for key, expected in EXPECTED_EVENTS.items():
        assert stored_as(await one(db, Event, Event.key == key)) == expected, key
    month = await one(db, Event, Event.key == "newco-month")
    assert (month.date_precision, month.organisation_id) == (Precision.MONTH, org.id)
    almaty = await one(db, Event, Event.key == "almaty-utc5")
    assert (almaty.country, almaty.place_id) == ("KZ", None)


# ---------------------------------------------------------------------------
# Importing again: rows matched by key


async def test_importing_the_same_file_again_changes_and_duplicates_nothing(
    db: Database, tmp_path: Path
) -> None:
    path = write(tmp_path, "new.yaml", VALID)
    await import_paths(db, path)
    before = await counts(db)
    report = await import_paths(db, path)
    assert report.is_empty
    assert report.unchanged == {"places": 2, "organisations": 1, "chairmanships": 1, "events": 7}
    assert await counts(db) == before


async def test_importing_a_changed_file_updates_the_row_in_place(
    db: Database, tmp_path: Path
) -> None:
    await import_paths(db, write(tmp_path, "v1.yaml", VALID))
    old = await one(db, Event, Event.key == "newco-day")
    changed = VALID.replace("title: Day,", "title: Day moved,")
    changed = changed.replace("start: 2026-10-12}", "start: 2026-10-14}")
    before = await counts(db)
    report = await import_paths(db, write(tmp_path, "v2.yaml", changed))
    assert report.changed == ImportReport().changed | {"events": ["newco-day"]}
    assert not any(report.added.values())
    assert report.unchanged["events"] == 6
    new = await one(db, Event, Event.key == "newco-day")
    assert new.id == old.id
    assert new.title == {"en": "Day moved"}
    assert stored_as(new) == "day Europe/Berlin 2026-10-14T00:00 2026-10-13T22:00 2026-10-14T22:00"
    assert await counts(db) == before


# ---------------------------------------------------------------------------
# Export and import again


async def round_trip(source: Database, target: Database) -> tuple[str, str]:
    """Export ``source``, import that text into ``target``, export ``target``."""
    first = await export_of(source)
    async with target.transaction() as session:
        await import_text(session, first, "export.yaml")
    return first, await export_of(target)


async def test_exporting_importing_and_exporting_again_gives_the_same_text(
    db: Database, empty_db: Database
) -> None:
    first, second = await round_trip(db, empty_db)
    assert second == first


async def test_exporting_and_importing_into_an_empty_database_keeps_every_row(
    db: Database, empty_db: Database
) -> None:
    first, second = await round_trip(db, empty_db)
    documents = [yaml.safe_load(first), yaml.safe_load(second)]
    for document in documents:  # the same rows, whatever their order
        document["chairmanships"].sort(key=repr)
    assert documents[1] == documents[0]
    assert await counts(empty_db) == await counts(db)


async def test_an_event_known_to_the_month_is_exported_as_the_month(db: Database) -> None:
    exported = await export_of(db)
    block = exported.split("- id: cica-2026-baku\n", 1)[1].split("\n- ", 1)[0]
    assert "\n  start: 2026-10\n" in block


# ---------------------------------------------------------------------------
# Chairmanships and text fields


def chair_dates(chair: Chairmanship) -> str:
    """start_literal, starts_on, end_literal, ends_on; "-" for none."""
    values = (chair.start_literal, chair.starts_on, chair.end_literal, chair.ends_on)
    return " ".join(str(value) if value else "-" for value in values)


async def sco_chair(db: Database, country: str) -> Any:
    sco = Chairmanship.organisation.has(Organisation.key == "sco")
    return await one(db, Chairmanship, sco, Chairmanship.country == country)


async def test_open_ended_chairmanships_with_a_note_in_two_languages_are_stored(
    db: Database, tmp_path: Path
) -> None:
    text = """
        chairmanships:
          - organisation: sco
            country: PK
            start: 2026-07
            end_note: {en: Until the next summit, ru: До следующего саммита}
          - {organisation: sco, country: BY, note: Start not known}
        """
    path = write(tmp_path, "chairs.yaml", text)
    report = await import_paths(db, path)
    assert report.added["chairmanships"] == ["sco PK 2026-07", "sco BY"]
    pakistan = await sco_chair(db, "PK")
    assert chair_dates(pakistan) == "2026-07 2026-07-01 - -"
    assert pakistan.end_note == {"en": "Until the next summit", "ru": "До следующего саммита"}
    belarus = await sco_chair(db, "BY")
    assert chair_dates(belarus) == "- - - -"
    assert belarus.note == {"en": "Start not known"}
    # Matched again by (organisation, country, start), an omitted start included.
    assert (await import_paths(db, path)).unchanged["chairmanships"] == 2


async def test_a_plain_string_is_stored_as_english(db: Database, tmp_path: Path) -> None:
    path = write(tmp_path, "plain.yaml", "events:\n  - {id: plain, title: Plain, start: 2026}\n")
    await import_paths(db, path)
    assert (await one(db, Event, Event.key == "plain")).title == {"en": "Plain"}


async def test_an_empty_text_or_a_language_name_is_a_problem(db: Database, tmp_path: Path) -> None:
    text = """
        events:
          - id: empty-ru
            title:
              ru: ''
              en: Fine
            start: 2026
          - {id: wordy, title: {english: Wordy}, start: 2026}
          - {id: blank, title: '   ', start: 2026}
        """
    path = write(tmp_path, "texts.yaml", text)
    assert_problems(
        await problems_of(db, path),
        [
            (path, 4, "the ru text is empty"),
            (path, 7, "'english' is not a language code"),
            (path, 8, "the en text is empty"),
        ],
    )


# ---------------------------------------------------------------------------
# Found while writing these tests (see the reasons)


async def test_an_empty_timezone_on_an_event_means_no_timezone(
    db: Database, tmp_path: Path
) -> None:
    text = "events:\n  - id: nozone\n    title: T\n    start: 2026-10-12\n    timezone:\n"
    await import_paths(db, write(tmp_path, "nozone.yaml", text))
    assert (await one(db, Event, Event.key == "nozone")).timezone is None


async def test_norway_country_code_is_accepted(db: Database, tmp_path: Path) -> None:
    text = "places:\n  - {key: oslo, names: Oslo, country: NO, timezone: Europe/Oslo}\n"
    await import_paths(db, write(tmp_path, "oslo.yaml", text))
    assert (await one(db, Place, Place.key == "oslo")).country == "NO"


async def test_a_section_written_twice_is_a_problem(db: Database, tmp_path: Path) -> None:
    text = (
        "events:\n  - {id: a, title: A, start: 2026}\nevents:\n  - {id: b, title: B, start: 2026}\n"
    )
    path = write(tmp_path, "twice.yaml", text)
    assert [(file, line) for file, line, _ in await problems_of(db, path)] == [(str(path), 3)]


async def test_organisation_keys_are_limited_to_32_characters(db: Database, tmp_path: Path) -> None:
    fits, too_long = "k" * 32, "k" * 33
    text = f"organisations:\n  - {{key: {fits}, names: N}}\n  - {{key: {too_long}, names: N}}\n"
    found = await problems_of(db, write(tmp_path, "long.yaml", text))
    assert [(line, message) for _, line, message in found] == [
        (3, "key: String should have at most 32 characters")
    ]
    await import_paths(
        db, write(tmp_path, "fits.yaml", f"organisations:\n  - {{key: {fits}, names: N}}\n")
    )
    assert (await one(db, Organisation, Organisation.key == fits)).names == {"en": "N"}


async def test_an_events_own_country_survives_export_and_import(
    db: Database, empty_db: Database, tmp_path: Path
) -> None:
    text = "events:\n  - {id: away, title: T, place: astana, country: UZ, start: 2026}\n"
    await import_paths(db, write(tmp_path, "away.yaml", text))
    await round_trip(db, empty_db)
    assert (await one(empty_db, Event, Event.key == "away")).country == "UZ"
