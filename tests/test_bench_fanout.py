"""The fan-out benchmark's summary: what a message costs the whole machine."""

from __future__ import annotations

import os

from bench.fanout import cpu_budget


def test_the_cpu_budget_adds_client_server_and_database_per_message() -> None:
    cores = os.cpu_count() or 1
    rows = {
        "raw_aiohttp": {"cpu_seconds_per_1000": 0.15, "server_cpu_seconds_per_1000": 0.10},
        "dispatcher_postgresql": {
            "cpu_seconds_per_1000": 0.40,
            "server_cpu_seconds_per_1000": 0.10,
            "database_cpu_seconds_per_1000": 0.30,
        },
        "dispatcher_sqlite": {"cpu_seconds_per_1000": 0.40},  # no server figure: no line
    }
    assert cpu_budget(rows) == [
        f"- CPU a message for the raw loop, all processes: 0.25 ms; on {cores} cores at most "
        f"{cores * 4000:,} messages/s",
        f"- CPU a message for the dispatcher on PostgreSQL, all processes: 0.80 ms; on {cores} "
        f"cores at most {cores * 1250:,} messages/s",
    ]
