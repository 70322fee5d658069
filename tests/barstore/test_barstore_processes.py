"""Several processes on one store: concurrent writers, readers during writes, killed writers.

Processes are started with ``spawn`` (a fresh interpreter, as sweep workers are). Nothing here
waits on time: workers start together on an Event, and the parent reads until the writer
process has ended.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from backtrader_ibkr_cp import BarStore
from backtrader_ibkr_cp.barstore import Span
from backtrader_ibkr_cp.barstore.spans import merge
from tests.barstore.barstore_helpers import (
    AAPL,
    LATER,
    hold_lock,
    make_bars,
    rewrite_forever,
    utc,
    write_spans,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock and fork-free spawn on POSIX")

SPAWN = multiprocessing.get_context("spawn")
FOLDER = "conid=265598/bar=5min/hours=rth"


def _spans_for(worker: int) -> list[tuple[datetime, datetime]]:
    """Overlapping spans over five weeks (2024-02-26 .. 2024-04-01), a different cut and order
    per worker: 2-day spans forward, 3-day spans backward, 1-week spans shifted by 2 days."""
    length, first_day = {0: (2, 0), 1: (3, 0), 2: (7, -2)}[worker]
    first = utc(2024, 2, 26)
    spans = [
        (first + timedelta(days=d), first + timedelta(days=d + length))
        for d in range(first_day, 35, length)
    ]
    return list(reversed(spans)) if worker == 1 else spans


def test_three_concurrent_writers_leave_exactly_the_union(tmp_path: Path) -> None:
    root = str(tmp_path / "bars")
    ready, go = SPAWN.Queue(), SPAWN.Event()
    plans = [_spans_for(worker) for worker in range(3)]
    workers = [SPAWN.Process(target=write_spans, args=(root, p, ready, go)) for p in plans]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=60)
    go.set()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0]

    union = merge(Span(a, b) for plan in plans for a, b in plan)
    reference = [bar for span in union for bar in make_bars("5min", span.start, span.end)]
    store = BarStore(root, clock=lambda: LATER)
    assert store.coverage(AAPL, "5min") == union
    got = store.read(AAPL, "5min")
    assert got == reference
    stamps = np.array([b.timestamp.timestamp() for b in got])
    assert bool(np.all(np.diff(stamps) > 0))  # no bar twice
    assert not list(Path(root).rglob("*.tmp"))  # every temporary file was renamed


def test_a_reader_during_writes_sees_one_whole_version_or_the_other(tmp_path: Path) -> None:
    root = str(tmp_path / "bars")
    start, end = utc(2024, 3, 4), utc(2024, 3, 9)
    store = BarStore(root, clock=lambda: LATER)
    first = make_bars("5min", start, end, version=1)
    second = [b for b in make_bars("5min", start, end, version=2) if b.timestamp < utc(2024, 3, 8)]
    store.write(AAPL, "5min", first, span=(start, end))
    started = SPAWN.Event()
    writer = SPAWN.Process(target=rewrite_forever, args=(root, 60, started))
    writer.start()
    assert started.wait(timeout=60)
    seen = {"first": 0, "second": 0}
    while writer.is_alive():
        got = store.read(AAPL, "5min")
        if got == first:
            seen["first"] += 1
        else:
            assert got == second, f"a read saw {len(got)} bars: neither version"
            seen["second"] += 1
        assert store.coverage(AAPL, "5min") == [Span(start, end)]
    writer.join(timeout=60)
    assert writer.exitcode == 0
    assert sum(seen.values()) >= 1
    assert store.read(AAPL, "5min") == second  # 60 rounds: the last one wrote the second


def test_a_killed_writer_releases_its_lock(tmp_path: Path) -> None:
    root = tmp_path / "bars"
    store = BarStore(root, clock=lambda: LATER)
    locked = SPAWN.Event()
    holder = SPAWN.Process(target=hold_lock, args=(str(root), FOLDER, locked))
    holder.start()
    try:
        assert locked.wait(timeout=60)
        lock_file = root / FOLDER / ".lock"
        fd = os.open(lock_file, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held by the child
            os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
            holder.join(timeout=60)
            assert holder.exitcode == -signal.SIGKILL
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released by the kernel
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join()
    bars = make_bars("5min", utc(2024, 3, 4), utc(2024, 3, 5))
    store.write(AAPL, "5min", bars, span=(utc(2024, 3, 4), utc(2024, 3, 5)))
    assert store.read(AAPL, "5min") == bars


def test_a_crashed_writers_temporary_file_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "bars"
    store = BarStore(root, clock=lambda: LATER)
    monday = (utc(2024, 3, 4), utc(2024, 3, 5))
    bars = make_bars("5min", *monday)
    store.write(AAPL, "5min", bars, span=monday)
    year = root / FOLDER / "year=2024"
    partial = (year / "bars.parquet").read_bytes()[:1000]
    (year / ".bars.parquet.4242.deadbeef.tmp").write_bytes(partial)  # half a file, as left
    assert store.read(AAPL, "5min") == bars
    assert [s.bars for s in store.series()] == [len(bars)]
    assert ds.dataset(root, partitioning="hive").to_table().num_rows == len(bars)
    tuesday = (utc(2024, 3, 5), utc(2024, 3, 6))
    store.write(AAPL, "5min", make_bars("5min", *tuesday), span=tuesday)
    assert store.read(AAPL, "5min") == bars + make_bars("5min", *tuesday)
