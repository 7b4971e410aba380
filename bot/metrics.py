"""What /metrics reports, in the Prometheus text format (prometheus-client).

One registry per application (not the library's global one), so several bots in one
process - the tests start many - never share or clash over counters.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from telegram import Update

# Handler time: most replies take a few milliseconds; a slow database shows in the tail.
HANDLER_BUCKETS = (0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Dispatcher lag: how long after its due instant a delivery went out.
LAG_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def update_type(update: object) -> str:
    """``message``, ``callback_query``, ``my_chat_member``…: the kind of an update."""
    if update is None:
        return "job"  # an error in a scheduled job, not in an update
    if isinstance(update, Update):
        for name in Update.ALL_TYPES:
            if getattr(update, name, None) is not None:
                return name
        return "other"
    return type(update).__name__


class Metrics:
    """The counters, histograms and gauges of one bot process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.updates = Counter(
            "summitbot_updates",
            "Updates handled, by update type.",
            ["type"],
            registry=registry,
        )
        self.update_errors = Counter(
            "summitbot_update_errors",
            "Updates whose handling raised an error, by update type.",
            ["type"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "summitbot_handler_seconds",
            "Time to handle one update, from receipt to the last reply, by update type.",
            ["type"],
            buckets=HANDLER_BUCKETS,
            registry=registry,
        )
        self.deliveries = Counter(
            "summitbot_deliveries",
            "Reminders, notices, digests and announcements by outcome "
            "(sent, failed, skipped, retried).",
            ["outcome"],
            registry=registry,
        )
        self.dispatcher_lag = Histogram(
            "summitbot_dispatcher_lag_seconds",
            "How long after its due instant a delivery was sent.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "summitbot_delivery_queue_depth",
            "Deliveries due now and not yet sent or claimed.",
            registry=registry,
        )
        self.review_queue = Gauge(
            "summitbot_review_queue_items",
            "Items in the operators' review queue (facts that need a person), as last "
            "computed: every few minutes, and on /review and /stats.",
            registry=registry,
        )
        self.database_up = Gauge(
            "summitbot_database_up",
            "1 when the database answered the last time it was used, else 0.",
            registry=registry,
        )
        self.database_up.set(1)
        self.source_last_success = Gauge(
            "summitbot_source_last_success_timestamp_seconds",
            "When each followed source was last polled successfully (Unix time), by source id.",
            ["source"],
            registry=registry,
        )
        self.source_failures = Counter(
            "summitbot_source_failures",
            "Failed polls of each followed source (fetch, feed or data errors), by source id.",
            ["source"],
            registry=registry,
        )
        for outcome in ("sent", "failed", "skipped", "retried"):
            self.deliveries.labels(outcome)  # present (at 0) before the first delivery

    def record_deliveries(self, *, sent: int, failed: int, skipped: int, retried: int) -> None:
        for outcome, count in (
            ("sent", sent),
            ("failed", failed),
            ("skipped", skipped),
            ("retried", retried),
        ):
            if count:
                self.deliveries.labels(outcome).inc(count)

    def exposition(self) -> bytes:
        """The text a Prometheus server scrapes."""
        return generate_latest(self.registry)


__all__ = ["CONTENT_TYPE", "Metrics", "update_type"]
