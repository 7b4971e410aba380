"""What makes replies fast must not make them stale: the caches of the catalogue follow a
change written by another replica on the same database, a request reads the catalogue's
revision once (with its chat), and cached formatting and occurrences are what a fresh
computation gives."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
import yaml
from sqlalchemy import event
from sqlalchemy import text as sql

from bot.presentation import render
from bot.presentation.i18n import translator
from config.settings import DATASET_DIR
from storage.chats import Chats
from storage.database import Database
from storage.dataset import import_text
from storage.dates import PartialDate
from storage.queries import Catalogue, EventFilter, When, one_revision
from tests.botapi import LocalBotApi
from tests.conftest import StartBot
from tests.test_search_ranking import scanned_scores, sorted_in_full

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.fixture
async def replicas(database: Database) -> AsyncIterator[tuple[Catalogue, Catalogue]]:
    """Two replicas' catalogues, each with its own engine, on one database."""
    other = Database(str(database.url))
    yield Catalogue(database), Catalogue(other)
    await other.dispose()


def _dataset_entry(file: str, section: str, field: str, value: str) -> dict[str, object]:
    entries = yaml.safe_load((DATASET_DIR / file).read_text(encoding="utf-8"))[section]
    return dict(next(entry for entry in entries if entry[field] == value))


async def _import(catalogue: Catalogue, section: str, entry: dict[str, object]) -> None:
    text = yaml.safe_dump({section: [entry]}, allow_unicode=True)
    async with catalogue.database.transaction() as session:
        await import_text(session, text, "edit.yaml", changed_by="operator")


async def test_an_organisation_card_follows_an_edit_made_on_another_replica(
    replicas: tuple[Catalogue, Catalogue],
) -> None:
    this, other = replicas
    with one_revision():
        card = await this.organisation_card("sco", NOW)
    assert card is not None and card.members == 10
    assert card.next_event is not None and card.next_event.key == "sco-2027-pakistan"

    sco = _dataset_entry("organisations.yaml", "organisations", "key", "sco")
    await _import(other, "organisations", {**sco, "members": 11})
    summit = _dataset_entry("events.yaml", "events", "id", "sco-2027-pakistan")
    await _import(other, "events", {**summit, "title": {"en": "Renamed on another replica"}})

    with one_revision():
        card = await this.organisation_card("sco", NOW)
    assert card is not None and card.members == 11
    assert card.next_event is not None
    assert card.next_event.title["en"] == "Renamed on another replica"


async def test_a_list_of_upcoming_events_follows_an_edit_made_on_another_replica(
    replicas: tuple[Catalogue, Catalogue],
) -> None:
    this, other = replicas
    upcoming = EventFilter(organisation="sco", when=When.UPCOMING)
    with one_revision():
        page = await this.events(upcoming, NOW)
    assert "sco-2026-bishkek" in [e.key for e in page.events]

    summit = _dataset_entry("events.yaml", "events", "id", "sco-2026-bishkek")
    await _import(other, "events", {**summit, "title": {"en": "Renamed on another replica"}})

    with one_revision():
        page = await this.events(upcoming, NOW)
    titles = {e.key: e.title["en"] for e in page.events}
    assert titles["sco-2026-bishkek"] == "Renamed on another replica"


def statements_run_by(catalogue: Catalogue) -> list[str]:
    """Every SQL statement ``catalogue``'s engine runs from now on, in order."""
    statements: list[str] = []
    event.listen(
        catalogue.database.engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement),
    )
    return statements


async def test_one_request_reads_the_revision_once_and_the_next_request_anew(
    replicas: tuple[Catalogue, Catalogue],
) -> None:
    this, other = replicas
    statements = statements_run_by(this)

    def revision_reads() -> int:
        return sum("FROM meta" in statement for statement in statements)

    with one_revision():
        await this.find_organisation("SCO")
        await this.organisation_card("sco", NOW)
        await this.search("astana", NOW)
        await this.events(EventFilter(when=When.UPCOMING), NOW)
    assert revision_reads() == 1

    sco = _dataset_entry("organisations.yaml", "organisations", "key", "sco")
    await _import(other, "organisations", {**sco, "members": 12})
    with one_revision():
        card = await this.organisation_card("sco", NOW)
    assert revision_reads() == 2
    assert card is not None and card.members == 12


async def test_the_scope_of_a_request_ends_with_it() -> None:
    # A task started by an update keeps its context after the update; it must not keep
    # using that update's revision.
    from storage import queries

    with one_revision():
        scope = queries._request_revision.get()
        assert scope is not None
        open_within = scope.open  # a name: mypy would keep ``scope.open`` True past the block
        assert open_within
    assert not scope.open
    assert queries._request_revision.get() is None


async def test_the_next_occurrence_remembered_is_the_one_computed_afresh(
    replicas: tuple[Catalogue, Catalogue],
) -> None:
    this, _ = replicas
    observances = EventFilter(when=When.UPCOMING, include_observances=True)
    recurring = await this._recurring(observances, [])
    assert recurring
    moments = [
        dt.datetime(2026, 3, 20, tzinfo=UTC),
        dt.datetime(2026, 3, 22, 12, tzinfo=UTC),  # during World Water Day somewhere
        dt.datetime(2026, 3, 23, tzinfo=UTC),
        dt.datetime(2027, 1, 1, tzinfo=UTC),
        dt.datetime(2026, 1, 1, tzinfo=UTC),  # the clock set back
        dt.datetime(2031, 6, 1, tzinfo=UTC),
    ]
    for now in moments:
        for item in recurring:
            assert item.next_occurrence(now) == item.event.next_occurrence(now), (item, now)


async def test_a_page_past_the_end_shows_the_last_one_with_recurring_events_merged(
    replicas: tuple[Catalogue, Catalogue],
) -> None:
    this, _ = replicas
    upcoming = EventFilter(when=When.UPCOMING)
    first = await this.events(upcoming, NOW, 0, 3)
    assert first.pages > 1
    keys: list[str] = []
    for page in range(first.pages):
        keys.extend(e.key for e in (await this.events(upcoming, NOW, page, 3)).events)
    assert len(keys) == len(set(keys)) == first.total
    last = await this.events(upcoming, NOW, first.pages - 1, 3)
    assert await this.events(upcoming, NOW, first.pages + 5, 3) == last
    assert await this.events(upcoming, NOW, -2, 3) == first


def test_cached_date_formatting_is_babels_own() -> None:
    from babel.dates import format_interval

    for language in ("en", "ru", "zh", "ar", "kk"):
        tr = translator(language)
        start, end = PartialDate.parse("2024-07-03"), PartialDate.parse("2024-07-04")
        expected = str(format_interval(start.first_day, end.first_day, "yMMMMd", locale=tr.locale))
        assert render.format_dates(start, end, tr) == expected
        assert render.format_dates(start, end, tr) == expected  # from the cache


async def test_a_reply_follows_chat_settings_changed_on_another_replica(
    start_bot: StartBot, bot_api: LocalBotApi, database_url: str
) -> None:
    async with start_bot():
        first = await bot_api.reply_to(bot_api.message("/upcoming"))
        assert "Upcoming events" in first.text
        chat_id = first.chat_id
        assert chat_id is not None
        # Another replica (its own engine) changes the chat's language.
        other = Database(database_url)
        try:
            await Chats(other, "en", "Asia/Almaty").set_language(chat_id, "ru")
        finally:
            await other.dispose()
        second = await bot_api.reply_to(bot_api.message("/upcoming"))
        assert "Предстоящие события" in second.text


async def test_cards_pick_the_events_the_database_picks_at_any_moment(
    replicas: tuple[Catalogue, Catalogue],
) -> None:
    # The last held and next event of every card, picked from the cached timelines, are
    # those a query of the database picks (as cards were built before the cache).
    from sqlalchemy import select

    from storage.models import Event, EventStatus, Organisation
    from storage.queries import COMING_ON_A_CARD, _event_query, _next_of, _view

    this, _ = replicas
    async with this.database.sessions() as session:
        orgs = (await session.scalars(select(Organisation))).all()
    moments = [
        dt.datetime(2022, 9, 16, tzinfo=UTC),
        dt.datetime(2024, 7, 3, 12, tzinfo=UTC),
        dt.datetime(2024, 7, 4, 23, tzinfo=UTC),
        NOW,
        dt.datetime(2030, 1, 1, tzinfo=UTC),
    ]
    for now in moments:
        with one_revision():
            cards = await this.organisation_cards([org.key for org in orgs], now)
        async with this.database.sessions() as session:
            for org in orgs:
                of_org = _event_query().where(
                    Event.organisation_id == org.id, Event.status != EventStatus.CANCELLED
                )
                held = await session.scalar(
                    of_org.where(Event.ends_at <= now)
                    .order_by(Event.starts_at.desc(), Event.key.desc())
                    .limit(1)
                )
                # The first few: an undated one that may be over is passed by (aging).
                singles = (
                    await session.scalars(
                        of_org.where(Event.ends_at > now, Event.recurrence.is_(None))
                        .order_by(Event.starts_at, Event.key)
                        .limit(COMING_ON_A_CARD)
                    )
                ).all()
                recurring = (
                    await session.scalars(of_org.where(Event.recurrence.is_not(None)))
                ).all()
                coming = [*recurring, *singles]
                expected_next = _next_of([_view(e) for e in coming], now)
                card = cards[org.key]
                assert (card.last_event.key if card.last_event else None) == (
                    held.key if held else None
                ), (org.key, now)
                assert card.next_event == expected_next, (org.key, now)


def test_upcoming_singles_are_those_not_over_in_order_whatever_their_length() -> None:
    import random

    from storage.queries import _Singles

    rng = random.Random(7)
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for index in range(400):
        starts = base + dt.timedelta(hours=rng.randrange(0, 24 * 400))
        length = dt.timedelta(hours=rng.choice([0, 1, 30, 24 * 40, 24 * 200]))
        rows.append((starts, f"e{index:03d}", starts + length))
    rows.sort(key=lambda row: (row[0], row[1]))
    singles = _Singles.of(rows)
    for days in (-10, 0, 37, 150, 399, 800):
        now = base + dt.timedelta(days=days, minutes=30)
        on = [(starts, key) for starts, key, ends in rows if ends > now]
        for limit in (1, 8, 48, 1000):
            assert singles.upcoming(now, limit) == (on[:limit], len(on)), (now, limit)


@pytest.mark.parametrize("organisation", [None, "sco", "csto"])
async def test_upcoming_pages_list_what_is_not_over_in_order(
    replicas: tuple[Catalogue, Catalogue], organisation: str | None
) -> None:
    from storage.models import Event, EventStatus
    from storage.queries import MEETING_KINDS_EXCLUDE, _event_query, _view

    this, _ = replicas
    query = EventFilter(organisation=organisation, when=When.UPCOMING)
    async with this.database.sessions() as session:
        statement = _event_query().where(Event.status != EventStatus.CANCELLED)
        everything = [_view(e) for e in await session.scalars(statement)]
    for now in (dt.datetime(2024, 3, 21, 23, tzinfo=UTC), NOW, dt.datetime(2030, 1, 1, tzinfo=UTC)):
        expected = sorted(
            (
                occurrence
                for view in everything
                if organisation is None
                or (view.organisation is not None and view.organisation.key == organisation)
                if query.with_observances or view.kind not in MEETING_KINDS_EXCLUDE
                for occurrence in [view.next_occurrence(now) if view.recurrence else view]
                if occurrence is not None and occurrence.ends_at > now
            ),
            key=lambda view: (view.starts_at, view.key),
        )
        with one_revision():
            first = await this.events(query, now, 0, 5)
            shown = [
                view
                for page in range(first.pages)
                for view in (await this.events(query, now, page, 5)).events
            ]
        assert first.total == len(expected)
        assert [(v.key, v.starts_at) for v in shown] == [(v.key, v.starts_at) for v in expected]


def test_prefix_matches_found_by_bisection_are_those_a_scan_finds() -> None:
    from storage import search

    entries = yaml.safe_load((DATASET_DIR / "organisations.yaml").read_text(encoding="utf-8"))
    documents = [
        search.SearchDocument(
            "organisation",
            entry["key"],
            (entry["key"], *entry["names"].values(), *entry.get("abbreviations", {}).values()),
        )
        for entry in entries["organisations"]
    ]
    index = search.SearchIndex(documents)

    words = sorted(index._vocabulary)
    tokens = {w[:n] for w in words for n in (1, 2, 3, 5)} | {"sc", "шо", "上合", "coop", "zzz"}
    for token in sorted(tokens):
        # The same scores in the same order (ties among hits keep it).
        scanned = scanned_scores(index, token)  # the linear scan the index did before
        assert list(index._token_scores(token).items()) == list(scanned.items()), token


async def test_the_best_hits_are_those_a_full_sort_puts_first(
    replicas: tuple[Catalogue, Catalogue],
) -> None:
    from storage import search

    this, _ = replicas
    index = await this.search_index()

    for text in ("summit 2024", "SCO", "шос", "астана", "cooperation", "forum", "上合", "x"):
        for limit in (1, 3, 10, 20):
            assert index.search(text, limit) == sorted_in_full(index, text, limit), (text, limit)

    # Many documents sharing words and years: thousands of hits, many tied.
    index = search.SearchIndex(
        [
            search.SearchDocument(
                "organisation" if number % 50 == 0 else "event",
                f"doc-{number}",
                (f"{('Caspian', 'Arctic', 'Nordic')[number % 3]} summit {number % 7}",),
                (str(2020 + number % 9),),
            )
            for number in range(3000)
        ]
    )
    for text in ("summit", "summit 2024", "caspian summit 2027", "arctic 3", "nordic summit 5"):
        for limit in (1, 10, 20, 500):
            assert index.search(text, limit) == sorted_in_full(index, text, limit), (text, limit)


async def test_a_cached_reply_is_retired_by_another_replicas_edit(
    start_bot: StartBot, bot_api: LocalBotApi, database_url: str
) -> None:
    async with start_bot(reply_cache_seconds=300):
        first = await bot_api.reply_to(bot_api.message("/org sco"))
        again = await bot_api.reply_to(bot_api.message("/org sco"))
        assert again.text == first.text  # from the cache
        other = Catalogue(Database(database_url))
        try:
            sco = _dataset_entry("organisations.yaml", "organisations", "key", "sco")
            await _import(other, "organisations", {**sco, "members": 11})
        finally:
            await other.database.dispose()
        edited = await bot_api.reply_to(bot_api.message("/org sco"))
        assert "Members: 11" in edited.text
        assert "Members: 10" in first.text


async def test_an_event_id_with_a_nul_is_simply_not_found(
    replicas: tuple[Catalogue, Catalogue],
) -> None:
    # Found by the fuzz test: PostgreSQL refuses NUL in text, and /event passed it on.
    this, _ = replicas
    assert await this.event("sco\x00") is None


async def test_rows_changed_by_hand_in_the_database_retire_the_caches(
    replicas: tuple[Catalogue, Catalogue],
) -> None:
    # Written at the database's console: no catalogue version, no updated_at, the number
    # of events unchanged by the first edit. Only the database's own count of changes
    # tells the caches.
    this, other = replicas
    upcoming = EventFilter(organisation="sco", when=When.UPCOMING)
    with one_revision():
        await this.events(upcoming, NOW)
        await this.organisation_card("sco", NOW)
        found = await this.search("Renamed by hand", NOW)
    assert "sco-2027-pakistan" not in [hit.key for hit in found.events]

    async with other.database.transaction() as session:
        await session.execute(
            sql(
                'UPDATE events SET title = \'{"en": "Renamed by hand"}\' '
                "WHERE key = 'sco-2027-pakistan'"
            )
        )
    with one_revision():
        page = await this.events(upcoming, NOW)
        card = await this.organisation_card("sco", NOW)
        found = await this.search("Renamed by hand", NOW)
    assert {e.key: e.title["en"] for e in page.events}["sco-2027-pakistan"] == "Renamed by hand"
    assert card is not None and card.next_event is not None
    assert card.next_event.title["en"] == "Renamed by hand"
    assert [hit.key for hit in found.events][:1] == ["sco-2027-pakistan"]

    async with other.database.transaction() as session:
        await session.execute(sql("DELETE FROM events WHERE key = 'sco-2027-pakistan'"))
    with one_revision():
        page = await this.events(upcoming, NOW)
        card = await this.organisation_card("sco", NOW)
    assert "sco-2027-pakistan" not in [e.key for e in page.events]
    assert card is not None and (
        card.next_event is None or card.next_event.key != "sco-2027-pakistan"
    )


async def test_a_chat_read_as_columns_is_the_chat_as_stored(database: Database) -> None:
    # Every update reads its chat as a row of columns: the view must be the one the stored
    # chat gives, whatever its settings, and a changed title is still written.
    from storage.models import Chat, ChatType, DigestFrequency
    from storage.views import ChatView

    chats = Chats(database, "en", "UTC")
    stored = [
        Chat(id=501, type=ChatType.PRIVATE, title="Ann", language="ru", timezone="Asia/Almaty"),
        Chat(
            id=-502,
            type=ChatType.SUPERGROUP,
            title="Delegates",
            language="zh",
            timezone="Asia/Shanghai",
            paused=True,
            digest=DigestFrequency.WEEKLY,
            lead_times=[1440, 60],
        ),
        Chat(
            id=-1003,
            type=ChatType.CHANNEL,
            title="News",
            language="ar",
            timezone="Asia/Dubai",
            linked_by=501,
            digest=DigestFrequency.DAILY,
        ),
    ]
    async with database.transaction() as session:
        for chat in stored:
            chat.is_active = True
            session.add(chat)
    for chat in stored:
        async with database.sessions() as session:
            loaded = await session.get(Chat, chat.id)
            assert loaded is not None
            expected = ChatView.of(loaded)
        view, along = await chats.ensure(
            chat.id, chat.type, chat.title, None, NOW, read_along=Catalogue.revision_columns()
        )
        assert view == expected
        assert along is not None and len(along) == len(Catalogue.revision_columns())
        assert (await chats.view_for_user(chat.id, "kk"))[0] == expected

    renamed, along = await chats.ensure(-502, ChatType.SUPERGROUP, "Heads", None, NOW)
    assert renamed.title == "Heads" and renamed.lead_times == (1440, 60) and along is None
    assert (await chats.ensure(-502, ChatType.SUPERGROUP, "Heads", None, NOW))[0] == renamed


async def test_a_card_read_after_another_needs_no_statement_and_is_the_same(
    replicas: tuple[Catalogue, Catalogue],
) -> None:
    # The first card that misses reads what every organisation's card shows now, so the
    # next organisation's card is read without a statement, and shows the same events
    # as a catalogue that reads only that card.
    this, other = replicas
    statements = statements_run_by(this)
    with one_revision():
        await this.organisation_card("sco", NOW)
    keys = [ref.key for ref in await other.organisations() if ref.key != "sco"]
    statements.clear()
    with one_revision():
        cards = await this.organisation_cards(keys, NOW)
    assert [s for s in statements if "FROM events" in s] == []
    for key in keys:
        with one_revision():
            alone = await Catalogue(other.database).organisation_card(key, NOW)
        assert cards[key] == alone, key


async def test_an_inline_query_that_finds_nothing_answers_at_once_without_suggestions(
    start_bot: StartBot, bot_api: LocalBotApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inline results have no "did you mean": the fuzzy pass over every name (some 10 ms
    # with 10,000 events) is left out there, and still made for /search.
    from storage.search import SearchIndex

    looked_up: list[str] = []
    suggestions = SearchIndex.suggestions

    def counted(index: SearchIndex, text: str, *args: object, **kwargs: object) -> object:
        looked_up.append(text)
        return suggestions(index, text, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SearchIndex, "suggestions", counted)
    async with start_bot():
        bot_api.push(
            {
                "inline_query": {
                    "id": "q-nothing",
                    "from": {"id": 8700, "is_bot": False, "first_name": "R"},
                    "query": "Shngh Cprtn",
                    "offset": "",
                }
            }
        )
        answer = await bot_api.wait_for(lambda c: c.method == "answerInlineQuery")
        assert answer.status == 200
        assert answer.parameters["results"] in ([], "[]")
        assert looked_up == []
        reply = await bot_api.reply_to(bot_api.message("/search Shngh Cprtn"))
        assert "Did you mean: <b>SCO</b>?" in reply.text
        assert looked_up == ["Shngh Cprtn"]
