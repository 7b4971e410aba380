"""Benchmark 5: messages/s against concurrency for the three fan-out senders, as a PNG
beside the results (from benchmark 1's measurements, run now if they are missing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import markdown_table, write_results

NAME = "plot"
IMAGE = "fanout-concurrency.png"
LABELS = {
    "raw_aiohttp": "raw aiohttp POST loop",
    "dispatcher": "summitbot dispatcher (SQLite: claim, send, record)",
    "ptb_httpx": "PTB send loop, default transport (HTTPX)",
}


def draw(curve: dict[str, list[dict[str, float]]], machine: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5), dpi=100)
    for key, label in LABELS.items():
        points = curve.get(key, [])
        axes.plot(
            [p["concurrency"] for p in points],
            [p["messages_per_second"] for p in points],
            marker="o",
            label=label,
        )
    axes.set_xscale("log", base=2)
    levels = [p["concurrency"] for p in curve.get("raw_aiohttp", [])]
    axes.set_xticks(levels, [f"{level:g}" for level in levels])
    axes.set_xlabel("messages in flight")
    axes.set_ylabel("sendMessage calls per second")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend()
    axes.set_title(
        f"Fan-out senders against a local Bot API server\n{machine.get('cpu', '')}, "
        f"{machine.get('cores', '?')} cores, {machine.get('measured_at', '')}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def run(out_dir: Path, *, quick: bool) -> dict[str, Any]:
    source = out_dir / "fanout.json"
    if not source.exists():
        from bench import fanout

        fanout.run(out_dir, quick=quick)
    fanout_results = json.loads(source.read_text())
    curve = fanout_results["curve"]
    draw(curve, fanout_results["machine"], out_dir / IMAGE)
    levels = [p["concurrency"] for p in curve["raw_aiohttp"]]
    table = markdown_table(
        ["sender", *(f"{level:g} in flight" for level in levels)],
        [
            (label, *(f"{p['messages_per_second']:,.0f}" for p in curve.get(key, [])))
            for key, label in LABELS.items()
        ],
    )
    markdown = (
        "## Messages/s against concurrency (fan-out senders)\n\n"
        f"![messages/s against concurrency]({IMAGE})\n\n" + table
    )
    results = {
        "benchmark": NAME,
        "quick": fanout_results["quick"],
        "image": IMAGE,
        "from": "fanout.json",
        "machine": fanout_results["machine"],
        "curve": curve,
    }
    write_results(out_dir, NAME, results, markdown)
    return results
