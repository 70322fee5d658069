"""Bars of every size as exact aggregations of the one-minute bars, as seen at an instant.

Only data that exists at ``now`` is used: completed minutes, plus the minute in progress as it
stands (see :mod:`.quotes`). A bar still forming at ``now`` is therefore returned with its
values so far, as the real gateway does; :func:`truth` keeps only bars complete at ``now``.

Aggregation: open = first minute's open, high = max, low = min, close = last minute's close,
volume = sum (shares). Bar stamps and extents follow :mod:`.calendar`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from .calendar import (
    DAY_MINUTES,
    BarSize,
    BarUnit,
    as_utc,
    day_buckets,
    group_start,
    is_trading_day,
    last_session_day,
    locate,
    minute_time,
    session_bounds,
    session_range,
    trading_days,
)
from .instruments import SimInstrument
from .market import DayBars, MarketModel
from .quotes import Minute, minute_of, partial_minute

__all__ = ["BarSource", "RawBar", "SimBar"]


@dataclass(frozen=True)
class SimBar:
    """A ground-truth bar: ``timestamp`` UTC bar start, prices in currency units, ``volume`` in
    shares (whole numbers, as floats)."""

    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class RawBar:
    """A bar in integer units: ``start``/``end`` UTC, prices in cents, ``volume`` in shares."""

    start: datetime
    end: datetime
    open: int
    high: int
    low: int
    close: int
    volume: int

    def to_sim(self) -> SimBar:
        """This bar as a :class:`SimBar` (prices in currency units)."""
        return SimBar(
            self.start,
            self.open / 100,
            self.high / 100,
            self.low / 100,
            self.close / 100,
            float(self.volume),
        )


@dataclass(frozen=True)
class _Visible:
    """The part of a day that exists at some instant: minutes ``0 .. complete-1`` are done,
    ``partial`` is minute ``complete`` so far (None when nothing of it has traded yet)."""

    bars: DayBars
    complete: int
    partial: Minute | None

    def aggregate(self, first: int, end: int) -> Minute | None:
        done = min(end, self.complete)
        value = self.bars.aggregate(first, done) if done > first else None
        if self.partial is not None and first <= self.complete < end:
            if value is None:
                return self.partial
            o, h, l, _, v = value  # noqa: E741
            _po, ph, pl, pc, pv = self.partial
            return (o, max(h, ph), min(l, pl), pc, v + pv)
        return value


def _merge(values: list[Minute]) -> Minute:
    return (
        values[0][0],
        max(v[1] for v in values),
        min(v[2] for v in values),
        values[-1][3],
        sum(v[4] for v in values),
    )


class BarSource:
    """Builds bars of any :class:`BarSize` for an instrument from a :class:`MarketModel`."""

    def __init__(self, market: MarketModel) -> None:
        self.market = market

    def _visible(self, inst: SimInstrument, day: date, now: datetime) -> _Visible | None:
        moment = locate(now)
        if day > moment.day or (day == moment.day and moment.minute < 0):
            return None
        bars = self.market.day(inst, day)
        if day < moment.day or moment.minute >= DAY_MINUTES:
            return _Visible(bars, DAY_MINUTES, None)
        partial = None
        if moment.second > 0:
            partial = partial_minute(minute_of(bars, moment.minute), moment.second)
        return _Visible(bars, moment.minute, partial)

    def _session(
        self, inst: SimInstrument, day: date, now: datetime, outside_rth: bool
    ) -> Minute | None:
        """The whole session of ``day`` aggregated, as far as it exists at ``now``."""
        first, end = session_range(outside_rth)
        if minute_time(day, end) <= now:
            return self.market.summary(inst, day, outside_rth)
        visible = self._visible(inst, day, now)
        return visible.aggregate(first, end) if visible else None

    def bars(
        self,
        inst: SimInstrument,
        size: BarSize,
        lo: datetime,
        hi: datetime,
        now: datetime,
        outside_rth: bool,
    ) -> list[RawBar]:
        """Bars with data at ``now`` that start before ``hi`` and end after ``lo``, in order."""
        lo, hi, now = as_utc(lo), as_utc(hi), as_utc(now)
        last = min(hi, now)
        if last <= lo:
            return []
        if size.unit is BarUnit.MINUTES:
            return list(self._intraday(inst, size.minutes, lo, hi, now, outside_rth))
        return list(self._grouped(inst, size.unit, lo, hi, now, outside_rth))

    def _intraday(
        self,
        inst: SimInstrument,
        minutes: int,
        lo: datetime,
        hi: datetime,
        now: datetime,
        outside_rth: bool,
    ) -> Iterator[RawBar]:
        buckets = day_buckets(minutes, outside_rth)
        first_day, last_day = locate(lo).day, locate(min(hi, now)).day
        for day in trading_days(first_day, last_day):
            day_start = minute_time(day, 0)
            visible: _Visible | None = None
            for first, end in buckets:
                start = day_start + timedelta(minutes=first)
                stop = day_start + timedelta(minutes=end)
                if stop <= lo or start >= hi or start >= now:
                    continue
                if visible is None:
                    visible = self._visible(inst, day, now)
                    if visible is None:
                        break
                value = visible.aggregate(first, end)
                if value is not None:
                    yield RawBar(start, stop, *value)

    def _grouped(
        self,
        inst: SimInstrument,
        unit: BarUnit,
        lo: datetime,
        hi: datetime,
        now: datetime,
        outside_rth: bool,
    ) -> Iterator[RawBar]:
        first_day = group_start(locate(lo).day, unit)
        last_day = locate(min(hi, now)).day
        group: list[date] = []
        for day in trading_days(first_day, last_day + timedelta(days=31)):
            if group and group_start(day, unit) != group_start(group[0], unit):
                yield from self._group_bar(inst, group, lo, hi, now, outside_rth)
                group = []
                if day > last_day:
                    return
            group.append(day)
        if group:  # pragma: no cover - the 31-day margin always closes the last group
            yield from self._group_bar(inst, group, lo, hi, now, outside_rth)

    def _group_bar(
        self,
        inst: SimInstrument,
        group: list[date],
        lo: datetime,
        hi: datetime,
        now: datetime,
        outside_rth: bool,
    ) -> Iterator[RawBar]:
        start = session_bounds(group[0], outside_rth)[0]
        stop = session_bounds(group[-1], outside_rth)[1]
        if stop <= lo or start >= hi or start >= now:
            return
        values = [
            value
            for day in group
            if (value := self._session(inst, day, now, outside_rth)) is not None
        ]
        if values:
            yield RawBar(start, stop, *_merge(values))


def default_truth_start(size: BarSize, now: datetime, outside_rth: bool) -> datetime:
    """Start of the bar holding the latest session that began at or before ``now``."""
    day = last_session_day(now, outside_rth)
    if size.unit in (BarUnit.WEEK, BarUnit.MONTH):
        day = group_start(day, size.unit)
    assert is_trading_day(day)
    return session_bounds(day, outside_rth)[0]


def truth(
    source: BarSource,
    inst: SimInstrument,
    size: BarSize,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    outside_rth: bool,
) -> list[SimBar]:
    """Bars complete at ``now`` (end <= now) with ``start <= bar start < end``."""
    lo = as_utc(start) if start is not None else default_truth_start(size, now, outside_rth)
    hi = as_utc(end) if end is not None else now
    return [
        bar.to_sim()
        for bar in source.bars(inst, size, lo, hi, now, outside_rth)
        if bar.start >= lo and bar.end <= now
    ]
