"""Polling the sources the bot follows: the repeating job, and one poll from claim to record.

A poll: claim the source's lease (``storage.sources.claim_source``: one process polls a
source at a time) → fetch with the stored ETag and Last-Modified (``bot.sources.fetch``)
→ a 304 is recorded and costs nothing else → the body read as an iCalendar feed
(``bot.sources.ical``) or a data file (``storage.datafile``), in a thread so that updates
keep being answered → written through the import path in one transaction with the
source's new state (``storage.sources.apply_poll``), so a poll is all or nothing. Any
error leaves the data untouched: it is recorded, and the source backs off.

The job ("source-poll") runs every ``SOURCE_POLL_CHECK_SECONDS`` in every bot process,
polling a few due sources at a time; ``stop`` lets the polls in flight finish (or
cancels them at the deadline), gives their leases back and closes the HTTP session.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from telegram.ext import CallbackContext, JobQueue

from bot.clock import Clock
from bot.metrics import Metrics
from bot.sources.fetch import FetchError, FetchLimits, SourceFetcher, SourceUrlError
from bot.sources.ical import FeedError, parse_feed
from config.settings import Settings
from storage.database import Database, is_unavailable
from storage.datafile import DatasetError, PlaceRow, parse_text
from storage.models import SourceKind
from storage.planning import Planner
from storage.sources import (
    PollReport,
    SourceRow,
    SourceView,
    apply_poll,
    check_datafile_sections,
    claim_due_sources,
    claim_source,
    get_source,
    known_places,
    list_sources,
    record_failure,
    record_success,
    release_leases,
)

log = logging.getLogger(__name__)

POLL_JOB = "source-poll"
# Sources polled at once by one process: a slow feed does not hold the others up, and a
# burst of due sources does not take every connection.
POLLS_AT_ONCE = 3
# A claim outlives a fetch (its time-out) and the write after it with room to spare.
LEASE_MARGIN = dt.timedelta(minutes=2)
MAX_PROBLEMS_SHOWN = 3


def _worker_name() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def source_key(source: SourceView) -> str:
    """What a feed's event ids start with: the organisation and the source's id."""
    return f"{source.organisation or 'feed'}-s{source.id}"


@dataclass(frozen=True)
class PollOutcome:
    """What one poll did: ``status`` is ok, not_modified, busy (another process is
    polling it), or the error's code; ``report`` what changed (ok only)."""

    source_id: int
    status: str
    report: PollReport | None = None
    error: str | None = None
    skipped: list[str] = field(default_factory=list)  # events of the feed not imported

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "not_modified", "busy")


class _PollFailed(Exception):
    def __init__(self, status: str, error: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {error}")
        self.status = status
        self.error = error
        self.retry_after = retry_after


def _problems_text(error: DatasetError) -> str:
    shown = [str(problem) for problem in error.problems[:MAX_PROBLEMS_SHOWN]]
    more = len(error.problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _datafile_rows(body: bytes, name: str) -> list[SourceRow]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _PollFailed("invalid_data", "the file is not UTF-8 text") from None
    dataset, problems = parse_text(text, name)
    if problems:
        raise DatasetError(problems)
    check_datafile_sections(dataset, name)
    return [SourceRow(uid=row.id, row=row) for row in dataset.events]


def _ical_rows(
    body: bytes, source: SourceView, places: list[PlaceRow]
) -> tuple[list[SourceRow], list[str]]:
    feed = parse_feed(
        body,
        source_key=source_key(source),
        feed_url=source.url,
        organisation=source.organisation,
        places=places,
        language=source.language,
    )
    rows = [
        SourceRow(uid=e.uid, row=e.row, sequence=e.sequence, last_modified=e.last_modified)
        for e in feed.events
    ]
    return rows, feed.problems


class SourcePoller:
    """Polls due sources for one bot process (or one CLI command)."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        settings: Settings,
        planner: Planner,
        metrics: Metrics | None = None,
    ) -> None:
        self.database = database
        self.clock = clock
        self.settings = settings
        self.planner = planner
        self.metrics = metrics
        self.worker = _worker_name()
        self.fetcher = SourceFetcher(
            allow_local=settings.sources_allow_local,
            limits=FetchLimits(
                timeout=settings.source_timeout_seconds, max_bytes=settings.source_max_bytes
            ),
        )
        self.lease = dt.timedelta(seconds=settings.source_timeout_seconds) + LEASE_MARGIN
        # Called after a poll changed data (the dispatcher's poke: notices are due now).
        self.on_imported: Callable[[], Awaitable[None]] | None = None
        self._job_queue: JobQueue[Any] | None = None
        self._running: set[asyncio.Task[PollOutcome]] = set()
        self._checking = False
        self._stopping = False
        self._slots = asyncio.Semaphore(POLLS_AT_ONCE)

    # --- the job ------------------------------------------------------------------

    def start(self, job_queue: JobQueue[Any] | None) -> None:
        self._job_queue = job_queue
        if job_queue is not None:
            job_queue.run_repeating(
                self._poll_job,
                interval=self.settings.source_poll_check_seconds,
                first=self.settings.source_poll_check_seconds,
                name=POLL_JOB,
            )

    async def _poll_job(self, _: CallbackContext[Any, Any, Any, Any]) -> None:
        await self.poll_due()

    async def poll_due(self) -> list[PollOutcome]:
        """Poll the sources due now that no other process is polling (a few at a time)."""
        if self._stopping or self._checking:
            return []
        self._checking = True
        try:
            now = self.clock.now()
            async with self.database.transaction() as session:
                claimed = await claim_due_sources(
                    session,
                    worker=self.worker,
                    now=now,
                    lease=self.lease,
                    limit=POLLS_AT_ONCE * 4,
                )
            tasks = [self._spawn(source) for source in claimed]
            outcomes = list(await asyncio.gather(*tasks)) if tasks else []
            await self.refresh_metrics()
            return outcomes
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("sources: the database is unavailable; polling later")
            return []
        finally:
            self._checking = False

    def _spawn(self, source: SourceView) -> asyncio.Task[PollOutcome]:
        task = asyncio.get_running_loop().create_task(self._poll_in_slot(source))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def _poll_in_slot(self, source: SourceView) -> PollOutcome:
        async with self._slots:
            return await self._poll(source)

    async def poll_now(self, source_id: int) -> PollOutcome | None:
        """Poll one source now, due or not (``/sources check``); None if it does not exist."""
        async with self.database.transaction() as session:
            source = await claim_source(
                session,
                source_id,
                worker=self.worker,
                now=self.clock.now(),
                lease=self.lease,
                due_only=False,
            )
            exists = source is not None or await get_source(session, source_id) is not None
        if not exists:
            return None
        if source is None:
            return PollOutcome(source_id, "busy")
        outcome = await self._spawn(source)
        await self.refresh_metrics()
        return outcome

    async def stop(self, grace_seconds: float) -> None:
        """Start no poll; let those in flight finish by the deadline, give back the leases."""
        self._stopping = True
        if self._job_queue is not None:
            for job in self._job_queue.get_jobs_by_name(POLL_JOB):
                job.schedule_removal()
        running = list(self._running)
        if running:
            _, pending = await asyncio.wait(running, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        try:
            async with self.database.transaction() as session:
                await release_leases(session, self.worker)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("stopping without the database: source leases lapse on their own")
        await self.fetcher.close()

    # --- one poll -----------------------------------------------------------------

    async def _poll(self, source: SourceView) -> PollOutcome:
        now = self.clock.now()
        try:
            return await self._fetch_and_apply(source, now)
        except _PollFailed as failed:
            return await self._failed(source, now, failed)
        except FetchError as exc:
            return await self._failed(
                source, now, _PollFailed(exc.code, exc.detail, exc.retry_after)
            )
        except SourceUrlError as exc:
            return await self._failed(source, now, _PollFailed(exc.code, str(exc)))
        except FeedError as exc:
            return await self._failed(source, now, _PollFailed("invalid_feed", str(exc)))
        except DatasetError as exc:
            return await self._failed(source, now, _PollFailed("invalid_data", _problems_text(exc)))
        except Exception as exc:
            if is_unavailable(exc):
                raise  # the lease lapses; the next check tries again
            # A bug must not poll the source again at every check, nor hide: it backs
            # off like any failure, and the traceback is in the log.
            log.exception("source %s: the poll failed", source.id)
            return await self._failed(source, now, _PollFailed("internal", type(exc).__name__))

    async def _fetch_and_apply(self, source: SourceView, now: dt.datetime) -> PollOutcome:
        fetched = await self.fetcher.fetch(
            source.url, etag=source.etag, last_modified=source.last_modified
        )
        if fetched.not_modified:
            async with self.database.transaction() as session:
                await record_success(
                    session,
                    source.id,
                    worker=self.worker,
                    now=now,
                    status="not_modified",
                    etag=fetched.etag or source.etag,
                    last_modified=fetched.last_modified or source.last_modified,
                    # Unchanged, so what the last import skipped is still skipped.
                    note=source.last_error if not source.failures else None,
                )
            self._count_success(source.id, now)
            return PollOutcome(source.id, "not_modified")

        skipped: list[str] = []
        if source.kind is SourceKind.ICAL:
            async with self.database.sessions() as session:
                places = await known_places(session)
            rows, skipped = await asyncio.to_thread(_ical_rows, fetched.body, source, places)
        else:
            rows = await asyncio.to_thread(_datafile_rows, fetched.body, source.url)
        note = None
        if skipped:
            shown = "; ".join(skipped[:MAX_PROBLEMS_SHOWN])
            more = len(skipped) - MAX_PROBLEMS_SHOWN
            note = f"{len(skipped)} skipped: {shown}" + (f"; and {more} more" if more > 0 else "")
        async with self.database.transaction() as session:
            report = await apply_poll(session, source.id, rows, now=now, planner=self.planner)
            await record_success(
                session,
                source.id,
                worker=self.worker,
                now=now,
                status="ok",
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                note=note,
            )
        self._count_success(source.id, now)
        log.info(
            "source %s polled: %d new, %d changed, %d gone, %d kept edits, %d stale, %d skipped",
            source.id,
            len(report.added),
            len(report.changed),
            len(report.gone),
            len(report.kept_edits),
            report.stale,
            len(skipped),
        )
        if (report.added or report.changed) and self.on_imported is not None:
            await self.on_imported()
        return PollOutcome(source.id, "ok", report=report, skipped=skipped)

    async def _failed(
        self, source: SourceView, now: dt.datetime, failed: _PollFailed
    ) -> PollOutcome:
        log.info("source %s failed: %s: %s", source.id, failed.status, failed.error)
        async with self.database.transaction() as session:
            await record_failure(
                session,
                source.id,
                worker=self.worker,
                now=now,
                status=failed.status,
                error=failed.error,
                retry_after=failed.retry_after,
            )
        if self.metrics is not None:
            self.metrics.source_failures.labels(str(source.id)).inc()
        return PollOutcome(source.id, failed.status, error=failed.error)

    def _count_success(self, source_id: int, now: dt.datetime) -> None:
        if self.metrics is not None:
            self.metrics.source_last_success.labels(str(source_id)).set(now.timestamp())

    async def refresh_metrics(self) -> None:
        """Every source's last success on /metrics, as stored (any replica may have polled)."""
        if self.metrics is None:
            return
        async with self.database.sessions() as session:
            sources = await list_sources(session)
        for source in sources:
            label = str(source.id)
            self.metrics.source_failures.labels(label)  # present (at 0) from the start
            if source.last_success_at is not None:
                self.metrics.source_last_success.labels(label).set(
                    source.last_success_at.timestamp()
                )
