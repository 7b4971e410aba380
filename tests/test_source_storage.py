"""The sources' storage as the poller, /sources and the shell see it: adding and
removing sources, claiming them (one process polls a source at a time), the polling
state after successes and failures, and the links to the events a source created.

Runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from storage.database import Database
from storage.models import Event, Source, SourceEvent, SourceKind
from storage.sources import (
    SourceError,
    SourceView,
    UnknownOrganisation,
    add_source,
    claim_due_sources,
    claim_source,
    failing_sources,
    get_source,
    links_of,
    list_sources,
    mark_missing,
    record_failure,
    record_success,
    remove_source,
    set_enabled,
    upsert_link,
)

NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
LEASE = dt.timedelta(minutes=5)
FEED = "https://example.org/sco.ics"


async def _add(
    database: Database,
    url: str = FEED,
    *,
    kind: SourceKind = SourceKind.ICAL,
    organisation: str | None = "sco",
    interval: dt.timedelta = HOUR,
    now: dt.datetime = NOW,
) -> SourceView:
    async with database.transaction() as session:
        return await add_source(
            session,
            url=url,
            kind=kind,
            organisation=organisation,
            language="en",
            interval=interval,
            added_by="shell",
            now=now,
        )


async def _claim_due(
    database: Database, worker: str, now: dt.datetime = NOW, limit: int = 10
) -> list[int]:
    async with database.transaction() as session:
        claimed = await claim_due_sources(session, worker=worker, now=now, lease=LEASE, limit=limit)
    return [source.id for source in claimed]


async def _fail(
    database: Database,
    source_id: int,
    now: dt.datetime,
    *,
    worker: str = "a",
    retry_after: float | None = None,
) -> SourceView:
    async with database.transaction() as session:
        view = await record_failure(
            session,
            source_id,
            worker=worker,
            now=now,
            status="http_500",
            error="the server answered 500",
            retry_after=retry_after,
        )
    assert view is not None
    return view


# ---------------------------------------------------------------------------
# Adding, listing, switching, removing


async def test_an_added_feed_is_listed_with_its_organisation_and_due_at_once(
    database: Database,
) -> None:
    added = await _add(database)
    data_file = await _add(
        database, "https://example.org/events.yaml", kind=SourceKind.DATAFILE, organisation=None
    )
    async with database.transaction() as session:
        listed = await list_sources(session)
        found = await get_source(session, added.id)
        nothing = await get_source(session, 999)
    assert [s.url for s in listed] == [FEED, "https://example.org/events.yaml"]
    assert found == added == listed[0]
    assert nothing is None
    assert (added.organisation, added.kind, added.interval) == ("sco", SourceKind.ICAL, HOUR)
    assert added.enabled and added.next_poll_at == NOW and added.failures == 0
    assert added.last_status is None and added.failing_since is None
    assert data_file.organisation is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"organisation": "no-such-club"}, "unknown_organisation"),
        ({"interval": dt.timedelta(minutes=4, seconds=59)}, "interval_too_short"),
        ({"url": FEED}, "duplicate_url"),
        ({"organisation": None}, "organisation_required"),
    ],
)
async def test_a_source_that_cannot_be_added_says_why_and_adds_nothing(
    database: Database, changes: dict[str, object], reason: str
) -> None:
    await _add(database)
    arguments: dict[str, object] = {"url": "https://example.org/other.ics"} | changes
    with pytest.raises(SourceError) as raised:
        await _add(database, **arguments)  # type: ignore[arg-type]
    assert raised.value.reason == reason
    async with database.transaction() as session:
        assert [s.url for s in await list_sources(session)] == [FEED]


async def test_two_operators_adding_one_address_at_once_follow_it_once(
    database: Database, database_url: str
) -> None:
    """The second finds no source when it checks (the first has not committed yet); the
    database's unique URL then refuses its row, and it hears "followed already" too."""
    replicas = [Database(database_url), Database(database_url)]
    first_added = asyncio.Event()
    try:

        async def first() -> SourceView:
            async with replicas[0].transaction() as session:
                view = await add_source(
                    session,
                    url=FEED,
                    kind=SourceKind.ICAL,
                    organisation="sco",
                    language="en",
                    interval=HOUR,
                    added_by="operator 1",
                    now=NOW,
                )
                first_added.set()
                await asyncio.sleep(0.3)  # the second checks and inserts meanwhile
            return view

        async def second() -> SourceView:
            await first_added.wait()
            return await _add(replicas[1])

        added, refused = await asyncio.gather(first(), second(), return_exceptions=True)
        # On SQLite a block that raised leaves its batch's commit to a task: one more block
        # waits for it, so that nothing runs on the connection after it is disposed.
        async with replicas[1].transaction():
            pass
    finally:
        for replica_database in replicas:
            await replica_database.dispose()
    assert isinstance(added, SourceView)
    assert isinstance(refused, SourceError) and refused.reason == "duplicate_url"
    async with database.transaction() as session:
        assert [(s.id, s.added_by) for s in await list_sources(session)] == [
            (added.id, "operator 1")
        ]


async def test_an_unknown_organisation_names_the_key_it_did_not_find(database: Database) -> None:
    with pytest.raises(UnknownOrganisation) as raised:
        await _add(database, organisation="no-such-club")
    assert str(raised.value) == "no-such-club"


async def test_the_database_refuses_an_interval_under_five_minutes_from_any_writer(
    database: Database,
) -> None:
    added = await _add(database)
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            await session.execute(
                update(Source).where(Source.id == added.id).values(interval_seconds=299)
            )


async def test_a_source_switched_off_is_not_claimed_and_switched_on_it_is(
    database: Database,
) -> None:
    added = await _add(database)
    async with database.transaction() as session:
        assert await set_enabled(session, added.id, False)
        assert not await set_enabled(session, 999, False)
    assert await _claim_due(database, "a") == []
    async with database.transaction() as session:
        assert await set_enabled(session, added.id, True)
        assert (await get_source(session, added.id)).enabled  # type: ignore[union-attr]
    assert await _claim_due(database, "a") == [added.id]


async def test_a_removed_source_leaves_its_events_and_drops_their_links(
    database: Database,
) -> None:
    added = await _add(database)
    async with database.transaction() as session:
        event_id = await session.scalar(select(Event.id).order_by(Event.id).limit(1))
        assert event_id is not None
        await upsert_link(
            session,
            added.id,
            "uid-1@example.org",
            event_id=event_id,
            sequence=0,
            feed_modified_at=None,
            snapshot={"title": "Summit"},
            now=NOW,
        )
    async with database.transaction() as session:
        assert await remove_source(session, added.id)
        assert not await remove_source(session, added.id)
    async with database.transaction() as session:
        assert await list_sources(session) == []
        assert await session.get(Event, event_id) is not None
        assert await session.scalar(select(func.count()).select_from(SourceEvent)) == 0


# ---------------------------------------------------------------------------
# Claiming


async def test_only_due_enabled_sources_whose_claim_is_free_are_claimed(
    database: Database,
) -> None:
    due = await _add(database, "https://example.org/due.ics")
    later = await _add(database, "https://example.org/later.ics", now=NOW + HOUR)
    off = await _add(database, "https://example.org/off.ics")
    async with database.transaction() as session:
        await set_enabled(session, off.id, False)

    assert await _claim_due(database, "a") == [due.id]
    # Held by "a" for the lease: nobody else gets it, not even by "check now".
    assert await _claim_due(database, "b", NOW + LEASE - dt.timedelta(seconds=1)) == []
    async with database.transaction() as session:
        assert await claim_source(session, due.id, worker="b", now=NOW, lease=LEASE) is None
    # "a" died: once its lease is over, the source is claimed again.
    assert await _claim_due(database, "b", NOW + LEASE + dt.timedelta(seconds=1)) == [due.id]
    async with database.transaction() as session:
        claimed = await session.get(Source, due.id)
        assert claimed is not None and claimed.claimed_by == "b"
    # At its time the later one is due too, after the one "b" never reported on.
    assert await _claim_due(database, "c", NOW + HOUR) == [due.id, later.id]


async def test_check_now_claims_a_source_that_is_not_due(database: Database) -> None:
    added = await _add(database, now=NOW + HOUR)
    async with database.transaction() as session:
        assert await claim_source(session, added.id, worker="a", now=NOW, lease=LEASE) is None
        view = await claim_source(
            session, added.id, worker="a", now=NOW, lease=LEASE, due_only=False
        )
    assert view is not None and view.id == added.id
    assert await _claim_due(database, "b", NOW + dt.timedelta(minutes=1)) == []


async def test_the_most_overdue_sources_are_claimed_first_up_to_the_limit(
    database: Database,
) -> None:
    newer = await _add(database, "https://example.org/newer.ics")
    older = await _add(database, "https://example.org/older.ics", now=NOW - HOUR)
    assert await _claim_due(database, "a", limit=1) == [older.id]
    assert await _claim_due(database, "b", limit=1) == [newer.id]


async def test_two_replicas_claiming_at_once_never_get_the_same_source(
    database: Database, database_url: str
) -> None:
    urls = [f"https://example.org/feed-{n}.ics" for n in range(12)]
    for url in urls:
        await _add(database, url)
    replicas = [Database(database_url), Database(database_url)]
    try:

        async def replica(index: int) -> list[int]:
            claimed: list[int] = []
            for _ in range(4):
                claimed += await _claim_due(replicas[index], f"replica-{index}", limit=2)
                await asyncio.sleep(0)
            return claimed

        first, second = await asyncio.gather(replica(0), replica(1))
    finally:
        for replica_database in replicas:
            await replica_database.dispose()
    assert not set(first) & set(second)
    assert len(first) == len(set(first)) and len(second) == len(set(second))
    assert len(first) + len(second) == len(urls)


# ---------------------------------------------------------------------------
# After a poll


async def test_a_success_releases_the_claim_and_plans_the_next_poll_an_interval_on(
    database: Database,
) -> None:
    added = await _add(database)
    assert await _claim_due(database, "a") == [added.id]
    await _fail(database, added.id, NOW, worker="a")
    assert await _claim_due(database, "a", NOW + HOUR) == [added.id]
    later = NOW + HOUR + dt.timedelta(seconds=3)
    async with database.transaction() as session:
        await record_success(
            session,
            added.id,
            worker="a",
            now=later,
            status="ok",
            etag='"v2"',
            last_modified="Sun, 22 Nov 2026 09:00:00 GMT",
        )
        view = await get_source(session, added.id)
        row = await session.get(Source, added.id)
        assert row is not None and row.claimed_by is None and row.claimed_until is None
    assert view is not None
    assert (view.last_status, view.last_error, view.failures, view.failing_since) == (
        "ok",
        None,
        0,
        None,
    )
    assert view.last_polled_at == view.last_success_at == later
    assert (view.etag, view.last_modified) == ('"v2"', "Sun, 22 Nov 2026 09:00:00 GMT")
    assert view.next_poll_at == later + HOUR


async def test_a_not_modified_answer_keeps_the_validators_it_is_given(
    database: Database,
) -> None:
    added = await _add(database)
    async with database.transaction() as session:
        await record_success(
            session,
            added.id,
            worker="a",
            now=NOW,
            status="not_modified",
            etag='"v1"',
            last_modified=None,
        )
        view = await get_source(session, added.id)
    assert view is not None
    assert (view.last_status, view.etag, view.next_poll_at) == ("not_modified", '"v1"', NOW + HOUR)


async def test_failures_back_off_from_the_interval_doubling_up_to_a_day(
    database: Database,
) -> None:
    added = await _add(database, interval=dt.timedelta(hours=5))
    now = NOW
    waits = []
    for _ in range(5):
        view = await _fail(database, added.id, now)
        waits.append(view.next_poll_at - now)
        now = view.next_poll_at
    hours = [wait / HOUR for wait in waits]
    assert hours == [5, 10, 20, 24, 24]
    assert view.failures == 5
    assert view.failing_since == NOW  # the run of failures began at the first
    assert (view.last_status, view.last_error) == ("http_500", "the server answered 500")


async def test_a_retry_after_is_waited_for_but_never_longer_than_a_day(
    database: Database,
) -> None:
    added = await _add(database)
    first = await _fail(database, added.id, NOW, retry_after=3 * 3600)
    assert first.next_poll_at == NOW + 3 * HOUR
    shorter = await _fail(database, added.id, NOW, retry_after=60)  # 2nd failure: 2 hours
    assert shorter.next_poll_at == NOW + 2 * HOUR
    longest = await _fail(database, added.id, NOW, retry_after=7 * 86400)
    assert longest.next_poll_at == NOW + dt.timedelta(days=1)


async def test_a_failure_gives_back_only_its_own_claim_and_keeps_the_detail_short(
    database: Database,
) -> None:
    added = await _add(database)
    assert await _claim_due(database, "b") == [added.id]
    async with database.transaction() as session:
        await record_failure(
            session, added.id, worker="a", now=NOW, status="timeout", error="x" * 2000
        )
        row = await session.get(Source, added.id)
        assert row is not None and row.claimed_by == "b"
        assert row.last_error is not None and len(row.last_error) == 500
    async with database.transaction() as session:
        assert (
            await record_failure(session, 999, worker="a", now=NOW, status="timeout", error="gone")
            is None
        )


async def test_sources_failing_for_more_than_a_day_are_for_review(database: Database) -> None:
    failing = await _add(database, "https://example.org/failing.ics")
    recent = await _add(database, "https://example.org/recent.ics")
    off = await _add(database, "https://example.org/off.ics")
    await _fail(database, failing.id, NOW)
    await _fail(database, off.id, NOW)
    await _fail(database, recent.id, NOW + dt.timedelta(hours=2))
    async with database.transaction() as session:
        await set_enabled(session, off.id, False)
        a_day_on = NOW + dt.timedelta(days=1, hours=1)
        assert [s.id for s in await failing_sources(session, a_day_on)] == [failing.id]
        assert await failing_sources(session, NOW + dt.timedelta(hours=23)) == []
        longer = await failing_sources(session, a_day_on, dt.timedelta(minutes=30))
        assert [s.id for s in longer] == [failing.id, recent.id]


# ---------------------------------------------------------------------------
# The events a source created


async def test_links_are_kept_by_uid_marked_missing_once_and_cleared_when_back(
    database: Database,
) -> None:
    added = await _add(database)
    async with database.transaction() as session:
        first_id, second_id = (
            await session.scalars(select(Event.id).order_by(Event.id).limit(2))
        ).all()
        modified = NOW - dt.timedelta(days=2)
        for uid, event_id in (("one@x", first_id), ("two@x", second_id)):
            await upsert_link(
                session,
                added.id,
                uid,
                event_id=event_id,
                sequence=1,
                feed_modified_at=modified,
                snapshot={"status": "planned"},
                now=NOW,
            )
    async with database.transaction() as session:
        links = await links_of(session, added.id)
        assert set(links) == {"one@x", "two@x"}
        assert links["one@x"].event_id == first_id
        assert (links["one@x"].sequence, links["one@x"].feed_modified_at) == (1, modified)
        assert links["one@x"].snapshot == {"status": "planned"} and links["one@x"].seen_at == NOW

        later = NOW + HOUR
        assert await mark_missing(session, added.id, ["one@x"], later) == [("two@x", second_id)]
        assert await mark_missing(session, added.id, ["one@x"], later + HOUR) == []
        assert (await links_of(session, added.id))["two@x"].missing_since == later

        back = await upsert_link(
            session,
            added.id,
            "two@x",
            event_id=second_id,
            sequence=2,
            feed_modified_at=None,
            snapshot={"status": "postponed"},
            now=later + 2 * HOUR,
        )
    assert back.missing_since is None
    assert (back.sequence, back.snapshot) == (2, {"status": "postponed"})
    async with database.transaction() as session:
        assert (await links_of(session, added.id))["two@x"] == back
        assert await links_of(session, 999) == {}
        with pytest.raises(SourceError) as raised:
            await upsert_link(
                session,
                999,
                "one@x",
                event_id=first_id,
                sequence=0,
                feed_modified_at=None,
                snapshot={},
                now=NOW,
            )
    assert raised.value.reason == "unknown_source"


async def test_an_event_belongs_to_one_source_only(database: Database) -> None:
    first = await _add(database, "https://example.org/one.ics")
    second = await _add(database, "https://example.org/two.ics")
    async with database.transaction() as session:
        event_id = await session.scalar(select(Event.id).order_by(Event.id).limit(1))
        assert event_id is not None
        await upsert_link(
            session,
            first.id,
            "a@x",
            event_id=event_id,
            sequence=0,
            feed_modified_at=None,
            snapshot={},
            now=NOW,
        )
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            await upsert_link(
                session,
                second.id,
                "a@x",
                event_id=event_id,
                sequence=0,
                feed_modified_at=None,
                snapshot={},
                now=NOW,
            )
