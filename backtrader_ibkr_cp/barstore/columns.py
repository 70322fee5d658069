"""Bars as columns: one numpy array per field, for loading a whole span in one pass.

A backtrader feed fills its lines from :class:`BarColumns` without building a ``Bar`` per
row: ``datetime`` from :meth:`BarColumns.bt_datetime` (backtrader's float day numbers, UTC, at
each bar's start or, with ``at="end"``, at the instant it is complete), the prices and volume
as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ..models.bar import Bar
from ..models.calendar import EXCHANGE_TZ, bucket_at, sessions_between
from ..models.timeframe import Timeframe
from .spans import EPOCH, from_ms, to_ms

__all__ = ["BarColumns", "bar_ends"]

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: backtrader's day number of 1970-01-01 (``backtrader.date2num``: proleptic ordinal).
BT_EPOCH_DAY = 719163.0
_MS_PER_DAY = 86_400_000


@dataclass(frozen=True, eq=False)
class BarColumns:
    """Bars of one series as arrays of equal length, sorted by time, one row per bar.

    ``timestamp``: int64 epoch milliseconds, UTC, bar start. ``open``/``high``/``low``/
    ``close``: float64 prices. ``volume``: float64 shares. ``timeframe`` and ``outside_rth``
    say which series they are (bar ends depend on them).
    """

    timestamp: Int64Array
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    timeframe: Timeframe
    outside_rth: bool = False

    @classmethod
    def from_table(cls, table: pa.Table, timeframe: Timeframe, outside_rth: bool) -> BarColumns:
        def floats(name: str) -> FloatArray:
            return np.ascontiguousarray(table.column(name).to_numpy(), dtype=np.float64)

        stamps = table.column("timestamp").cast(pa.int64()).to_numpy()
        return cls(
            timestamp=np.ascontiguousarray(stamps, dtype=np.int64),
            open=floats("open"),
            high=floats("high"),
            low=floats("low"),
            close=floats("close"),
            volume=floats("volume"),
            timeframe=timeframe,
            outside_rth=outside_rth,
        )

    def __len__(self) -> int:
        return int(self.timestamp.size)

    def end(self) -> Int64Array:
        """Epoch milliseconds at which each bar is complete (its bucket's end)."""
        return bar_ends(self.timestamp, self.timeframe, outside_rth=self.outside_rth)

    def datetime64(self) -> npt.NDArray[np.datetime64]:
        """Bar starts as ``datetime64[ms]`` (UTC, naive, as numpy has no time zones)."""
        return self.timestamp.astype("datetime64[ms]")

    def bt_datetime(self, at: Literal["start", "end"] = "start") -> FloatArray:
        """backtrader's float date numbers (``bt.date2num`` of the UTC time) of each bar's
        start, or of its end (``at="end"``: when it is complete)."""
        ms = self.timestamp if at == "start" else self.end()
        return ms.astype(np.float64) / _MS_PER_DAY + BT_EPOCH_DAY

    def to_bars(self) -> list[Bar]:
        """The rows as :class:`Bar` objects (tz-aware UTC timestamps)."""
        rows: zip[tuple[Any, ...]] = zip(
            self.timestamp.tolist(),
            self.open.tolist(),
            self.high.tolist(),
            self.low.tolist(),
            self.close.tolist(),
            self.volume.tolist(),
            strict=True,
        )
        return [Bar(from_ms(t), o, h, low, c, v) for t, o, h, low, c, v in rows]

    def __repr__(self) -> str:
        span = ""
        if len(self):
            span = f", {from_ms(int(self.timestamp[0])).isoformat()} .. "
            span += from_ms(int(self.timestamp[-1])).isoformat()
        return f"BarColumns({len(self)} {self.timeframe.bar} bars{span})"


def bar_ends(
    timestamps: Int64Array | Sequence[int], timeframe: Timeframe, *, outside_rth: bool = False
) -> Int64Array:
    """When each bar starting at ``timestamps`` (epoch ms, sorted) is complete, epoch ms.

    The end of its bucket on the exchange calendar (``models.calendar``): the next multiple
    of the bar length from New York midnight, clipped to the session's close, for intraday
    bars; the close for daily bars; the last close of the week or month for weekly and
    monthly bars. Vectorised per session, not per bar. A stamp outside every session gets its
    nominal length.
    """
    ms: Int64Array = np.asarray(timestamps, dtype=np.int64)
    if ms.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not timeframe.is_intraday:
        unique, inverse = np.unique(ms, return_inverse=True)
        per_stamp = np.array([_one_end(int(t), timeframe, outside_rth) for t in unique], np.int64)
        by_bar: Int64Array = per_stamp[inverse]
        return by_bar
    first, last = from_ms(int(ms.min())), from_ms(int(ms.max()))
    sessions = list(sessions_between(first, last + timedelta(minutes=1), outside_rth))
    nominal = ms + timeframe.minutes * 60_000
    if not sessions:
        return nominal
    opens = np.array([to_ms(o) for _, o, _ in sessions], dtype=np.int64)
    closes = np.array([to_ms(c) for _, _, c in sessions], dtype=np.int64)
    # New York midnight of each session's day (DST changes on Sundays, never in a session).
    midnights = np.array(
        [to_ms(datetime.combine(day, time(0), tzinfo=EXCHANGE_TZ)) for day, _, _ in sessions],
        dtype=np.int64,
    )
    index = np.searchsorted(opens, ms, side="right") - 1
    safe = np.maximum(index, 0)
    inside = (index >= 0) & (ms < closes[safe])
    step = timeframe.minutes * 60_000
    since_midnight = ms - midnights[safe]
    bucket_end = midnights[safe] + (since_midnight // step + 1) * step
    ends: Int64Array = np.where(inside, np.minimum(bucket_end, closes[safe]), nominal)
    return ends


def _one_end(ms: int, timeframe: Timeframe, outside_rth: bool) -> int:
    stamp: datetime = EPOCH + timedelta(milliseconds=ms)
    bucket = bucket_at(stamp, timeframe, outside_rth=outside_rth)
    return to_ms(bucket.end if bucket is not None else stamp + timeframe.duration)
