"""Run every benchmark and print one combined Markdown table (also written to a file).

    .venv/bin/python bench/run_all.py            # default, about 5 minutes on 2 cores
    .venv/bin/python bench/run_all.py --quick    # about 80 seconds
    .venv/bin/python bench/run_all.py --only backfill,replay

The table starts with the date, Python version and machine. It is written to
``bench/results/latest.md`` (``--output`` to change, ``--output -`` for none). Progress goes
to stderr. Exit status 0 even when a target is missed: the table says so (``NO``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_backfill
import bench_barstore
import bench_broker
import bench_live
import bench_replay
from benchlib import Row, machine_header, markdown_table

__all__ = ["BENCHMARKS", "main"]

RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"

#: A benchmark: (its command-line arguments, a progress logger) -> table rows.
Runner = Callable[[Sequence[str], Callable[[str], None]], list[Row]]


def _backfill(argv: Sequence[str], log: Callable[[str], None]) -> list[Row]:
    return bench_backfill.run(bench_backfill.parse_config(argv), log=log)


def _replay(argv: Sequence[str], log: Callable[[str], None]) -> list[Row]:
    return bench_replay.run(bench_replay.parse_config(argv), log=log)


def _live(argv: Sequence[str], log: Callable[[str], None]) -> list[Row]:
    return bench_live.run(bench_live.parse_config(argv), log=log)


def _barstore(argv: Sequence[str], log: Callable[[str], None]) -> list[Row]:
    return bench_barstore.run(bench_barstore.parse_config(argv), log=log)


def _broker(argv: Sequence[str], log: Callable[[str], None]) -> list[Row]:
    return bench_broker.run(bench_broker.parse_config(argv), log=log)


#: The smallest configurations that still exercise every row (the smoke test's).
SMOKE = {
    "backfill": ["--start", "2024-03-27", "--end", "2024-03-29", "--latency", "0.05"],
    "replay": ["--runs", "1"],
    "live": [
        "--feeds",
        "3",
        "--window",
        "1",
        "--poll",
        "0.2",
        "--speed",
        "150",
        "--bars",
        "2",
        "--soak",
        "3",
    ],
    "barstore": ["--smoke"],
    "broker": ["--orders", "1", "--speed", "60"],
}

BENCHMARKS: dict[str, Runner] = {
    "backfill": _backfill,
    "replay": _replay,
    "live": _live,
    "barstore": _barstore,
    "broker": _broker,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="about 80 seconds")
    size.add_argument("--smoke", action="store_true", help="seconds; only checks it all runs")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--output", default=str(RESULTS), help="Markdown file ('-': none)")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    mode = "smoke" if args.smoke else "quick" if args.quick else "default"

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.monotonic()
    rows: list[Row] = []
    for name in names:
        bench_argv = SMOKE[name] if args.smoke else ["--quick"] if args.quick else []
        rows += BENCHMARKS[name](bench_argv, log)
    elapsed = time.monotonic() - started
    report = "\n".join(
        [
            f"## Benchmark results ({mode} configuration)",
            "",
            machine_header(),
            f"`bench/run_all.py{' --' + mode if mode != 'default' else ''}` took "
            f"{elapsed:.0f} s. Ratios are measured side by side in this one run.",
            "",
            markdown_table(rows),
            "",
        ]
    )
    print(report, end="")
    if args.output != "-":
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report, encoding="utf-8")
        log(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
