"""Deterministic bars on the exchange calendar, and worker functions for spawned processes.

Prices depend only on the bar's timestamp and a ``version`` (so overlapping writers agree on
every bar, and a "correction" is a different version). Worker functions live here, at module
level, so a ``spawn`` child can import them.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from backtrader_ibkr_cp.barstore import BarStore
from backtrader_ibkr_cp.barstore.horizon import first_stamp
from backtrader_ibkr_cp.models import Bar, Contract, Timeframe
from backtrader_ibkr_cp.models.calendar import next_bucket

UTC = timezone.utc
AAPL = Contract(265598, "AAPL", "STK", "NASDAQ", "USD", "APPLE INC")
IBM = Contract(8314, "IBM", "STK", "NYSE", "USD", "INTL BUSINESS MACHINES CORP")
AAPL_MEXI = Contract(38708077, "AAPL", "STK", "MEXI", "MXN", "APPLE INC")
#: A Saturday long after every span the tests write: every bar is complete.
LATER = datetime(2030, 1, 5, 12, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def stamps(
    tf: Timeframe, start: datetime, end: datetime, outside_rth: bool = False
) -> list[datetime]:
    """Every bar start of ``tf`` in ``[start, end)`` on the calendar."""
    found: list[datetime] = []
    stamp = first_stamp(start, tf, outside_rth=outside_rth)
    while stamp < end:
        found.append(stamp)
        stamp = next_bucket(stamp, tf, outside_rth=outside_rth).start
    return found


def bar_at(stamp: datetime, version: int = 0) -> Bar:
    minutes = int(stamp.timestamp()) // 60
    base = 100.0 + (minutes % 997) / 8 + version * 1000
    return Bar(stamp, base, base + 1.25, base - 0.75, base + 0.5, float(100 * (minutes % 89 + 1)))


def make_bars(
    tf: Timeframe | str,
    start: datetime,
    end: datetime,
    *,
    version: int = 0,
    outside_rth: bool = False,
) -> list[Bar]:
    return [bar_at(s, version) for s in stamps(Timeframe.parse(tf), start, end, outside_rth)]


def day_spans(first: datetime, days: int) -> list[tuple[datetime, datetime]]:
    return [(first + timedelta(days=i), first + timedelta(days=i + 1)) for i in range(days)]


# -- spawned workers ------------------------------------------------------------------------


def write_spans(root: str, spans: list[tuple[datetime, datetime]], ready: Any, go: Any) -> int:
    """Write each span's bars to the 5min AAPL series, after every worker is ready."""
    store = BarStore(root, clock=lambda: LATER)
    ready.put(os.getpid())
    go.wait()
    for start, end in spans:
        store.write(AAPL, "5min", make_bars("5min", start, end), span=(start, end))
    return len(spans)


def rewrite_forever(root: str, rounds: int, started: Any) -> None:
    """Alternate one span between two versions of its bars, ``rounds`` times."""
    store = BarStore(root, clock=lambda: LATER)
    start, end = utc(2024, 3, 4), utc(2024, 3, 9)
    versions = [make_bars("5min", start, end, version=v) for v in (1, 2)]
    started.set()
    for index in range(rounds):
        bars = versions[index % 2]
        # The second version holds fewer bars (Friday left out) so a mix would show.
        if index % 2:
            bars = [b for b in bars if b.timestamp < utc(2024, 3, 8)]
        store.write(AAPL, "5min", bars, span=(start, end))


def hold_lock(root: str, folder: str, locked: Any) -> None:
    """Take a series lock and keep it until killed."""
    import signal
    from pathlib import Path

    from backtrader_ibkr_cp.barstore.files import LocalFiles

    with LocalFiles(Path(root)).lock(folder):
        locked.set()
        while True:
            signal.pause()


def write_as(root: str, which: str, uid: int | None, fsize: int | None, result: Any) -> None:
    """As user ``uid`` and/or under a file size limit of ``fsize`` bytes: read the AAPL 5min
    series, then write ``which`` ("new": a year of IBM 1min bars, a new series; "existing":
    the AAPL 5min series again). Report ``(error class, message, path, errno, bars read)``."""
    import resource
    import signal

    if fsize is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    if uid is not None:
        os.setgid(uid)
        os.setuid(uid)
    store = BarStore(root, clock=lambda: LATER)
    readable = len(store.read(AAPL, "5min"))
    try:
        if which == "new":
            start, end = utc(2023, 1, 1), utc(2024, 1, 1)
            store.write(IBM, "1min", make_bars("1min", start, end), span=(start, end))
        else:
            start, end = utc(2024, 3, 4), utc(2024, 3, 9)
            store.write(AAPL, "5min", make_bars("5min", start, end, version=1), span=(start, end))
    except Exception as exc:
        result.put(
            (type(exc).__name__, str(exc), getattr(exc, "path", None), getattr(exc, "errno", None),
             readable)
        )  # fmt: skip
        return
    result.put(("no error", "", None, None, readable))
