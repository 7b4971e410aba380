"""The fan-out benchmark's summary: what a message costs the whole machine."""

from __future__ import annotations

import os

from bench.fanout import assess, cpu_budget, round_trip_section, target_lines, time_per_message


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


def test_time_between_a_senders_messages_is_split_into_round_trip_mark_and_the_rest() -> None:
    rows = {
        "raw_aiohttp": {"messages_per_second": 10_000.0, "concurrency": 16},  # 1.6 ms
        "dispatcher_sqlite": {
            "messages_per_second": 4_000.0,  # 4 ms a sender
            "max_in_flight": 16,
            "sending_ms": 1.5,
            "recording_ms": 1.25,
        },
        "dispatcher_postgresql": {"messages_per_second": 3_000.0, "max_in_flight": 16},
    }
    assert time_per_message(rows) == [
        "- Time between one sender's messages: the raw loop 1.60 ms; the dispatcher on "
        'SQLite 4.00 ms: 1.50 on its way to the server and back, 1.25 waiting for its "sent" '
        "mark, 1.25 the rest (claims, rendering, the event loop's other work). The 2,000/s "
        "target allows 8.00 ms."
    ]
    assert time_per_message({"dispatcher_sqlite": rows["dispatcher_sqlite"]}) == []


def test_the_round_trip_table_compares_each_sender_with_the_raw_loop() -> None:
    section = round_trip_section(
        {
            "round_trip_ms": 50.0,
            "rows": {
                "dispatcher_sqlite": {
                    "max_in_flight": 16,
                    "messages": 3000,
                    "messages_per_second": 304.0,
                    "recording_ms": 2.5,
                },
                "raw_aiohttp": {"concurrency": 16, "messages": 3000, "messages_per_second": 320.0},
            },
        }
    )
    assert section.startswith("**The same with a 50 ms round trip.**")
    assert "| dispatcher, SQLite | 16 | 3,000 | 304 | 0.950 | 2.50 |" in section
    assert "| raw aiohttp POST loop | 16 | 3,000 | 320 | 1.000 |  |" in section


def test_every_fan_out_target_is_stated_met_or_not_met_per_database() -> None:
    def dispatcher(per_second: float) -> dict[str, float]:
        return {"messages_per_second": per_second, "max_in_flight": 16}

    rows = {
        "dispatcher_sqlite": dispatcher(4_000.0),
        "dispatcher_postgresql": dispatcher(1_900.0),  # under 2,000/s
        "raw_aiohttp": {"messages_per_second": 11_000.0, "concurrency": 16},
        "ptb_httpx": {"messages_per_second": 600.0, "concurrency": 1},
    }
    round_trip = {
        "dispatcher_sqlite": dispatcher(285.0),  # 0.95×
        "dispatcher_postgresql": dispatcher(255.0),  # 0.85×
        "raw_aiohttp": {"messages_per_second": 300.0, "concurrency": 16},
    }
    assessed = assess(rows, round_trip)
    assert {backend: {k: t["met"] for k, t in ts.items()} for backend, ts in assessed.items()} == {
        "sqlite": {
            "loopback_messages_per_second": True,
            "loopback_vs_ptb_default": True,
            "round_trip_vs_raw_aiohttp": True,
        },
        "postgresql": {
            "loopback_messages_per_second": False,
            "loopback_vs_ptb_default": True,
            "round_trip_vs_raw_aiohttp": False,
        },
    }
    assert target_lines(assessed, round_trip=False) == [
        "- dispatcher on SQLite on loopback: 4,000 messages/s (target ≥ 2,000/s): met",
        "- dispatcher on SQLite on loopback: 6.67× PTB's default send loop (target ≥ 3×): met",
        "- dispatcher on PostgreSQL on loopback: 1,900 messages/s (target ≥ 2,000/s): not met",
        "- dispatcher on PostgreSQL on loopback: 3.17× PTB's default send loop (target ≥ 3×): met",
    ]
    assert target_lines(assessed, round_trip=True) == [
        "- dispatcher on SQLite at a 50 ms round trip: 0.950× the raw loop (target ≥ 0.9×): met",
        "- dispatcher on PostgreSQL at a 50 ms round trip: 0.850× the raw loop (target ≥ 0.9×): "
        "not met",
    ]
