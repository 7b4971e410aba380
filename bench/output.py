"""What every benchmark writes: the machine it ran on, JSON figures and a Markdown table."""

from __future__ import annotations

import json
import os
import platform
import resource
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """The machine and software the figures come from."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_mb": _memory_total_mb(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "sqlalchemy": sqlalchemy.__version__,
        "sqlite": sqlite3.sqlite_version,
        # Other work on a shared machine shows here: compare ratios, not absolute figures.
        "load_average_1_5_15": [round(load, 2) for load in os.getloadavg()],
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, name: str, result: dict[str, Any], markdown: str) -> None:
    """``out_dir/<name>.json`` and ``out_dir/<name>.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out_dir / f"{name}.md").write_text(markdown)
