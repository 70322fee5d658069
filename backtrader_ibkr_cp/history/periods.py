"""History ``period`` strings: validation, IBKR's period -> bar table, and window coverage.

Source of the table: IBKR Web API v1.0 documentation, ``/iserver/marketdata/history``
"step size" table (``/work/shared/reference/ibkr-cp-api.md`` section 2.1), read conservatively
as in ``docs/dev/interfaces.md`` "Wire semantics":

======  ===========  ======================================================
period  bars         note
======  ===========  ======================================================
1min    1min
1h      1min - 8h    also every period between 1h and 1d (2h ... 8h)
1d      1min - 8h
1w      10min - 1w
1m      1h - 1m      ``m`` is a month
3m      2h - 1m
6m      4h - 1m
1y      8h - 1m
2y      1d - 1m
3y      1d - 1m
15y     1w - 1m
======  ===========  ======================================================

A period between two columns takes the larger column's smallest bar and the smaller column's
largest bar (``3d`` lies between 1d and 1w: 10min - 8h). Units: ``Nmin`` (1-30), ``Nh``
(1-8), ``Nd`` (1-1000 trading sessions), ``Nw`` (1-792, 7 calendar days each), ``Nm``
(1-182 calendar months), ``Ny`` (1-15 years).

How far back a window reaches is read the *shortest* way any plausible implementation could
read it (calendar arithmetic in UTC or New York time, months clamped or overflowing, 30-day
months, 365-day years): the planner relies only on that part, and because IBKR keeps the most
*recent* 1000 points, a gateway that reaches further back only adds older bars.
"""

from __future__ import annotations

import calendar as _calendar
import math
import re
from datetime import datetime, timedelta, timezone

from ..errors import ConfigError
from ..models.calendar import (
    EXCHANGE_TZ,
    bars_per_session,
    is_trading_day,
    max_trading_days,
    previous_trading_day,
    session_span,
    trading_date,
)
from ..models.timeframe import BT_DAYS, BT_WEEKS, Timeframe

__all__ = [
    "MAX_POINTS",
    "allows",
    "bar_range",
    "coverage_start",
    "parse_period",
    "worst_case_points",
]

#: IBKR: "This endpoint provides a maximum of 1000 data points".
MAX_POINTS = 1000

_LIMITS = {"min": (1, 30), "h": (1, 8), "d": (1, 1000), "w": (1, 792), "m": (1, 182), "y": (1, 15)}
_PERIOD = re.compile(r"([0-9]{1,4})(min|h|d|w|m|y)")
_DAY = 1440.0  # minutes

#: (column, shortest and longest span in minutes, smallest bar, largest bar), by span.
_COLUMNS: tuple[tuple[str, float, float, Timeframe, Timeframe], ...] = (
    ("1min", 1.0, 1.0, Timeframe.MINUTE_1, Timeframe.MINUTE_1),
    ("1h", 60.0, 60.0, Timeframe.MINUTE_1, Timeframe.HOUR_8),
    ("1d", _DAY, _DAY, Timeframe.MINUTE_1, Timeframe.HOUR_8),
    ("1w", 7 * _DAY, 7 * _DAY, Timeframe.MINUTE_10, Timeframe.WEEK_1),
    ("1m", 28 * _DAY, 31 * _DAY, Timeframe.HOUR_1, Timeframe.MONTH_1),
    ("3m", 89 * _DAY, 92 * _DAY, Timeframe.HOUR_2, Timeframe.MONTH_1),
    ("6m", 181 * _DAY, 184 * _DAY, Timeframe.HOUR_4, Timeframe.MONTH_1),
    ("1y", 365 * _DAY, 366 * _DAY, Timeframe.HOUR_8, Timeframe.MONTH_1),
    ("2y", 730 * _DAY, 731 * _DAY, Timeframe.DAY_1, Timeframe.MONTH_1),
    ("3y", 1095 * _DAY, 1096 * _DAY, Timeframe.DAY_1, Timeframe.MONTH_1),
    ("15y", 5478 * _DAY, 5479 * _DAY, Timeframe.WEEK_1, Timeframe.MONTH_1),
)
_ORDER = {tf: index for index, tf in enumerate(Timeframe)}


def parse_period(text: str) -> tuple[int, str]:
    """``"3y"`` -> ``(3, "y")``; ConfigError for an unknown unit or a count out of range."""
    match = _PERIOD.fullmatch(text)
    if match is not None:
        count, unit = int(match.group(1)), match.group(2)
        low, high = _LIMITS[unit]
        if low <= count <= high:
            return count, unit
    ranges = ", ".join(f"{unit} {low}-{high}" for unit, (low, high) in _LIMITS.items())
    raise ConfigError(f"history period {text!r} is invalid; use N followed by a unit: {ranges}")


def _spans(count: int, unit: str) -> tuple[float, float]:
    """The shortest and longest calendar span the period can stand for, in minutes."""
    if unit == "d":  # N sessions: N days as IBKR's table counts, up to the weekends between
        return count * _DAY, 7 * math.ceil(count / 5) * _DAY
    if unit == "m":
        return count * 28 * _DAY, count * 31 * _DAY
    if unit == "y":
        return count * 365 * _DAY, count * 366 * _DAY
    per = {"min": 1.0, "h": 60.0, "w": 7 * _DAY}[unit]
    return count * per, count * per


def _classify(span: float, reading: int) -> tuple[Timeframe, Timeframe]:
    """Bars allowed for a span lying after one column and up to the next, with the columns'
    shortest (``reading`` 1) or longest (2) spans."""
    previous = _COLUMNS[0]
    for column in _COLUMNS:
        limit = column[1] if reading == 1 else column[2]
        if span <= limit:
            return column[3], (previous[4] if column is not previous else column[4])
        previous = column
    return _COLUMNS[-1][3], _COLUMNS[-1][4]  # pragma: no cover - 15y caps every unit


def bar_range(period: str) -> tuple[Timeframe, Timeframe] | None:
    """``(smallest, largest)`` bar IBKR accepts for ``period``, or None when there is none.

    A column's own period takes its range; any other period the intersection of the ranges
    of every reading of its span and of the columns' spans (``6d`` is 6 to 14 calendar days:
    1h - 8h; ``29d`` may be more or less than a month: 2h - 1w).
    """
    count, unit = parse_period(period)
    for name, _, _, smallest, largest in _COLUMNS:
        if period == name:
            return smallest, largest
    ranges = [_classify(span, reading) for span in _spans(count, unit) for reading in (1, 2)]
    low = max((r[0] for r in ranges), key=_ORDER.__getitem__)
    high = min((r[1] for r in ranges), key=_ORDER.__getitem__)
    return (low, high) if _ORDER[low] <= _ORDER[high] else None


def allows(period: str, timeframe: Timeframe) -> bool:
    """True when IBKR's table (read conservatively) accepts ``bar=timeframe`` with ``period``."""
    found = bar_range(period)
    return found is not None and _ORDER[found[0]] <= _ORDER[timeframe] <= _ORDER[found[1]]


def _shift_months(wall: datetime, months: int, clamp: bool) -> datetime:
    index = wall.year * 12 + wall.month - 1 - months
    year, month = divmod(index, 12)
    last = _calendar.monthrange(year, month + 1)[1]
    if wall.day <= last:
        return wall.replace(year=year, month=month + 1)
    shifted = wall.replace(year=year, month=month + 1, day=last)
    return shifted if clamp else shifted + timedelta(days=wall.day - last)


def _calendar_start(anchor: datetime, count: int, unit: str) -> datetime:
    utc = anchor.astimezone(timezone.utc)
    local = anchor.astimezone(EXCHANGE_TZ).replace(tzinfo=None)
    candidates: list[datetime] = []
    if unit == "w":
        days = 7 * count
        candidates.append(utc - timedelta(days=days))
        candidates.append((local - timedelta(days=days)).replace(tzinfo=EXCHANGE_TZ))
    else:
        months = count if unit == "m" else 12 * count
        for wall, zone in ((utc.replace(tzinfo=None), timezone.utc), (local, EXCHANGE_TZ)):
            for clamp in (True, False):
                candidates.append(_shift_months(wall, months, clamp).replace(tzinfo=zone))
        candidates.append(utc - timedelta(days=30 * count if unit == "m" else 365 * count))
    return max(c.astimezone(timezone.utc) for c in candidates)


def coverage_start(period: str, anchor: datetime, outside_rth: bool) -> datetime:
    """The earliest instant a request ``(period, startTime=anchor)`` surely covers (UTC).

    The window is ``[coverage_start, anchor)``. ``Nd`` counts the anchor's New York date as
    the first session when it is a weekday (even before its open), so ``1d`` anchored before
    the open covers nothing: the result is then ``anchor`` itself.
    """
    count, unit = parse_period(period)
    anchor = anchor.astimezone(timezone.utc)
    if unit in ("min", "h"):
        return anchor - timedelta(minutes=count * (1 if unit == "min" else 60))
    if unit == "d":
        first = trading_date(anchor)
        if not is_trading_day(first):
            first = previous_trading_day(first)
        opens, _ = session_span(previous_trading_day(first, count - 1), outside_rth)
        return min(opens, anchor)
    return min(_calendar_start(anchor, count, unit), anchor)


def worst_case_points(period: str, timeframe: Timeframe, outside_rth: bool) -> int:
    """An upper bound of the bars any window of ``period`` can hold, however it is read."""
    count, unit = parse_period(period)
    if unit == "d":
        sessions = count
        days = _spans(count, unit)[1] / _DAY
    else:
        days = _spans(count, unit)[1] / _DAY
        sessions = max_trading_days(days)
    if timeframe.is_intraday:
        per_session = bars_per_session(timeframe.minutes, outside_rth)
        if unit in ("min", "h"):
            return min(math.ceil(count * (1 if unit == "min" else 60) / timeframe.minutes) + 1,
                       per_session * sessions)  # fmt: skip
        return per_session * sessions
    if timeframe.bt_timeframe == BT_DAYS:
        return sessions
    if timeframe.bt_timeframe == BT_WEEKS:
        return math.floor(days / 7) + 2
    return math.floor(days / 28) + 2
