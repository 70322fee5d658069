"""The exchange calendar: US equity sessions in New York time, and bar buckets. Pure.

One calendar for the whole package: the history planner counts sessions with it, the fetcher
and the live bar builder cut bars by it.

This is the wire calendar of ``docs/dev/interfaces.md``: weekdays (no holidays), regular hours
09:30-16:00 America/New_York, outside regular hours 04:00-20:00. An intraday bar of N minutes
covers a bucket aligned to multiples of N minutes counted from midnight New York time, clipped
to the session: its stamp is ``max(bucket start, session start)`` and its end
``min(bucket start + N, session end)`` (1h RTH bars: 09:30-10:00, 10:00-11:00, ...,
15:00-16:00). A daily bar covers one session, a weekly bar the sessions of one ISO week (stamped
at Monday's session start), a monthly bar the sessions of one calendar month (stamped at the
first weekday's session start).

Every ``datetime`` going in must be tz-aware; every one coming out is tz-aware UTC.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from ..errors import ConfigError
from .timeframe import BT_DAYS, BT_MONTHS, BT_WEEKS, Timeframe

__all__ = [
    "EXCHANGE_TZ",
    "Bucket",
    "bar_end",
    "bars_per_session",
    "bucket_at",
    "default_start",
    "expects_bars",
    "is_trading_day",
    "max_trading_days",
    "next_bucket",
    "next_session_end",
    "next_session_start",
    "period_last_date",
    "previous_trading_day",
    "session_bounds",
    "session_span",
    "sessions_between",
    "trading_date",
]

#: The exchange time zone of the wire calendar.
EXCHANGE_TZ = ZoneInfo("America/New_York")

_RTH = (time(9, 30), time(16, 0))
_OUTSIDE_RTH = (time(4, 0), time(20, 0))


@dataclass(frozen=True, slots=True)
class Bucket:
    """The interval one bar covers: ``[start, end)``, both tz-aware UTC.

    ``start`` is the bar's timestamp (its stamp on the wire), ``end`` the instant it is
    complete.
    """

    start: datetime
    end: datetime

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigError(f"datetime {moment.isoformat()} must be tz-aware (UTC)")


@functools.lru_cache(maxsize=1 << 16)
def _utc(day: date, clock: time) -> datetime:
    """New York wall time ``clock`` on ``day`` in UTC (memoised: every bar asks for its
    session's bounds and bucket start, and a few thousand days cover decades)."""
    return datetime.combine(day, clock, tzinfo=EXCHANGE_TZ).astimezone(timezone.utc)


def is_trading_day(day: date) -> bool:
    """Monday to Friday (holidays are not modelled)."""
    return day.weekday() < 5


def session_span(day: date, outside_rth: bool = False) -> tuple[datetime, datetime]:
    """``(open, close)`` UTC of the session hours on New York date ``day`` (close exclusive),
    whether or not ``day`` is a trading day."""
    opens, closes = _OUTSIDE_RTH if outside_rth else _RTH
    return _utc(day, opens), _utc(day, closes)


def session_bounds(day: date, *, outside_rth: bool = False) -> tuple[datetime, datetime] | None:
    """The session of New York date ``day`` as ``(start, end)`` UTC, or None on a weekend."""
    if not is_trading_day(day):
        return None
    return session_span(day, outside_rth)


def previous_trading_day(day: date, count: int = 1) -> date:
    """The trading day ``count`` trading days before ``day`` (``day`` itself not counted)."""
    while count > 0:
        day -= timedelta(days=1)
        if is_trading_day(day):
            count -= 1
    return day


def sessions_between(
    start: datetime, end: datetime, outside_rth: bool
) -> Iterator[tuple[date, datetime, datetime]]:
    """``(day, open, close)`` of every session overlapping ``[start, end)``, oldest first."""
    day = trading_date(start) - timedelta(days=1)
    last = trading_date(end)
    while day <= last:
        if is_trading_day(day):
            opens, closes = session_span(day, outside_rth)
            if opens < end and closes > start:
                yield day, opens, closes
        day += timedelta(days=1)


def bars_per_session(minutes: int, outside_rth: bool) -> int:
    """How many ``minutes``-long clock-aligned buckets a session touches.

    RTH: 390 for 1min, 78 for 5min, 7 for 1h (09:30, 10:00, ... 15:00), 1 for 8h.
    """
    opens, closes = _OUTSIDE_RTH if outside_rth else _RTH
    first = opens.hour * 60 + opens.minute
    last = closes.hour * 60 + closes.minute - 1
    return last // minutes - first // minutes + 1


def max_trading_days(days: float) -> int:
    """An upper bound of the trading days touched by any span of ``days`` calendar days.

    A span of D days touches at most D + 1 dates, of which at most 5 in every 7 are weekdays.
    """
    dates = math.floor(days) + 2
    return 5 * (dates // 7) + min(dates % 7, 5)


def trading_date(moment: datetime) -> date:
    """The New York calendar date of ``moment`` (tz-aware)."""
    _require_aware(moment)
    return moment.astimezone(EXCHANGE_TZ).date()


def _first_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _last_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _month_end(day: date) -> date:
    following = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return following - timedelta(days=1)


def _period_dates(day: date, timeframe: Timeframe) -> tuple[date, date]:
    """First and last trading dates of the daily/weekly/monthly period holding ``day``."""
    if timeframe.bt_timeframe == BT_DAYS:
        return day, day
    if timeframe.bt_timeframe == BT_WEEKS:
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=4)
    if timeframe.bt_timeframe == BT_MONTHS:
        return _first_weekday(day.replace(day=1)), _last_weekday(_month_end(day))
    raise ConfigError(f"timeframe {timeframe.bar} is intraday")


def period_last_date(moment: datetime, timeframe: Timeframe) -> date:
    """The last trading date of the daily/weekly/monthly period holding ``moment``."""
    return _period_dates(trading_date(moment), timeframe)[1]


def bucket_at(
    moment: datetime, timeframe: Timeframe, *, outside_rth: bool = False
) -> Bucket | None:
    """The bucket holding ``moment``, or None when ``moment`` is outside every session."""
    _require_aware(moment)
    local = moment.astimezone(EXCHANGE_TZ)
    day = local.date()
    bounds = session_bounds(day, outside_rth=outside_rth)
    if bounds is None or not bounds[0] <= moment < bounds[1]:
        return None
    if timeframe.is_intraday:
        minute_of_day = local.hour * 60 + local.minute
        first = minute_of_day - minute_of_day % timeframe.minutes
        return _intraday_bucket(day, first, timeframe.minutes, bounds)
    first_day, last_day = _period_dates(day, timeframe)
    first_bounds = session_bounds(first_day, outside_rth=outside_rth)
    last_bounds = session_bounds(last_day, outside_rth=outside_rth)
    assert first_bounds is not None and last_bounds is not None  # weekdays by construction
    return Bucket(first_bounds[0], last_bounds[1])


@functools.lru_cache(maxsize=1 << 14)
def _intraday_bucket(
    day: date, first: int, minutes: int, session: tuple[datetime, datetime]
) -> Bucket:
    """The bucket of ``minutes`` starting ``first`` minutes after New York midnight on
    ``day``, clipped to ``session`` (memoised: buckets repeat every day of a long span)."""
    bucket_start = _utc(day, time(first // 60, first % 60))
    # Wall-clock arithmetic in New York time (DST-safe: sessions never span 02:00). Every
    # bar length divides a day, so a bucket ends at midnight at the latest.
    end_minute = first + minutes
    if end_minute >= 24 * 60:
        bucket_end = _utc(day + timedelta(days=1), time(0))
    else:
        bucket_end = _utc(day, time(end_minute // 60, end_minute % 60))
    return Bucket(max(bucket_start, session[0]), min(bucket_end, session[1]))


def bar_end(stamp: datetime, timeframe: Timeframe, *, outside_rth: bool = False) -> datetime:
    """When the bar stamped ``stamp`` (its start) is complete: the end of its bucket on the
    exchange calendar (a daily bar at the session close, a weekly one at Friday's); a stamp
    outside every session falls back to the bar's nominal length."""
    bucket = bucket_at(stamp, timeframe, outside_rth=outside_rth)
    return bucket.end if bucket is not None else stamp + timeframe.duration


def next_session_start(moment: datetime, *, outside_rth: bool = False) -> datetime:
    """The first session start at or after ``moment`` (tz-aware)."""
    _require_aware(moment)
    day = trading_date(moment)
    for offset in range(8):
        bounds = session_bounds(day + timedelta(days=offset), outside_rth=outside_rth)
        if bounds is not None and bounds[0] >= moment:
            return bounds[0]
    raise AssertionError("unreachable: a weekday session starts within 8 days")


def next_session_end(moment: datetime, *, outside_rth: bool = False) -> datetime:
    """The end of the first session ending at or after ``moment`` (tz-aware): the close of
    today's session until it is over, then the next trading day's."""
    _require_aware(moment)
    day = trading_date(moment)
    for offset in range(-1, 8):
        bounds = session_bounds(day + timedelta(days=offset), outside_rth=outside_rth)
        if bounds is not None and bounds[1] >= moment:
            return bounds[1]
    raise AssertionError("unreachable: a weekday session ends within 8 days")


def expects_bars(
    start: datetime, end: datetime, now: datetime, timeframe: Timeframe, *, outside_rth: bool
) -> bool:
    """True when ``[start, end)`` holds a whole bar interval of the exchange calendar that is
    complete at ``now``: a history answer without bars for it is suspicious (a span of nights,
    weekends or the future legitimately has none)."""
    first = bucket_at(start, timeframe, outside_rth=outside_rth)
    if first is None:
        first = bucket_at(
            next_session_start(start, outside_rth=outside_rth), timeframe, outside_rth=outside_rth
        )
        assert first is not None
    elif first.start < start:
        first = next_bucket(first, timeframe, outside_rth=outside_rth)
    return first.start < end and first.end <= now


def next_bucket(
    previous: Bucket | datetime, timeframe: Timeframe, *, outside_rth: bool = False
) -> Bucket:
    """The bucket right after ``previous`` (a Bucket, or the stamp of one), skipping nights
    and weekends."""
    if isinstance(previous, datetime):
        found = bucket_at(previous, timeframe, outside_rth=outside_rth)
        if found is None:
            raise ConfigError(f"{previous.isoformat()} is not inside a session")
        previous = found
    moment = previous.end
    found = bucket_at(moment, timeframe, outside_rth=outside_rth)
    if found is None:
        found = bucket_at(
            next_session_start(moment, outside_rth=outside_rth),
            timeframe,
            outside_rth=outside_rth,
        )
    assert found is not None
    return found


#: The longest span IBKR's history serves (15 years), in days.
_MAX_LOOKBACK_DAYS = 15 * 365


def default_start(
    timeframe: Timeframe, now: datetime, bars: int, *, outside_rth: bool = False
) -> datetime:
    """The start of the ``bars``-th complete bar of ``timeframe`` before ``now``, walking
    the exchange calendar back (nights and weekends skipped), so a default backfill holds
    about ``bars`` bars; never more than 15 years back."""
    _require_aware(now)
    floor = now - timedelta(days=_MAX_LOOKBACK_DAYS)
    bucket = bucket_at(now, timeframe, outside_rth=outside_rth)
    if bucket is None:  # between sessions: the last bar is the one before the next session
        opens = next_session_start(now, outside_rth=outside_rth)
        bucket = bucket_at(opens, timeframe, outside_rth=outside_rth)
        assert bucket is not None
    start = bucket.start
    for _ in range(bars):
        start = _previous_bucket_start(start, timeframe, outside_rth)
        if start <= floor:
            return floor
    return start


def _previous_bucket_start(stamp: datetime, timeframe: Timeframe, outside_rth: bool) -> datetime:
    """The start of the bucket before the one starting at ``stamp``."""
    moment = stamp - timedelta(microseconds=1)
    found = bucket_at(moment, timeframe, outside_rth=outside_rth)
    day = trading_date(moment)
    while found is None:  # a night or a weekend: the last bucket of the previous session
        day = previous_trading_day(day)
        bounds = session_bounds(day, outside_rth=outside_rth)
        assert bounds is not None
        found = bucket_at(bounds[1] - timedelta(microseconds=1), timeframe, outside_rth=outside_rth)
    return found.start
