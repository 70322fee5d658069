"""The one-pass preload: a historical feed's whole span into backtrader's line buffers at once.

backtrader preloads a feed by calling ``load()`` once per bar: every line moves forward, the
feed's ``_load`` writes one bar, ``fromdate``/``todate`` are checked, the filters run. When a
feed has nothing to run per bar (no filter, so no resampling or replaying; no input time zone
to convert; plain, unbounded line buffers), :func:`append_bars` appends all of its bars to the
line arrays in one go, leaving exactly the values and the buffer state the bar-by-bar path
leaves: the same late-bar rule as the feed's ``_load`` (a bar stamped at or before the previous
one is dropped unless ``latethrough``), then backtrader's ``fromdate``/``todate`` rule (a bar
before ``fromdate`` is skipped, the first bar after ``todate`` ends the data).

:class:`LineBars` come from stored columns (vectorised, :func:`from_columns`) or from the
items a stream delivered (a cassette replay, a read-through fetch: :func:`from_events`).
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from backtrader.utils import date2num

from ..barstore import BarColumns
from ..barstore.columns import bt_date_numbers
from ..barstore.spans import EPOCH
from ..live.events import BarEvent
from ..models import Timeframe
from .stamps import lines_stamp

__all__ = ["LineBars", "append_bars", "from_columns", "from_events", "plain_lines"]

FloatArray = npt.NDArray[np.float64]

_MICROSECOND = timedelta(microseconds=1)
#: The lines of a backtrader data feed, as this module fills them.
LINES = ("datetime", "open", "high", "low", "close", "volume", "openinterest")


@dataclass(frozen=True, eq=False)
class LineBars:
    """Bars as backtrader lines: ``datetime`` holds ``date2num`` of each bar's lines stamp
    (naive UTC, see :mod:`.stamps`), the rest the prices and the volume (shares), in the order
    delivered."""

    datetime: FloatArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return int(self.datetime.size)


def from_columns(columns: BarColumns, *, at_end: bool) -> LineBars:
    """Stored bars stamped as the feed stamps them: intraday bars at their end (``at_end``)
    or start, longer bars at their end."""
    at_start = columns.timeframe.is_intraday and not at_end
    return LineBars(
        columns.bt_datetime("start" if at_start else "end"),
        columns.open,
        columns.high,
        columns.low,
        columns.close,
        columns.volume,
    )


def from_events(events: Sequence[BarEvent], timeframe: Timeframe, *, at_end: bool) -> LineBars:
    """The bars a stream delivered, stamped exactly as the feed's bar-by-bar ``_load`` stamps
    them (``date2num`` of :func:`~.stamps.lines_stamp`, vectorised when every stamp is on a
    whole millisecond, as bars and their ends are)."""
    at_start = timeframe.is_intraday and not at_end
    micros = [
        ((event.bar.timestamp if at_start else event.end) - EPOCH) // _MICROSECOND
        for event in events
    ]
    if all(us % 1000 == 0 for us in micros) and not any(event.tick for event in events):
        stamps = bt_date_numbers(np.asarray(micros, dtype=np.int64) // 1000)
    else:  # pragma: no cover - never for bars from IBKR: ms stamps, whole-minute ends
        stamps = np.array([date2num(lines_stamp(e, timeframe, at_end=at_end)) for e in events])
    bars = [event.bar for event in events]

    def column(values: list[float]) -> FloatArray:
        return np.asarray(values, dtype=np.float64)

    return LineBars(
        np.asarray(stamps, dtype=np.float64),
        column([b.open for b in bars]),
        column([b.high for b in bars]),
        column([b.low for b in bars]),
        column([b.close for b in bars]),
        column([b.volume for b in bars]),
    )


def plain_lines(data: Any) -> bool:
    """True when ``data`` has nothing per bar to run in ``load()``: no filters, no input time
    zone, not a clone, nothing stacked, and its seven standard lines in unbounded buffers."""
    if data._filters or data._ffilters or data._clone or data._tzinput is not None:
        return False
    if data._barstack or data._barstash or data.lines.size() != len(LINES):
        return False
    try:
        lines = [getattr(data.lines, name) for name in LINES]
    except AttributeError:
        return False
    return all(isinstance(line.array, array.array) for line in lines)


def append_bars(data: Any, bars: LineBars, *, latethrough: bool = False) -> float | None:
    """Append ``bars`` to ``data``'s lines as ``load()`` bar by bar would (see the module
    docstring), with the line indices where those ``load()`` calls leave them. Returns the
    date number of the last bar the late-bar rule let through (the feed's last stamp), or
    None when there were no bars."""
    stamps = bars.datetime
    if not stamps.size:
        return None
    if latethrough:
        passed = np.ones(stamps.size, dtype=bool)
    else:
        newest = np.maximum.accumulate(stamps)
        passed = np.concatenate(([True], stamps[1:] > newest[:-1]))
    taken = np.flatnonzero(passed)
    after = np.flatnonzero(stamps[taken] > data.todate)
    stop = int(after[0]) if after.size else taken.size
    last = float(stamps[taken[min(stop, taken.size - 1)]])
    taken = taken[:stop]
    taken = taken[stamps[taken] >= data.fromdate]
    columns = (stamps, bars.open, bars.high, bars.low, bars.close, bars.volume)
    values = [np.ascontiguousarray(column[taken], dtype=np.float64) for column in columns]
    values.append(np.zeros(taken.size, dtype=np.float64))  # openinterest
    count = int(taken.size)
    for name, column in zip(LINES, values, strict=True):
        line = getattr(data.lines, name)
        line.array.frombytes(column.tobytes())
        line.advance(count)  # idx and length as `count` forward() calls leave them
    return last
