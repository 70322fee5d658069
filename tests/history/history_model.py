"""An independent model of the simulated market's bar timestamps, and an in-memory history API.

The model follows docs/dev/interfaces.md "Calendar" directly (weekdays, 09:30-16:00 or
04:00-20:00 New York, clock-aligned buckets, daily/weekly/monthly stamps at session starts), so
the planner's tests do not check the planner against its own helpers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from backtrader_ibkr_cp.errors import ApiError, DataUnavailable
from backtrader_ibkr_cp.history.periods import allows, coverage_start
from backtrader_ibkr_cp.models.bar import Bar
from backtrader_ibkr_cp.models.history import HistoryResponse
from backtrader_ibkr_cp.models.timeframe import BT_DAYS, BT_WEEKS, Timeframe

NY = ZoneInfo("America/New_York")
UTC = timezone.utc


def _at(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY).astimezone(UTC)


def session(day: date, outside_rth: bool) -> tuple[datetime, datetime]:
    return (_at(day, 4, 0), _at(day, 20, 0)) if outside_rth else (_at(day, 9, 30), _at(day, 16, 0))


def bar_starts(tf: Timeframe, start: datetime, end: datetime, outside_rth: bool) -> list[datetime]:
    """Every bar start in ``[start, end)``, in order."""
    out: list[datetime] = []
    day = start.astimezone(NY).date() - timedelta(days=1 if tf.is_intraday else 40)
    last = end.astimezone(NY).date()
    while day <= last:
        if day.weekday() < 5:
            opens, closes = session(day, outside_rth)
            if tf.is_intraday:
                minute = (
                    opens.astimezone(NY).hour * 60 + opens.astimezone(NY).minute
                ) // tf.minutes
                stamp = opens
                while stamp < closes:
                    out.append(stamp)
                    minute += 1
                    stamp = _at(day, 0, 0) + timedelta(minutes=minute * tf.minutes)
            elif tf.bt_timeframe == BT_DAYS:
                out.append(opens)
            elif tf.bt_timeframe == BT_WEEKS:
                if day.weekday() == 0:
                    out.append(opens)
            else:
                first = day.replace(day=1)
                while first.weekday() >= 5:
                    first += timedelta(days=1)
                if day == first:
                    out.append(opens)
        day += timedelta(days=1)
    return [t for t in out if start <= t < end]


def make_bar(stamp: datetime, volume_lots: bool = False) -> Bar:
    """A deterministic, valid bar for ``stamp``."""
    seed = int(stamp.timestamp()) // 60
    low = 100 + (seed * 7919 % 1000) / 100
    high = low + 1 + (seed % 13) / 10
    volume = float(seed % 5000 + 100)
    return Bar(stamp, low + 0.25, high, low, high - 0.5, volume)


Fault = Callable[[str, str, datetime], None]
#: Real seconds a call waits for ``overlap`` calls in flight before it fails.
OVERLAP_TIMEOUT = 10.0


class FakeHistoryApi:
    """An in-memory stand-in for ``ApiClient.history`` with the gateway's window semantics.

    It reaches back *further* than the planner assumes (``extra``) and keeps the most recent
    1000 bars, like IBKR. ``fault(bar, period, anchor)`` may raise to inject errors.

    ``overlap``: the first calls wait until that many are in flight together (then every
    call goes on), so a caller that runs fewer at once fails (AssertionError after
    :data:`OVERLAP_TIMEOUT` s) instead of passing by luck. ``delay``: seconds each call takes.
    ``threads`` records the thread of each call.
    """

    def __init__(
        self,
        *,
        extra: timedelta = timedelta(days=2),
        delay: float = 0.0,
        overlap: int = 0,
        fault: Fault | None = None,
    ) -> None:
        self.extra = extra
        self.delay = delay
        self.overlap = overlap
        self.fault = fault
        self.calls: list[tuple[int, str, str, datetime, bool]] = []
        self.threads: list[int] = []
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Condition()

    def history(
        self,
        conid: int,
        bar: str,
        period: str,
        start_time: datetime | None,
        outside_rth: bool = False,
    ) -> HistoryResponse:
        assert start_time is not None and start_time.tzinfo is not None
        with self._lock:
            self.calls.append((conid, bar, period, start_time, outside_rth))
            self.threads.append(threading.get_ident())
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self._lock.notify_all()
            overlapped = self._lock.wait_for(lambda: self.peak >= self.overlap, OVERLAP_TIMEOUT)
        try:
            assert overlapped, f"never {self.overlap} calls in flight together"
            if self.delay:
                time.sleep(self.delay)
            tf = Timeframe.parse(bar)
            if not allows(period, tf):
                raise ApiError(f"bar {bar} not allowed with {period}", status=400)
            if self.fault is not None:
                self.fault(bar, period, start_time)
            reach = coverage_start(period, start_time, outside_rth) - self.extra
            stamps = bar_starts(tf, reach, start_time, outside_rth)[-1000:]
            if not stamps:
                raise DataUnavailable("no data", status=200, gateway_message="No data.")
            return HistoryResponse(symbol="AAPL", bars=[make_bar(t) for t in stamps])
        finally:
            with self._lock:
                self.in_flight -= 1
