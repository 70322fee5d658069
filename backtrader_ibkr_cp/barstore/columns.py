"""Bars as columns: one numpy array per field, for loading a whole span in one pass.

A backtrader feed fills its lines from :class:`BarColumns` without building a ``Bar`` per
row: ``datetime`` from :meth:`BarColumns.bt_datetime` (backtrader's float day numbers, UTC, at
each bar's start or, with ``at="end"``, at the instant it is complete), the prices and volume
as they are.
"""

from __future__ import annotations

import math
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

__all__ = ["BarColumns", "bar_ends", "bt_date_numbers"]

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
        """backtrader's float date numbers (``bt.date2num`` of the UTC time, bit for bit) of
        each bar's start, or of its end (``at="end"``: when it is complete)."""
        ms = self.timestamp if at == "start" else self.end()
        return bt_date_numbers(ms)

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


def bt_date_numbers(ms: Int64Array | Sequence[int]) -> FloatArray:
    """``backtrader.date2num`` of each naive-UTC instant ``ms`` (epoch milliseconds), bit for
    bit, vectorised.

    ``date2num`` is ``math.fsum`` of the day's ordinal and ``hour/24``, ``minute/1440``,
    ``second/86400``, ``microsecond/86400e6``: the exactly rounded sum. For an ordinal in
    ``[2**19, 2**20)`` (years 1436 to 2871) the result's last bit is worth ``2**-33`` days, so
    it is ``ordinal + k * 2**-33`` with ``k`` the exact fraction rounded half-even, worked out
    once per distinct time of day with exact rationals. Other instants go through the formula
    one by one.
    """
    stamps: Int64Array = np.asarray(ms, dtype=np.int64)
    days, rest = np.divmod(stamps, _MS_PER_DAY)
    ordinals = days + int(BT_EPOCH_DAY)
    if stamps.size and (ordinals.min() < 2**19 or ordinals.max() >= 2**20):
        slow = [_date2num(int(d), int(r)) for d, r in zip(ordinals, rest, strict=True)]
        return np.array(slow, dtype=np.float64)
    times, where = np.unique(rest, return_inverse=True)
    steps = np.array([_fraction_steps(int(t)) for t in times], dtype=np.float64)
    numbers: FloatArray = ordinals.astype(np.float64) + steps[where] * _DAY_STEP
    return numbers


#: The value of the last bit of a date number whose ordinal is in ``[2**19, 2**20)``.
_DAY_STEP = 2.0**-33


def _day_terms(ms_of_day: int) -> tuple[float, float, float, float]:
    """``date2num``'s four fractions of the day, each rounded as it rounds them."""
    seconds, millis = divmod(ms_of_day, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return hour / 24.0, minute / 1440.0, second / 86400.0, millis * 1000 / 86400e6


def _fraction_steps(ms_of_day: int) -> int:
    """The exact sum of :func:`_day_terms` in units of ``2**-33``, rounded half-even."""
    total, scale = 0, 0  # the sum is total / 2**scale (every term is a dyadic rational)
    for term in _day_terms(ms_of_day):
        numerator, denominator = term.as_integer_ratio()
        power = denominator.bit_length() - 1
        if power > scale:
            total <<= power - scale
            scale = power
        total += numerator << (scale - power)
    if scale <= 33:
        return total << (33 - scale)
    shift = scale - 33
    steps, rest = divmod(total, 1 << shift)
    half = 1 << (shift - 1)
    return steps + (rest > half or (rest == half and steps & 1))


def _date2num(ordinal: int, ms_of_day: int) -> float:
    return math.fsum((float(ordinal), *_day_terms(ms_of_day)))


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
