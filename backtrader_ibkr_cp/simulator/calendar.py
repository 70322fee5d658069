"""The simulated US equity calendar: trading days, sessions, bar sizes and bar buckets.

Rules (docs/dev/interfaces.md, "Calendar"):

- Trading days are Monday to Friday; there are no holidays.
- A trading day has 960 one-minute bars from 04:00 to 20:00 America/New_York (outside regular
  trading hours, "ETH"); regular trading hours ("RTH") are 09:30-16:00, minutes 330-719.
- Minutes are indexed from 0 (04:00 New York) to 959 (19:59); index 960 is 20:00, the day's end.
  DST changes happen on Sundays at 02:00, so a trading day never crosses one and
  ``minute_time(day, i) == minute_time(day, 0) + i minutes`` always holds.
- An intraday bar of N minutes covers a clock bucket that is a multiple of N minutes counted from
  New York midnight, cut to the session; its timestamp is max(bucket start, session start).
- Daily bars are stamped at the session start (09:30 RTH, 04:00 ETH) of their trading day, weekly
  bars at the first session of the ISO week (Monday), monthly bars at the first session (first
  weekday) of the month.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = [
    "BAR_SIZES",
    "DAY_MINUTES",
    "NEW_YORK",
    "RTH_END",
    "RTH_START",
    "UTC",
    "BarSize",
    "BarUnit",
    "Moment",
    "as_utc",
    "day_buckets",
    "group_start",
    "is_trading_day",
    "last_session_day",
    "locate",
    "minute_time",
    "next_trading_day",
    "previous_trading_day",
    "session_bounds",
    "session_range",
    "trading_days",
]

NEW_YORK = ZoneInfo("America/New_York")
UTC = timezone.utc

#: Minutes in a full 04:00-20:00 trading day.
DAY_MINUTES = 960
#: Index of the 09:30 minute (first RTH minute) counted from 04:00.
RTH_START = 330
#: Index of 16:00, the end of RTH (exclusive) counted from 04:00.
RTH_END = 720
#: Minutes from New York midnight to 04:00 (minute index 0).
_DAY_OFFSET = 240


def as_utc(value: datetime) -> datetime:
    """``value`` as a UTC-aware datetime; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def is_trading_day(day: date) -> bool:
    """True for Monday to Friday (the simulated market has no holidays)."""
    return day.weekday() < 5


def previous_trading_day(day: date) -> date:
    """The last trading day strictly before ``day``."""
    day -= timedelta(days=1)
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def next_trading_day(day: date) -> date:
    """The first trading day strictly after ``day``."""
    day += timedelta(days=1)
    while not is_trading_day(day):
        day += timedelta(days=1)
    return day


def trading_days(first: date, last: date) -> Iterator[date]:
    """Trading days from ``first`` to ``last``, both inclusive, in order."""
    day = first
    while day <= last:
        if is_trading_day(day):
            yield day
        day += timedelta(days=1)


def session_range(outside_rth: bool) -> tuple[int, int]:
    """Minute indexes ``[first, end)`` of a session: (0, 960) with ETH, (330, 720) RTH only."""
    return (0, DAY_MINUTES) if outside_rth else (RTH_START, RTH_END)


def minute_time(day: date, index: int) -> datetime:
    """UTC start of minute ``index`` of trading day ``day`` (0 = 04:00 New York, 960 = 20:00)."""
    start = datetime.combine(day, time(4), tzinfo=NEW_YORK).astimezone(UTC)
    return start + timedelta(minutes=index)


def session_bounds(day: date, outside_rth: bool) -> tuple[datetime, datetime]:
    """UTC ``(start, end)`` of ``day``'s session: 09:30-16:00 RTH or 04:00-20:00 with ETH."""
    first, end = session_range(outside_rth)
    return minute_time(day, first), minute_time(day, end)


@dataclass(frozen=True)
class Moment:
    """Where an instant falls in the trading calendar.

    ``day`` is the New York calendar date; ``minute`` the minute index from 04:00 (negative
    before 04:00, 960 or more from 20:00); ``second`` the seconds into that minute (0 <= s < 60).
    ``trading`` is False on weekends.
    """

    day: date
    minute: int
    second: float
    trading: bool


def locate(instant: datetime) -> Moment:
    """Place the UTC instant ``instant`` in the calendar (see :class:`Moment`)."""
    local = as_utc(instant).astimezone(NEW_YORK)
    day = local.date()
    start = datetime.combine(day, time(4), tzinfo=NEW_YORK)
    elapsed = (local - start).total_seconds()
    minute, second = divmod(elapsed, 60.0)
    return Moment(day=day, minute=int(minute), second=second, trading=is_trading_day(day))


def last_session_day(instant: datetime, outside_rth: bool) -> date:
    """The latest trading day whose session starts at or before ``instant``."""
    moment = locate(instant)
    first, _ = session_range(outside_rth)
    day = moment.day
    if not moment.trading or moment.minute < first:
        day = previous_trading_day(day)
    return day


class BarUnit(enum.Enum):
    """How a bar size groups one-minute bars."""

    MINUTES = "minutes"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True)
class BarSize:
    """One of IBKR's bar strings (``"1min"`` ... ``"8h"``, ``"1d"``, ``"1w"``, ``"1m"`` = month).

    ``minutes`` is the bucket length for intraday sizes (0 otherwise); ``seconds`` IBKR's
    ``barLength`` (a month counts 31 days, as in IBKR's responses).
    """

    text: str
    unit: BarUnit
    minutes: int
    seconds: int

    @property
    def rank(self) -> int:
        """Position in IBKR's ordered list of bar sizes (1min = 0 ... 1m = 14)."""
        return list(BAR_SIZES).index(self.text)

    @classmethod
    def parse(cls, text: str) -> BarSize:
        """The bar size for ``text``; ValueError naming the valid strings otherwise."""
        try:
            return BAR_SIZES[text]
        except KeyError:
            valid = ", ".join(BAR_SIZES)
            raise ValueError(f"bar size {text!r} is not supported; use one of {valid}") from None


def _intraday(text: str, minutes: int) -> BarSize:
    return BarSize(text, BarUnit.MINUTES, minutes, minutes * 60)


BAR_SIZES: dict[str, BarSize] = {
    size.text: size
    for size in (
        _intraday("1min", 1),
        _intraday("2min", 2),
        _intraday("3min", 3),
        _intraday("5min", 5),
        _intraday("10min", 10),
        _intraday("15min", 15),
        _intraday("30min", 30),
        _intraday("1h", 60),
        _intraday("2h", 120),
        _intraday("3h", 180),
        _intraday("4h", 240),
        _intraday("8h", 480),
        BarSize("1d", BarUnit.DAY, 0, 86_400),
        BarSize("1w", BarUnit.WEEK, 0, 604_800),
        BarSize("1m", BarUnit.MONTH, 0, 2_678_400),
    )
}


@lru_cache(maxsize=64)
def day_buckets(minutes: int, outside_rth: bool) -> tuple[tuple[int, int], ...]:
    """The minute-index ranges ``(first, end)`` of one day's ``minutes``-long bars.

    Buckets are clock multiples of ``minutes`` from New York midnight cut to the session, so
    ``day_buckets(60, False)`` starts ``(330, 360), (360, 420), ...`` (09:30, 10:00, 11:00 ...).
    """
    first, end = session_range(outside_rth)
    buckets: list[tuple[int, int]] = []
    index = first
    while index < end:
        clock = index + _DAY_OFFSET
        bucket_end = min((clock // minutes + 1) * minutes - _DAY_OFFSET, end)
        buckets.append((index, bucket_end))
        index = bucket_end
    return tuple(buckets)


def group_start(day: date, unit: BarUnit) -> date:
    """The trading day that stamps the daily, weekly or monthly bar containing ``day``."""
    if unit is BarUnit.WEEK:
        return day - timedelta(days=day.weekday())
    if unit is BarUnit.MONTH:
        first = day.replace(day=1)
        return first if is_trading_day(first) else next_trading_day(first)
    return day
