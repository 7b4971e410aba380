"""Where the benchmarks write (``bench/results``) and how much memory a process used.

The machine description, the Markdown tables and the JSON files are ``bench.common``'s.
"""

from __future__ import annotations

import resource
from pathlib import Path

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "results"


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
