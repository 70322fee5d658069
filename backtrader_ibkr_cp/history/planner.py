"""Plan the fewest ``/iserver/marketdata/history`` requests that cover a span of bars. Pure.

Wire facts the plan is built on (``docs/dev/interfaces.md`` "Wire semantics" -> History):
a request's ``startTime`` is the window's END anchor (exclusive: bars starting at or after it
are not returned); the window reaches back ``period``; a response holds at most 1000 points
(the most recent are kept); and only certain bar sizes go with each period (the step-size
table in :mod:`.periods`).

For each bar size :func:`max_period` is the largest period of IBKR's table that allows the bar
and whose worst-case point count stays within 1000 (counting weekdays only, 6.5 h sessions in
regular hours, 16 h outside them)::

    1min 2min 3min 5min -> 1d     10min 15min 30min -> 1w     1h -> 1m     2h 3h -> 3m
    4h -> 6m              8h -> 1y                     1d -> 3y           1w 1m -> 15y

:func:`plan_windows` then covers ``[start, end)`` greedily from the end, which gives the
minimum number of windows: ``Nd`` windows take whole sessions (anchored at a session's close,
so neighbouring windows meet in the overnight gap, where no bar can be lost to an off-by-one in
IBKR's anchor); calendar windows (``w``, ``m``, ``y``) are chained so that each overlaps the
next by one bar, or meet in a gap between sessions. The fetcher de-duplicates the overlap by
timestamp. The earliest window asks for the smallest period that still reaches ``start``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from functools import lru_cache

from ..errors import ConfigError
from ..models.calendar import EXCHANGE_TZ, sessions_between
from ..models.timeframe import Timeframe
from .periods import MAX_POINTS, allows, coverage_start, parse_period, worst_case_points

__all__ = ["CANDIDATE_PERIODS", "Window", "max_period", "minimum_requests", "plan_windows"]

#: The periods the planner asks for, shortest first (IBKR's table columns, plus 2h..8h).
CANDIDATE_PERIODS: tuple[str, ...] = (
    *(f"{hours}h" for hours in range(1, 9)),
    "1d",
    "1w",
    "1m",
    "3m",
    "6m",
    "1y",
    "2y",
    "3y",
    "15y",
)

_EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class Window:
    """One history request and the bars it surely returns.

    ``end`` is the request's ``startTime`` anchor (exclusive, UTC); ``start`` is the earliest
    bar start the request is sure to reach (UTC); ``period`` and ``bar`` are IBKR's strings.
    """

    start: datetime
    end: datetime
    period: str
    bar: str


def _long_enough(period: str, timeframe: Timeframe) -> bool:
    count, unit = parse_period(period)
    if unit not in ("min", "h"):
        return True
    minutes = count * (1 if unit == "min" else 60)
    return timeframe.is_intraday and minutes >= timeframe.minutes


def _usable(period: str, timeframe: Timeframe, outside_rth: bool) -> bool:
    return (
        allows(period, timeframe)
        and _long_enough(period, timeframe)
        and worst_case_points(period, timeframe, outside_rth) <= MAX_POINTS
    )


@lru_cache(maxsize=64)
def _max_period(timeframe: Timeframe, outside_rth: bool) -> str:
    for period in reversed(CANDIDATE_PERIODS):
        if _usable(period, timeframe, outside_rth):
            return period
    raise AssertionError(f"no period for {timeframe}")  # pragma: no cover - table covers all


def max_period(timeframe: Timeframe | str, outside_rth: bool = False) -> str:
    """The largest period requested for ``timeframe`` (e.g. ``"1d"`` for 5min, ``"3y"`` for 1d)."""
    return _max_period(Timeframe.parse(timeframe), bool(outside_rth))


def _utc(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise ConfigError(f"{name} {value!r} is not a datetime; pass a timezone-aware datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(
            f"{name} {value.isoformat()} is naive; pass a timezone-aware datetime, e.g. "
            "datetime(2024, 1, 2, tzinfo=timezone.utc)"
        )
    moment = value.astimezone(timezone.utc)
    if not _EARLIEST <= moment < _LATEST:
        raise ConfigError(f"{name} {value.isoformat()} is outside the years 1970-8999")
    return moment


def _validated(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = _utc("fromdate", start), _utc("todate", end)
    if start >= end:
        raise ConfigError(
            f"fromdate {start.isoformat()} is not before todate {end.isoformat()}; pass a "
            "fromdate earlier than the todate"
        )
    return start, end


def _smallest(
    timeframe: Timeframe, anchor: datetime, reach: datetime, outside_rth: bool, largest: str
) -> str:
    """The shortest usable period up to ``largest`` whose window from ``anchor`` reaches back
    to ``reach``."""
    for period in CANDIDATE_PERIODS[: CANDIDATE_PERIODS.index(largest) + 1]:
        if _usable(period, timeframe, outside_rth) and (
            coverage_start(period, anchor, outside_rth) <= reach
        ):
            return period
    return largest


def _window(timeframe: Timeframe, anchor: datetime, period: str, outside_rth: bool) -> Window:
    return Window(coverage_start(period, anchor, outside_rth), anchor, period, timeframe.bar)


def _by_sessions(
    timeframe: Timeframe, start: datetime, end: datetime, outside_rth: bool, largest: str
) -> list[Window]:
    """Windows of N whole sessions (``Nd``), the newest anchored at ``end``."""
    per_window = parse_period(largest)[0]
    sessions = list(sessions_between(start, end, outside_rth))
    windows: list[Window] = []
    while sessions:
        chunk, sessions = sessions[-per_window:], sessions[:-per_window]
        anchor = min(end, chunk[-1][2])
        reach = max(start, chunk[0][1])
        # whole sessions ask for "Nd"; a window needing part of one session asks for hours
        partial = reach > chunk[0][1]
        period = _smallest(timeframe, anchor, reach, outside_rth, largest) if partial else largest
        windows.append(_window(timeframe, anchor, period, outside_rth))
    return windows


def _next_anchor(timeframe: Timeframe, reached: datetime, outside_rth: bool) -> datetime:
    """Where the next-older window ends, given that the newer one reaches back to ``reached``.

    Intraday: one bar after ``reached`` when that falls inside a session (one bar of
    overlap), else the close of the last session before it (the windows meet in a gap without
    bars). Daily and longer: one bar after ``reached``.
    """
    if not timeframe.is_intraday:
        return reached + timeframe.duration
    closes = [
        close
        for _, opens, close in sessions_between(reached - timedelta(days=5), reached, outside_rth)
        if opens <= reached
    ]
    if closes and reached < closes[-1]:
        return min(reached + timeframe.duration, closes[-1])
    return max((close for close in closes if close <= reached), default=reached)


def _by_calendar(
    timeframe: Timeframe, start: datetime, end: datetime, outside_rth: bool, largest: str
) -> list[Window]:
    """Windows of ``largest`` (weeks, months, years) chained back from ``end``."""
    windows: list[Window] = []
    anchor = end
    while anchor > start:
        reached = coverage_start(largest, anchor, outside_rth)
        if reached <= start:
            period = _smallest(timeframe, anchor, start, outside_rth, largest)
            windows.append(_window(timeframe, anchor, period, outside_rth))
            break
        windows.append(_window(timeframe, anchor, largest, outside_rth))
        anchor = _next_anchor(timeframe, reached, outside_rth)
    return windows


def _trim(
    timeframe: Timeframe, start: datetime, end: datetime, outside_rth: bool
) -> tuple[datetime, datetime] | None:
    """``[start, end)`` narrowed to its first bar start and its last session's close, or None
    when no intraday bar starts in it (a weekend, or less than a bar after ``start``)."""
    step = timedelta(minutes=timeframe.minutes)
    for _, opens, closes in sessions_between(start, end, outside_rth):
        if start <= opens:
            first = opens
        else:  # the next clock multiple of the bar length, counted from New York midnight
            local = start.astimezone(EXCHANGE_TZ)
            midnight = datetime.combine(local.date(), time(0), tzinfo=EXCHANGE_TZ)
            first = (midnight + step * math.ceil((local - midnight) / step)).astimezone(
                timezone.utc
            )
        if first < closes:
            if first >= end:
                return None
            last_close = max(c for _, _, c in sessions_between(first, end, outside_rth))
            return first, min(end, last_close)
    return None


def plan_windows(
    timeframe: Timeframe | str, start: datetime, end: datetime, *, outside_rth: bool = False
) -> list[Window]:
    """The fewest windows whose bars cover ``[start, end)``, oldest first.

    ``start`` and ``end`` must be tz-aware (ConfigError otherwise, and when ``start >= end``).
    Intraday spans are first trimmed to the sessions they touch, so a span without a
    session (a weekend) needs no request at all.
    """
    tf = Timeframe.parse(timeframe)
    start, end = _validated(start, end)
    if end.microsecond:  # startTime has whole seconds: round the anchor up, never down
        end = end.replace(microsecond=0) + timedelta(seconds=1)
    largest = max_period(tf, outside_rth)
    if tf.is_intraday:
        trimmed = _trim(tf, start, end, outside_rth)
        if trimmed is None:
            return []
        start, end = trimmed
    if parse_period(largest)[1] == "d":
        windows = _by_sessions(tf, start, end, outside_rth, largest)
    else:
        windows = _by_calendar(tf, start, end, outside_rth, largest)
    return sorted(windows, key=lambda window: window.end)


def minimum_requests(
    timeframe: Timeframe | str, start: datetime, end: datetime, outside_rth: bool = False
) -> int:
    """How many history requests :func:`plan_windows` needs for ``[start, end)``."""
    return len(plan_windows(timeframe, start, end, outside_rth=outside_rth))
