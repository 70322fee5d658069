"""Shared pieces of the benchmarks: result rows, the Markdown table, timing and machine facts.

Every benchmark returns a list of :class:`Row` (one measured quantity each) and prints them
with :func:`markdown_table`. ``bench/run_all.py`` concatenates the rows of every benchmark into
one table under a header naming the date, Python version and machine.

Verdicts: ``"yes"`` / ``"NO"`` for rows with a target, ``"-"`` for informational rows (a
comparison with another library, or a row that explains a bound).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "INFO",
    "TUESDAY_10AM",
    "Row",
    "best_of",
    "machine_header",
    "markdown_table",
    "print_table",
    "quiet",
    "rss_mb",
    "verdict",
]

T = TypeVar("T")
C = TypeVar("C")

#: Tuesday 2024-03-05 10:00 New York (EST), regular hours: where the live benchmarks start.
TUESDAY_10AM = dt.datetime(2024, 3, 5, 15, 0, 0, tzinfo=dt.timezone.utc)

#: The verdict of an informational row (no target).
INFO = "-"


@dataclass(frozen=True)
class Row:
    """One measured quantity: ``benchmark`` (e.g. ``"backfill"``), ``what`` was measured,
    the ``result`` as text (numbers and the ratio that matters), the ``target`` as text, and
    ``met``: ``"yes"``, ``"NO"`` or :data:`INFO`."""

    benchmark: str
    what: str
    result: str
    target: str = ""
    met: str = INFO


def verdict(ok: bool) -> str:
    """``"yes"`` or ``"NO"`` (upper case so a missed target stands out in the table)."""
    return "yes" if ok else "NO"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as a GitHub Markdown table (no trailing newline)."""
    lines = [
        "| Benchmark | Measurement | Result | Target | Met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = (row.benchmark, row.what, row.result, row.target or INFO, row.met)
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines)


def print_table(run: Callable[..., Sequence[Row]], config: C) -> int:
    """A benchmark's ``main``: ``run(config, log=...)`` with progress on stderr, the table on
    stdout; exit status 0 (a missed target is a row, not a failure)."""
    print(markdown_table(run(config, log=lambda message: print(message, file=sys.stderr))))
    return 0


def machine_header() -> str:
    """``date, Python x.y.z, OS, N cores`` as one Markdown line."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = cores
    machine = f"{platform.system()} {platform.machine()}, {usable} usable cores of {cores}"
    processor = _cpu_model()
    if processor:
        machine += f" ({processor})"
    return (
        f"Run {now}; Python {platform.python_version()} "
        f"({platform.python_implementation()}); {machine}."
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def rss_mb() -> float:
    """Resident memory of this process in MiB (``VmRSS`` of ``/proc/self/status``; 0.0 where
    that file does not exist)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def best_of(runs: int, fn: Callable[[], T]) -> tuple[float, list[T]]:
    """Call ``fn`` ``runs`` times; return the fastest wall time in seconds and every result."""
    best = float("inf")
    results: list[T] = []
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        results.append(fn())
        best = min(best, time.perf_counter() - started)
    return best, results


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the package's log output and the expected ``InsecureRequestWarning`` of a
    client told not to verify the simulator's self-signed certificate (ibind's
    ``cacert=False``). Other warnings still surface."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            with contextlib.suppress(ImportError):
                from urllib3.exceptions import InsecureRequestWarning

                warnings.simplefilter("ignore", InsecureRequestWarning)
            yield
    finally:
        root.setLevel(level)


def python_version() -> str:
    """``3.11.9`` style."""
    return ".".join(str(part) for part in sys.version_info[:3])
