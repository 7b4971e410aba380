"""Where reminders and notices get sent.

Kept whole, though over 500 lines: it is essentially one class, the :class:`Dispatcher`,
whose sweep, senders, outcome recording and outage and stop handling share its state
(the sweep's lock and send queue, the ledger's group commit, the claims renewed but
not yet recorded, whether the database answers).

The database is the source of truth; APScheduler (PTB's JobQueue) only wakes the
dispatcher: a short repeating sweep ("reminder-sweep") plus a one-shot wake-up
at the next due instant ("reminder-wakeup"). There is no job per reminder and
nothing is pickled, so a restart loses nothing and the number of jobs is fixed.

One sweep: plan what comes due within the horizon, put back claims a dead
process left, then claim due deliveries in batches (atomically; replicas share
the work), send each through the rate limiter and record the outcome:
- sent: marked with Telegram's message id;
- 403 (blocked, kicked, chat deleted) and "chat not found": the chat is marked
  inactive and its pending deliveries are skipped;
- a group upgraded to a supergroup: the chat moves to the new id and the
  message is sent there;
- 429: every send pauses for ``retry_after``, the delivery goes back unchanged;
- 5xx, network errors, time-outs: retried with back-off up to the attempt limit,
  then marked failed with the reason.

The windows where a message can be sent twice: the process dies after Telegram
accepted a message and before its row is marked sent; or a send times out after
Telegram accepted it (it is retried, as the issue of a lost reminder is worse).
Both are limited to the messages in flight (``messages_in_flight``: 16 by default). Claims of
a dead process are put back after ``DELIVERY_LEASE_SECONDS`` (at once when this
process holds the SQLite database alone); a claim is renewed right before its
send (in the same write as the sender's last "sent" mark when the send follows at
once: ``bot/delivery/send_queue.py``), so one that waited longer than the lease is never sent
by two replicas.

When the database cannot be reached, nothing is sent (a claim cannot be renewed),
the sweep ends and the next one tries again: deliveries pause and resume by
themselves. A message Telegram accepted is recorded as sent however long the
database takes to come back, so it is never sent again. Claims this process could
not send go back to the queue at its next sweep, or when it stops (``stop``).

A fan-out does as little as it can per message: the deliveries of one claimed batch
share one query for their chats, one load of each event, one render per event, language
and time zone, and its encoding (``bot/delivery/prepared_message.py``); renewals and
"sent" marks from all sends in flight are written together by group commit
(``bot/delivery/group_commit.py``: one write at a time on SQLite, two at once on
PostgreSQL), on connections held for the sweep (``storage/send_ledger.py``). A sender's
next renewal goes in the write of its last mark, and the next batch is claimed while
this one goes out (on PostgreSQL at half a batch, on SQLite as its last delivery is
taken: ``bot/delivery/send_queue.py``); each send waits for its own mark before it
counts as done, which is what bounds a crash's repeats. How these were measured:
docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter
from telegram.ext import CallbackContext, JobQueue

from bot.clock import Clock
from bot.delivery.group_commit import GroupCommit
from bot.delivery.prepared_message import PreparedMessage
from bot.delivery.ratelimit import DeliveryRateLimiter
from bot.delivery.send_queue import SendQueue
from bot.metrics import Metrics
from bot.presentation import render
from bot.presentation.i18n import directional, translator
from config.settings import DEFAULT_DELIVERY_MAX_IN_FLIGHT, Settings
from storage.chats import chat_views, deactivate_chat, migrate_chat
from storage.claims import (
    ClaimedDelivery,
    claim_due,
    count_due,
    mark_failed,
    mark_skipped,
    move_delivery,
    next_due_at,
    release_claims,
    requeue_abandoned,
    retry_later,
)
from storage.database import Database, is_unavailable
from storage.models import ChatType, DeliveryKind, EventChange
from storage.notices import DIGEST_DAYS
from storage.planning import Planner
from storage.queries import Catalogue
from storage.retention import prune_ledger
from storage.review import review_queue
from storage.send_ledger import SendLedger
from storage.views import ChatView, EventView

log = logging.getLogger(__name__)

SWEEP_JOB = "reminder-sweep"
WAKEUP_JOB = "reminder-wakeup"
# Deliveries claimed at once. Each batch costs a claim, a query for its chats, a load of
# each event and a render per language, and on SQLite nothing is sent while a claim runs:
# 500 sent about 10 % more a second than 200, and 1,000 no more. What one replica holds,
# up to a batch and a half on PostgreSQL (the next is claimed at half a batch), goes out
# in about 30 s at the default 25 messages/s, inside the 300 s lease; a crashed
# replica's claims wait for the lease (with 200, some 300 of them).
BATCH_SIZE = 500
MAX_IN_FLIGHT = DEFAULT_DELIVERY_MAX_IN_FLIGHT  # DELIVERY_MAX_IN_FLIGHT unless set
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_MAX_SECONDS = 600.0
# Ledger writes (marks, renewals) at once on PostgreSQL, each on a connection of its own.
# One at a time left a mark waiting for the write before it as well as its own; SQLite
# has one writer anyway.
LEDGER_WRITERS = 2
# A claim renewed with the sender's last mark (bot/delivery/send_queue.py) counts for its send
# only this long after; later (the rate limiter, a 429) it is renewed again, alone.
RENEWAL_FRESH_SECONDS = 0.05
# Kinds that may have nothing to say when due (an empty digest, an empty review queue):
# then recorded as skipped, not sent.
MAY_BE_EMPTY = frozenset({DeliveryKind.DIGEST, DeliveryKind.REVIEW_NOTICE})
# Recording an outcome while the database is away: wait this long between tries.
RECORD_RETRY_SECONDS = (0.25, 0.5, 1.0)
# How often a sweep removes old finished deliveries (storage/retention.py); at once again
# while the last call found more than it may remove in one go.
PRUNE_EVERY = dt.timedelta(hours=1)


@dataclass
class SweepResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    requeued: int = 0
    planned: int = 0
    pruned: int = 0  # old finished deliveries removed (counted per day)
    errors: list[str] = field(default_factory=list)
    # Of the messages sent: seconds on their way to Telegram and back, and then waiting
    # for their "sent" mark (each sender's next message waits for both), summed.
    sending_seconds: float = 0.0
    recording_seconds: float = 0.0


def delivery_rate(settings: Settings) -> float:
    """Messages a second all deliveries together may send (per chat limits apply too)."""
    if settings.allow_paid_broadcast:
        return settings.paid_broadcast_rate_per_second
    return settings.delivery_rate_per_second


# What a send's round trip to Telegram is assumed to take when sizing what is in flight:
# each sender sends one message a round trip, plus the wait for its mark. 250 ms keeps a
# paid broadcast to its rate over round trips up to about 200 ms; sized for 100 ms, it
# fell well behind at 200 ms. Each batch's log line says what a message took (``send_ms``
# and ``record_ms``); a bot farther from Telegram sets DELIVERY_MAX_IN_FLIGHT to at least
# its rate times their sum.
TELEGRAM_ROUND_TRIP_SECONDS = 0.25


def messages_in_flight(settings: Settings) -> int:
    """``DELIVERY_MAX_IN_FLIGHT``, or by default enough to keep up the delivery rate at
    250 ms round trips and never fewer than 16: 16 for the usual 25 a second, 238 for
    paid broadcasts at 950. More in flight is more a crash can repeat, so it grows only
    where the rate needs it."""
    if settings.delivery_max_in_flight is not None:
        return settings.delivery_max_in_flight
    needed = math.ceil(delivery_rate(settings) * TELEGRAM_ROUND_TRIP_SECONDS)
    return max(DEFAULT_DELIVERY_MAX_IN_FLIGHT, needed)


def _worker_name() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Dispatcher:
    """Sends due reminders and notices, exactly once as far as Telegram allows."""

    def __init__(
        self,
        database: Database,
        catalogue: Catalogue,
        clock: Clock,
        settings: Settings,
        planner: Planner | None = None,
        limiter: DeliveryRateLimiter | None = None,
        max_in_flight: int | None = None,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.database = database
        self.catalogue = catalogue
        self.clock = clock
        self.settings = settings
        self.planner = planner or Planner()
        self.metrics = metrics or Metrics()
        self.limiter = limiter or DeliveryRateLimiter(
            overall_per_second=delivery_rate(settings),
            enabled=settings.delivery_rate_limit,
        )
        self.worker = _worker_name()
        self.bot: Bot | None = None
        self._job_queue: JobQueue[Any] | None = None
        self._lock = asyncio.Lock()
        # As many senders as messages may be in flight, each taking the next delivery.
        self.max_in_flight = max_in_flight or messages_in_flight(settings)
        # Claims renewed before sending and sends recorded, together in few transactions.
        self._send_ledger = SendLedger(database, self.worker)
        self._ledger: GroupCommit[_Renewal | _Sent, bool] = GroupCommit(
            self._write_ledger, writers=1 if database.is_sqlite else LEDGER_WRITERS
        )
        self._queue: SendQueue[_Batch] | None = None  # the sweep's, while it sends
        self._started = False
        self.batch_size = BATCH_SIZE
        # True when this process is known to be the database's only user (``summitbot run``
        # on SQLite holds a lock): then claims left at start-up are abandoned for sure.
        self.sole_process = False
        self.database_available = True
        self._stopping = False
        self._stop_deadline: float | None = None
        # Deliveries whose claim was renewed for sending and whose outcome is not recorded
        # yet: Telegram may have them, so their claims are never handed back early.
        self._unrecorded: set[int] = set()
        self._stop_requested = asyncio.Event()
        # Told True when a sweep sends a fan-out (full batches of due deliveries), False
        # when it is done: the bot runs fewer updates at once meanwhile.
        self.on_fanout: Callable[[bool], None] | None = None
        self._sending_fanout = False
        # When the ledger was last pruned (the clock's time), and whether more was left.
        self._pruned_at: dt.datetime | None = None
        self._prune_more = False

    # --- scheduling ---------------------------------------------------------------

    def start(self, bot: Bot, job_queue: JobQueue[Any] | None) -> None:
        """Begin sweeping. Claims left by a previous run of this process kind are put back
        on the first sweep (on SQLite at once: no other process can hold them)."""
        self.bot = bot
        self._job_queue = job_queue
        if job_queue is not None:
            job_queue.run_repeating(
                self._sweep_job,
                interval=self.settings.reminder_sweep_seconds,
                first=0.5,
                name=SWEEP_JOB,
            )

    async def _sweep_job(self, _: CallbackContext[Any, Any, Any, Any]) -> None:
        await self.sweep(wait=False)

    async def poke(self) -> None:
        """Something new may be due soon (a subscription, an edit): wake at its instant."""
        async with self.database.sessions() as session:
            due = await next_due_at(session)
        self._schedule_wakeup(due)

    def wake_by(self, due: dt.datetime) -> None:
        """A reminder due at ``due`` was just planned: wake by then. Unlike :meth:`poke`
        it reads nothing (a burst of 🔔 taps each plans one); an earlier wakeup stays."""
        if self._job_queue is None:
            return
        delay = max((due - self.clock.now()).total_seconds(), 0.0)
        if delay >= self.settings.reminder_sweep_seconds:
            return  # the repeating sweep comes first
        at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay + 0.05)
        for job in self._job_queue.get_jobs_by_name(WAKEUP_JOB):
            if job.next_t is not None and job.next_t <= at:
                return
        self._job_queue.run_once(self._sweep_job, when=delay + 0.05, name=WAKEUP_JOB)

    def _schedule_wakeup(self, due: dt.datetime | None) -> None:
        if self._job_queue is None or due is None:
            return
        for job in self._job_queue.get_jobs_by_name(WAKEUP_JOB):
            job.schedule_removal()
        delay = max((due - self.clock.now()).total_seconds(), 0.0)
        if delay >= self.settings.reminder_sweep_seconds:
            return  # the repeating sweep comes first
        self._job_queue.run_once(self._sweep_job, when=delay + 0.05, name=WAKEUP_JOB)

    # --- one sweep ----------------------------------------------------------------

    async def sweep(self, *, wait: bool = True) -> SweepResult:
        """Plan, recover abandoned claims, and send everything due now.

        With ``wait=False`` (the timed jobs) it returns at once if a sweep is running.
        """
        result = SweepResult()
        if self._stopping or (not wait and self._lock.locked()):
            return result
        async with self._lock:
            try:
                await self._sweep(result)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                self._database_lost(exc)
            finally:
                # (_sweep says when the database answers; one lost while sending ends the
                # sweep without an error, and is still away)
                await self._release_send_ledger()
        return result

    async def _release_send_ledger(self) -> None:
        # A sweep cut short (stopping) may leave writes queued: they go first, on the
        # connection they would otherwise reopen and keep.
        await self._ledger.settled()
        try:
            await self._send_ledger.release()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self._database_lost(exc)

    async def _sweep(self, result: SweepResult) -> None:
        now = self.clock.now()
        try:
            async with self.database.transaction() as session:
                result.planned = await self.planner.advance(session, now)
        except Exception as exc:  # a planning fault must not stop what is already planned
            if is_unavailable(exc):
                raise
            log.exception("planning reminders failed; sending what is planned")
        async with self.database.transaction() as session:
            lease = dt.timedelta(seconds=self.settings.delivery_lease_seconds)
            cutoff = now if (self.sole_process and not self._started) else now - lease
            result.requeued = await requeue_abandoned(session, cutoff)
            # Nothing of ours is in flight between sweeps: claims left from an outage
            # go back now rather than after the lease.
            result.requeued += await release_claims(session, self.worker, self._unrecorded)
        self._started = True
        self._database_back()  # (it answered): claims may go on until it goes away again
        await self._send_due(result)
        if not self.database_available:
            return  # the next sweep tries again
        async with self.database.sessions() as session:
            due = await next_due_at(session)
            self.metrics.queue_depth.set(await count_due(session, self.clock.now()))
        self._schedule_wakeup(due)
        await self._prune(result)

    async def _prune(self, result: SweepResult) -> None:
        """Remove old finished deliveries, once every ``PRUNE_EVERY`` (after the sending,
        which never waits for it); a few batches a sweep while a backlog lasts."""
        now = self.clock.now()
        if (
            self._pruned_at is not None
            and not self._prune_more
            and abs(now - self._pruned_at) < PRUNE_EVERY
        ):
            return
        self._pruned_at, self._prune_more = now, False
        try:
            pruned = await prune_ledger(self.database, now, self.settings.delivery_retention_days)
        except Exception as exc:  # like planning: a fault here must not stop the sending
            if is_unavailable(exc):
                raise
            log.exception("pruning the delivery ledger failed")
            return
        self._prune_more, result.pruned = pruned.more, pruned.rows
        if pruned.rows:
            log.info(
                "delivery ledger: %d finished before %s removed, counted per day",
                pruned.rows,
                pruned.cutoff.date().isoformat(),
                extra={"pruned": pruned.rows},
            )

    async def _claim_batch(
        self, result: SweepResult
    ) -> tuple[list[ClaimedDelivery], _Batch] | None:
        """The next batch of due deliveries, claimed, with their chats read; None once
        nothing is due. Batches of stale deliveries only (skipped as they are claimed)
        are logged and passed over."""
        while True:
            started = time.perf_counter()
            async with self.database.transaction() as session:
                claimed = await claim_due(session, self.clock.now(), self.worker, self.batch_size)
            if not claimed.candidates:
                return None
            batch = await self._open_batch(claimed.deliveries, claimed.candidates, started)
            batch.result.skipped += claimed.skipped
            if claimed.candidates >= self.batch_size:  # a full batch: more are due
                self._fanout(True)
            if claimed.deliveries:
                return claimed.deliveries, batch
            self._batch_done(batch, result)

    def _fanout(self, sending: bool) -> None:
        if sending != self._sending_fanout:
            self._sending_fanout = sending
            if self.on_fanout is not None:
                self.on_fanout(sending)

    def _batch_done(self, batch: _Batch, result: SweepResult) -> None:
        done = batch.result
        result.sent += done.sent
        result.failed += done.failed
        result.skipped += done.skipped
        result.retried += done.retried
        result.sending_seconds += done.sending_seconds
        result.recording_seconds += done.recording_seconds
        self.metrics.record_deliveries(
            sent=done.sent, failed=done.failed, skipped=done.skipped, retried=done.retried
        )
        fields = {
            "worker": self.worker,
            "due": batch.candidates,
            "claimed": batch.claimed,
            "sent": done.sent,
            "failed": done.failed,
            "skipped": done.skipped,
            "retried": done.retried,
            "duration_ms": round((time.perf_counter() - batch.started) * 1000, 1),
            # Per message sent: its send until Telegram's answer (the network, Telegram and
            # this process's own waits), then the wait for its "sent" mark. A sender takes
            # its next message after both.
            "send_ms": _mean_ms(done.sending_seconds, done.sent),
            "record_ms": _mean_ms(done.recording_seconds, done.sent),
        }
        log.info(
            "delivery batch: %d due, %d claimed, %d sent, %d failed, %d skipped, %d to retry",
            batch.candidates,
            batch.claimed,
            done.sent,
            done.failed,
            done.skipped,
            done.retried,
            extra=fields,
        )

    # --- the database going away --------------------------------------------------

    def _database_lost(self, error: BaseException) -> None:
        self.metrics.database_up.set(0)
        if self.database_available:
            log.warning("database unavailable (%r): deliveries paused", error)
        self.database_available = False

    def _database_back(self) -> None:
        self.metrics.database_up.set(1)
        if not self.database_available:
            log.warning("database reachable again: deliveries resumed")
        self.database_available = True

    async def _record(self, delivery_id: int, write: Callable[[], Awaitable[Any]]) -> None:
        """Record what happened to a message Telegram has seen, waiting for the database
        if it is away: a sent message left unrecorded would be sent again."""
        attempt = 0
        while True:
            try:
                await write()
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                self._database_lost(exc)
                if self._stop_deadline is not None and time.monotonic() > self._stop_deadline:
                    log.error(
                        "delivery %s: Telegram has it, but the database is unavailable and "
                        "the process is stopping; its claim stays until the lease ends",
                        delivery_id,
                    )
                    raise
                delay = RECORD_RETRY_SECONDS[min(attempt, len(RECORD_RETRY_SECONDS) - 1)]
                await asyncio.sleep(delay)
                attempt += 1
            else:
                self._unrecorded.discard(delivery_id)
                if not self.database_available:
                    # It answered: the sweep, which stopped sending when it went away,
                    # ends saying so.
                    self._database_back()
                return

    def _in_transaction(
        self, write: Callable[[AsyncSession], Awaitable[Any]]
    ) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            async with self.database.transaction() as session:
                await write(session)

        return run

    # --- stopping -----------------------------------------------------------------

    async def _paced(self, chat_id: int) -> bool:
        """Wait for the rate limiter's turn; False if the dispatcher stops meanwhile."""
        if self._stopping:
            return False
        if not self.limiter.enabled:
            return True
        turn = asyncio.ensure_future(self.limiter.acquire(chat_id))
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({turn, stop}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # the sweep cancelled: neither wait may outlive it
            turn.cancel()
            stop.cancel()
            raise
        stop.cancel()
        if turn.done() and not self._stopping:
            return True
        turn.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await turn
        return False

    def begin_stop(self, grace_seconds: float) -> None:
        """From now on claim nothing and start no send; ``stop`` ends by the deadline.

        Called as soon as the process is asked to stop (before the web server drains).
        """
        self._stopping = True
        self._stop_requested.set()
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + grace_seconds

    async def stop(self, grace_seconds: float) -> None:
        """Stop sweeping: finish the sends in flight, record them, put back the rest.

        Marks nothing sent that was not; returns by the deadline ``begin_stop`` set
        (or ``grace_seconds`` from now).
        """
        self.begin_stop(grace_seconds)
        assert self._stop_deadline is not None
        grace_seconds = max(self._stop_deadline - time.monotonic(), 0.1)
        if self._job_queue is not None:
            for job in (
                *self._job_queue.get_jobs_by_name(SWEEP_JOB),
                *self._job_queue.get_jobs_by_name(WAKEUP_JOB),
            ):
                job.schedule_removal()
        try:
            await asyncio.wait_for(self._lock.acquire(), grace_seconds)
        except TimeoutError:
            log.warning("deliveries still in flight after %.0f s; stopping anyway", grace_seconds)
            return
        try:
            await self._release_send_ledger()
            async with self.database.transaction() as session:
                released = await release_claims(session, self.worker, self._unrecorded)
            if released:
                log.info("stopping: %d claimed deliveries put back for other replicas", released)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("stopping without the database: claims return after the lease")
        finally:
            self._lock.release()

    # --- one delivery -------------------------------------------------------------

    async def _open_batch(
        self, deliveries: list[ClaimedDelivery], candidates: int = 0, started: float = 0.0
    ) -> _Batch:
        chats = await chat_views(self.database, (d.chat_id for d in deliveries))
        return _Batch(chats, candidates=candidates, claimed=len(deliveries), started=started)

    async def _rendered(
        self, delivery: ClaimedDelivery, chat: ChatView, batch: _Batch
    ) -> render.Reply | None:
        """The message, rendered once per batch for all chats that read it alike."""
        if delivery.kind is DeliveryKind.DIGEST:  # a digest is each chat's own
            return await self._render(delivery, chat, batch)
        key = (
            delivery.kind,
            delivery.event_key,
            delivery.occurrence_at,
            delivery.slot,
            delivery.change_id,
            chat.language,
            chat.timezone,
        )
        rendering = batch.replies.get(key)
        if rendering is None:
            rendering = asyncio.ensure_future(self._render(delivery, chat, batch))
            batch.replies[key] = rendering
        return await rendering

    def _prepared(
        self, delivery: ClaimedDelivery, reply: render.Reply, chat: ChatView, batch: _Batch
    ) -> PreparedMessage:
        """The message as sent, encoded once per batch, rendering and kind of chat."""
        key = (id(reply), chat.type is ChatType.CHANNEL)
        if key not in batch.prepared:
            tr = translator(chat.language)
            keyboard = reply.keyboard
            if chat.type is ChatType.CHANNEL:
                # Channel readers cannot use callback buttons for themselves: link to the bot.
                username = self.bot.username if self.bot else ""
                keyboard = render.channel_keyboard(delivery.event_key, username, tr)
            prepared = PreparedMessage(
                directional(reply.text, tr),
                keyboard,
                # Paid broadcasts lift Telegram's overall limit (to 1000/s), for Stars.
                allow_paid_broadcast=self.settings.allow_paid_broadcast,
            )
            batch.prepared[key] = (reply, prepared)  # the reply kept: its id stays unique
        return batch.prepared[key][1]

    async def _event(self, key: str, batch: _Batch) -> EventView | None:
        loading = batch.events.get(key)
        if loading is None:
            loading = batch.events[key] = asyncio.ensure_future(self.catalogue.event(key))
        return await loading

    async def _render(
        self, delivery: ClaimedDelivery, chat: ChatView, batch: _Batch
    ) -> render.Reply | None:
        """The message, or None when there is nothing to send (e.g. an empty digest)."""
        tr = translator(chat.language)
        now = self.clock.now()
        if delivery.kind is DeliveryKind.DIGEST:
            window = dt.timedelta(days=delivery.slot)
            occurrences = [
                e.next_occurrence(now) for e in await self.catalogue.followed_events(chat.id)
            ]
            events = [e for e in occurrences if e is not None and e.fits_digest(now, window)]
            return render.digest(events, delivery.slot, chat, now, tr) if events else None
        if delivery.kind is DeliveryKind.REVIEW_NOTICE:
            queue = await review_queue(self.catalogue, now)
            return render.review_notice(queue, chat, now, tr) if queue.items else None
        event = await self._event(delivery.event_key, batch) if delivery.event_key else None
        if event is None:
            return None
        if delivery.kind is DeliveryKind.ANNOUNCEMENT:
            return render.event_card(event, chat, now, tr)
        if delivery.kind is DeliveryKind.NEW_EVENT:
            return render.new_event_notice(event, chat, now, tr)
        if delivery.kind is DeliveryKind.CHANGE_NOTICE:
            async with self.database.sessions() as session:
                change = (
                    await session.get(EventChange, delivery.change_id)
                    if delivery.change_id
                    else None
                )
                if change is None:
                    return None
                old, new = dict(change.old), dict(change.new)
            places = await self.catalogue.places([old.get("place"), new.get("place")])
            return render.change_notice(event, old, new, places, chat, now, tr)
        occurrence = event.next_occurrence(delivery.occurrence_at - dt.timedelta(seconds=1))
        if occurrence is None:
            return None
        if delivery.kind is DeliveryKind.MONTH_NOTICE:
            return render.month_notice(occurrence, chat, now, tr)
        return render.reminder(occurrence, chat, now, tr)

    async def _load_chat(self, chat_id: int) -> ChatView | None:
        return (await chat_views(self.database, [chat_id])).get(chat_id)

    async def _write_ledger(self, writes: list[_Renewal | _Sent]) -> list[bool]:
        """Renewals and sends, in one transaction: for each renewal, whether its claim is
        still this worker's (True for each mark)."""
        renewals = [w.delivery_id for w in writes if isinstance(w, _Renewal)]
        sent = {w.delivery_id: w.message_id for w in writes if isinstance(w, _Sent)}
        ours = await self._send_ledger.write(renewals, sent, self.clock.now())
        return [w.delivery_id in ours if isinstance(w, _Renewal) else True for w in writes]

    def _renew(self, delivery_id: int) -> asyncio.Future[bool]:
        """Renew a claim in the ledger's next write: whether it is still this worker's."""
        return self._ledger.enqueue(_Renewal(delivery_id))

    async def _still_ours(self, delivery_id: int) -> bool:
        """Whether the claim is still this worker's, renewed for its send: with the
        sender's last mark a moment ago (``bot/delivery/send_queue.py``), or now."""
        renewed = self._queue.renewed(delivery_id) if self._queue is not None else None
        if renewed is None:
            renewed = self._renew(delivery_id)
        return await renewed

    async def _send_due(self, result: SweepResult) -> None:
        """Claim what is due, batch after batch, and deliver it with ``max_in_flight``
        senders, each taking the next delivery when its last is done.

        A fixed set of senders rather than a task per delivery behind a semaphore: the
        tasks and the semaphore's wake-ups cost CPU for every message.
        """
        queue: SendQueue[_Batch] = SendQueue(
            lambda: self._claim_batch(result),
            self._renew,
            fresh_for=RENEWAL_FRESH_SECONDS,
            # SQLite: one writer at a time; a claim beside the ledger's writes slows both,
            # so it waits until the last delivery of the batch is taken.
            claim_ahead=1 if self.database.is_sqlite else self.batch_size // 2,
            claiming=lambda: not self._stopping and self.database_available,
            batch_done=lambda batch: self._batch_done(batch, result),
        )

        async def sender() -> None:
            this = asyncio.current_task()
            upcoming: tuple[ClaimedDelivery, _Batch] | None = None

            def take_next() -> None:
                # As the last delivery's mark goes to the ledger: the next one's renewal
                # goes in the same write.
                nonlocal upcoming
                if upcoming is None:
                    upcoming = queue.take_now()

            while True:
                taken, upcoming = upcoming, None
                if taken is None and (taken := await queue.take()) is None:
                    return
                delivery, batch = taken
                try:
                    await self._deliver(delivery, batch.result, batch, take_next)
                except asyncio.CancelledError as exc:
                    if this is not None and this.cancelling():
                        raise  # the sweep itself is cancelled
                    # Raised by a library from a task of its own: one delivery lost, as
                    # any unexpected error; the others go on.
                    log.error("delivery %s was cancelled unexpectedly", delivery.id, exc_info=exc)
                except Exception as exc:  # the others go on
                    if not is_unavailable(exc):
                        log.error("a delivery failed unexpectedly", exc_info=exc)
                finally:
                    queue.finished(delivery, batch)

        self._queue = queue
        try:
            # Even a sender that stops cannot end the sweep early: the others take the rest.
            outcomes = await asyncio.gather(
                *(sender() for _ in range(self.max_in_flight)), return_exceptions=True
            )
        finally:
            self._queue = None
            self._fanout(False)
            await queue.close()
        for outcome in outcomes:  # (the sweep cancelled: gather raises, as it should)
            if isinstance(outcome, BaseException) and not is_unavailable(outcome):
                log.error("a sender stopped unexpectedly", exc_info=outcome)
        if queue.error is not None:
            raise queue.error

    async def _deliver(
        self,
        delivery: ClaimedDelivery,
        result: SweepResult,
        batch: _Batch,
        take_next: Callable[[], None] | None = None,
    ) -> None:
        try:
            await self._deliver_once(
                delivery, result, delivery.chat_id, batch, migrated=False, take_next=take_next
            )
        except Exception as exc:  # a bug must not stop the other deliveries
            if is_unavailable(exc):
                # Not sent, or sent and not recorded (then it stays claimed until the
                # lease ends); other claims go back at the next sweep.
                self._database_lost(exc)
                return
            log.exception("delivery %s failed unexpectedly", delivery.id)
            async with self.database.transaction() as session:
                await mark_failed(session, delivery.id, f"error: {exc!r}", self.clock.now())
            self._unrecorded.discard(delivery.id)
            result.failed += 1

    async def _deliver_once(
        self,
        delivery: ClaimedDelivery,
        result: SweepResult,
        chat_id: int,
        batch: _Batch,
        *,
        migrated: bool,
        take_next: Callable[[], None] | None = None,
    ) -> None:
        """Deliver one message; once it is sent, ``take_next`` (the sender's next delivery,
        its renewal joining this mark's write) runs right before the mark is submitted."""
        assert self.bot is not None, "Dispatcher.start() was not called"
        chat = batch.chats[chat_id] if chat_id in batch.chats else await self._load_chat(chat_id)
        if chat is not None and (chat.paused or not chat.is_active):
            async with self.database.transaction() as session:
                reason = "chat paused" if chat.paused else "chat inactive"
                await mark_skipped(session, delivery.id, reason, self.clock.now())
            result.skipped += 1
            return
        if (
            chat is not None
            and delivery.kind is DeliveryKind.DIGEST
            and DIGEST_DAYS.get(chat.digest) != delivery.slot
        ):
            async with self.database.transaction() as session:
                await mark_skipped(session, delivery.id, "digest turned off", self.clock.now())
            result.skipped += 1
            return
        reply = await self._rendered(delivery, chat, batch) if chat is not None else None
        if chat is not None and reply is None and delivery.kind in MAY_BE_EMPTY:
            async with self.database.transaction() as session:
                await mark_skipped(session, delivery.id, "nothing to say", self.clock.now())
            result.skipped += 1
            return
        if chat is None or reply is None:
            async with self.database.transaction() as session:
                await mark_failed(session, delivery.id, "chat or event gone", self.clock.now())
            result.failed += 1
            return
        prepared = self._prepared(delivery, reply, chat, batch)
        if not await self._paced(chat_id):
            return  # stopping: not sent, the claim goes back when the dispatcher stops
        if not await self._still_ours(delivery.id):
            log.warning("delivery %s was taken over while waiting; not sending", delivery.id)
            return
        self._unrecorded.add(delivery.id)
        sending_since = time.perf_counter()
        try:
            message_id = await prepared.send(self.bot, chat_id)
        except RetryAfter as exc:
            seconds = _seconds(exc.retry_after)
            self.limiter.pause(seconds)
            again = self.clock.now() + dt.timedelta(seconds=seconds)
            await self._record(
                delivery.id,
                self._in_transaction(
                    lambda session: retry_later(
                        session,
                        delivery.id,
                        again,
                        f"429: retry after {seconds:g}s",
                        count_attempt=False,
                    )
                ),
            )
            result.retried += 1
            self._schedule_wakeup(again)
        except ChatMigrated as exc:
            if migrated:
                raise
            new_chat_id = exc.new_chat_id

            async def follow(session: AsyncSession) -> None:
                await migrate_chat(
                    session, chat_id, new_chat_id, planner=self.planner, now=self.clock.now()
                )
                await move_delivery(session, delivery.id, new_chat_id)

            await self._record(delivery.id, self._in_transaction(follow))
            log.info("chat %s became %s; delivery %s follows", chat_id, new_chat_id, delivery.id)
            await self._deliver_once(
                delivery, result, new_chat_id, batch, migrated=True, take_next=take_next
            )
        except Forbidden as exc:
            await self._chat_gone(delivery, chat_id, f"403: {exc.message}", result)
        except BadRequest as exc:
            lost = ("chat not found", "need administrator rights", "not enough rights")
            if any(reason in exc.message.lower() for reason in lost):
                await self._chat_gone(delivery, chat_id, f"400: {exc.message}", result)
            else:
                reason = f"400: {exc.message}"
                await self._record(
                    delivery.id,
                    self._in_transaction(
                        lambda session: mark_failed(session, delivery.id, reason, self.clock.now())
                    ),
                )
                result.failed += 1
        except NetworkError as exc:  # 5xx, connection errors and time-outs
            await self._retry_or_fail(delivery, f"{type(exc).__name__}: {exc.message}", result)
        else:
            answered_at = time.perf_counter()
            if take_next is not None:
                take_next()
            await self._record(
                delivery.id, lambda: self._ledger.submit(_Sent(delivery.id, message_id))
            )
            result.sent += 1
            result.sending_seconds += answered_at - sending_since
            result.recording_seconds += time.perf_counter() - answered_at
            if delivery.due_at is not None:
                lag = (self.clock.now() - delivery.due_at).total_seconds()
                self.metrics.dispatcher_lag.observe(max(lag, 0.0))

    async def _chat_gone(
        self, delivery: ClaimedDelivery, chat_id: int, reason: str, result: SweepResult
    ) -> None:
        now = self.clock.now()

        async def gone(session: AsyncSession) -> None:
            await mark_failed(session, delivery.id, reason, now)
            await deactivate_chat(session, chat_id, f"chat inactive ({reason})", now)

        await self._record(delivery.id, self._in_transaction(gone))
        log.info("chat %s is gone (%s): marked inactive", chat_id, reason)
        result.failed += 1

    async def _retry_or_fail(
        self, delivery: ClaimedDelivery, reason: str, result: SweepResult
    ) -> None:
        attempts = delivery.attempts + 1
        now = self.clock.now()
        if attempts >= self.settings.delivery_max_attempts:
            message = f"gave up after {attempts}: {reason}"
            await self._record(
                delivery.id,
                self._in_transaction(
                    lambda session: mark_failed(session, delivery.id, message, now)
                ),
            )
            result.failed += 1
            return
        backoff = min(BACKOFF_BASE_SECONDS * 2 ** (attempts - 1), BACKOFF_MAX_SECONDS)
        again = now + dt.timedelta(seconds=backoff)
        await self._record(
            delivery.id,
            self._in_transaction(lambda session: retry_later(session, delivery.id, again, reason)),
        )
        result.retried += 1
        self._schedule_wakeup(again)


@dataclass(frozen=True)
class _Renewal:
    delivery_id: int


@dataclass(frozen=True)
class _Sent:
    delivery_id: int
    message_id: int | None


@dataclass
class _Batch:
    """What the deliveries of one claimed batch share: their chats (one query), each event
    (loaded once) and each message (rendered once per event, language and time zone)."""

    chats: dict[int, ChatView]
    candidates: int = 0  # due rows claimed, the stale ones included
    claimed: int = 0
    started: float = 0.0  # when its claim began (perf_counter)
    result: SweepResult = field(default_factory=SweepResult)  # of its deliveries
    events: dict[str, asyncio.Future[EventView | None]] = field(default_factory=dict)
    replies: dict[tuple[object, ...], asyncio.Future[render.Reply | None]] = field(
        default_factory=dict
    )
    prepared: dict[tuple[int, bool], tuple[render.Reply, PreparedMessage]] = field(
        default_factory=dict
    )


def _mean_ms(seconds: float, count: int) -> float | None:
    return round(seconds / count * 1000, 2) if count else None


def _seconds(value: float | dt.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
