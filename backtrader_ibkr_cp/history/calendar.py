"""The US-equity trading calendar the history planner counts with. Pure: no I/O.

Sessions are weekdays in New York time: regular trading hours (RTH) 09:30-16:00, outside
regular hours 04:00-20:00. Holidays are not modelled: a window that falls on one answers
"No data." and the fetcher treats it as empty. Every datetime taken or returned is tz-aware;
returned ones are UTC.

Intraday bars of N minutes sit in buckets aligned to clock multiples of N minutes from New York
midnight, clipped to the session (so 1h RTH bars start 09:30, 10:00, ... 15:00).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

__all__ = [
    "NEW_YORK",
    "bars_per_session",
    "is_trading_day",
    "max_trading_days",
    "ny_date",
    "previous_trading_day",
    "session_bounds",
    "sessions_between",
]

NEW_YORK = ZoneInfo("America/New_York")

#: Session hours in New York time: (open, close) for RTH and for outside RTH.
_RTH = (time(9, 30), time(16, 0))
_OUTSIDE_RTH = (time(4, 0), time(20, 0))


def _hours(outside_rth: bool) -> tuple[time, time]:
    return _OUTSIDE_RTH if outside_rth else _RTH


def is_trading_day(day: date) -> bool:
    """Monday to Friday (holidays are not modelled)."""
    return day.weekday() < 5


def ny_date(moment: datetime) -> date:
    """The New York calendar date of an aware datetime."""
    return moment.astimezone(NEW_YORK).date()


def previous_trading_day(day: date, count: int = 1) -> date:
    """The trading day ``count`` trading days before ``day`` (``day`` itself not counted)."""
    while count > 0:
        day -= timedelta(days=1)
        if is_trading_day(day):
            count -= 1
    return day


def session_bounds(day: date, outside_rth: bool) -> tuple[datetime, datetime]:
    """``(open, close)`` of ``day``'s session in UTC; close is exclusive."""
    opens, closes = _hours(outside_rth)
    start = datetime.combine(day, opens, tzinfo=NEW_YORK).astimezone(timezone.utc)
    end = datetime.combine(day, closes, tzinfo=NEW_YORK).astimezone(timezone.utc)
    return start, end


def sessions_between(
    start: datetime, end: datetime, outside_rth: bool
) -> Iterator[tuple[date, datetime, datetime]]:
    """``(day, open, close)`` of every session overlapping ``[start, end)``, oldest first."""
    day = ny_date(start) - timedelta(days=1)
    last = ny_date(end)
    while day <= last:
        if is_trading_day(day):
            opens, closes = session_bounds(day, outside_rth)
            if opens < end and closes > start:
                yield day, opens, closes
        day += timedelta(days=1)


def bars_per_session(minutes: int, outside_rth: bool) -> int:
    """How many ``minutes``-long clock-aligned buckets a session touches.

    RTH: 390 for 1min, 78 for 5min, 7 for 1h (09:30, 10:00, ... 15:00), 1 for 8h.
    """
    opens, closes = _hours(outside_rth)
    first = opens.hour * 60 + opens.minute
    last = closes.hour * 60 + closes.minute - 1
    return last // minutes - first // minutes + 1


def max_trading_days(days: float) -> int:
    """An upper bound of the trading days touched by any span of ``days`` calendar days.

    A span of D days touches at most D + 1 dates, of which at most 5 in every 7 are weekdays.
    """
    dates = math.floor(days) + 2
    return 5 * (dates // 7) + min(dates % 7, 5)
