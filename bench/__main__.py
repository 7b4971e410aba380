"""Run the benchmarks: ``python -m bench [--quick] [--only NAME ...] [--out bench/results]``.

Each benchmark writes ``<name>.json`` and ``<name>.md`` into the output directory; this
then writes ``summary.md`` from every ``<name>.md`` there, in the order below, and (for
the default directory) puts the same figures into docs/benchmarks.md between its
``<!-- bench:results -->`` markers, so the docs always quote the committed results.
The benchmarks are not part of the test run (pytest collects tests/ only).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import machine
from bench.output import DEFAULT_OUT_DIR

BENCHMARKS = ("fanout", "broadcast", "latency", "burst", "scale", "retention", "plot")
DEFAULT_OUT = DEFAULT_OUT_DIR
BENCHMARKS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
START_MARK, END_MARK = "<!-- bench:results -->", "<!-- /bench:results -->"


def write_summary(out_dir: Path) -> Path:
    sections = [
        (out_dir / f"{name}.md").read_text()
        for name in BENCHMARKS
        if (out_dir / f"{name}.md").exists()
    ]
    measured_on = machine()
    for name in BENCHMARKS:  # the machine the results were measured on, not this one
        path = out_dir / f"{name}.json"
        if path.exists():
            measured_on = json.loads(path.read_text()).get("machine", measured_on)
            break
    header = (
        "# Benchmark results\n\n"
        f"Measured on {measured_on.get('cpu')}, {measured_on.get('cores')} cores, "
        f"{measured_on.get('memory')}, {measured_on.get('os')}, Python "
        f"{measured_on.get('python')}, {measured_on.get('measured_at')} "
        f"(load average {measured_on.get('load_average_1_5_15_min')}). "
        "Regenerate with `make bench`.\n"
    )
    summary = out_dir / "summary.md"
    summary.write_text("\n".join([header, *sections]))
    return summary


def quote_in_docs(summary: Path, page: Path = BENCHMARKS_PAGE) -> bool:
    """Put the summary (headings one level down, images from bench/results/) in
    docs/benchmarks.md."""
    text = page.read_text()
    start, end = text.find(START_MARK), text.find(END_MARK)
    if start < 0 or end < start:
        return False
    body = summary.read_text().replace("# Benchmark results\n\n", "", 1)
    body = body.replace("\n## ", "\n#### ")
    # Relative links only, from docs/ to bench/results/.
    body = re.sub(r"\]\((?![a-z]+:|/|#)", "](../bench/results/", body)
    page.write_text(text[: start + len(START_MARK)] + "\n" + body + "\n" + text[end:])
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (under 2 minutes)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME", help="run these")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = [name for name in BENCHMARKS if not args.only or name in args.only]
    failed = False
    for name in chosen:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.{name}":
                raise
            print(f"{name}: skipped, bench/{name}.py is not in this checkout", flush=True)
            continue
        print(f"{name}: running{' (quick)' if args.quick else ''}…", flush=True)
        started = time.monotonic()
        try:
            results: dict[str, Any] = module.run(args.out, quick=args.quick)
        except Exception as exc:  # report and go on with the others
            failed = True
            print(f"{name}: failed: {exc!r}", file=sys.stderr, flush=True)
            continue
        print(f"{name}: done in {time.monotonic() - started:.0f} s", flush=True)
        markdown = args.out / f"{name}.md"
        if markdown.exists() and results:
            print(markdown.read_text(), flush=True)
    summary = write_summary(args.out)
    print(f"summary: {summary}")
    if args.out.resolve() == DEFAULT_OUT and quote_in_docs(summary):
        print(f"docs/benchmarks.md: figures updated from {summary}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
