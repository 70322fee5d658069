"""The history window planner: fixed cases, input validation, and coverage properties."""

from __future__ import annotations

import bisect
import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtrader_ibkr_cp.errors import ConfigError
from backtrader_ibkr_cp.history.periods import MAX_POINTS, allows, coverage_start
from backtrader_ibkr_cp.history.planner import (
    Window,
    max_period,
    minimum_requests,
    plan_windows,
)
from backtrader_ibkr_cp.models.timeframe import Timeframe
from tests.history.history_model import bar_starts

UTC = timezone.utc
TUESDAY = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("bar", "period"),
    [("1min", "1d"), ("2min", "1d"), ("3min", "1d"), ("5min", "1d"), ("10min", "1w"),
     ("15min", "1w"), ("30min", "1w"), ("1h", "1m"), ("2h", "3m"), ("3h", "3m"), ("4h", "6m"),
     ("8h", "1y"), ("1d", "3y"), ("1w", "15y"), ("1m", "15y")],
)  # fmt: skip
def test_max_period_table(bar: str, period: str) -> None:
    assert max_period(bar) == period
    assert max_period(bar, outside_rth=True) == period


def test_five_minute_bars_take_one_request_per_session() -> None:
    start, end = TUESDAY, TUESDAY + timedelta(days=91)  # 2024-01-02 .. 2024-04-02
    windows = plan_windows("5min", start, end)
    sessions = {t.astimezone(timezone(timedelta(hours=-5))).date()
                for t in bar_starts(Timeframe.MINUTE_5, start, end, False)}  # fmt: skip
    assert len(windows) == len(sessions) == 65
    assert {w.period for w in windows} == {"1d"}
    # anchored at the 16:00 close, so neighbouring windows meet in the overnight gap
    assert windows[0] == Window(
        datetime(2024, 1, 2, 14, 30, tzinfo=UTC), datetime(2024, 1, 2, 21, 0, tzinfo=UTC), "1d",
        "5min",
    )  # fmt: skip


def test_windows_are_oldest_first_and_anchor_at_end() -> None:
    end = datetime(2024, 3, 6, 17, 0, tzinfo=UTC)  # Wednesday 12:00 New York
    windows = plan_windows("10min", TUESDAY, end)
    assert [w.end for w in windows] == sorted(w.end for w in windows)
    assert windows[-1].end == end and windows[-1].period == "1w"


def test_short_spans_ask_for_short_periods() -> None:
    end = datetime(2024, 1, 3, 20, 0, tzinfo=UTC)  # 15:00 New York
    assert plan_windows("1min", end - timedelta(hours=2), end) == [
        Window(end - timedelta(hours=2), end, "2h", "1min")
    ]
    (daily,) = plan_windows("1d", TUESDAY, TUESDAY + timedelta(days=4))
    assert daily.period == "1w"  # "1d" does not allow 1d bars in the conservative table


def test_weekend_needs_no_request() -> None:
    saturday = datetime(2024, 1, 6, tzinfo=UTC)
    assert plan_windows("1min", saturday, saturday + timedelta(days=2)) == []
    assert minimum_requests("5min", saturday, saturday + timedelta(days=2)) == 0


def test_less_than_a_bar_needs_no_request() -> None:
    start = datetime(2024, 1, 2, 15, 2, tzinfo=UTC)  # 10:02 New York, between 5min bars
    assert plan_windows("5min", start, start + timedelta(minutes=2)) == []
    assert len(plan_windows("5min", start, start + timedelta(minutes=4))) == 1


def test_long_daily_and_weekly_spans() -> None:
    assert minimum_requests("1d", TUESDAY, TUESDAY + timedelta(days=730)) == 1
    assert minimum_requests("1d", TUESDAY, TUESDAY + timedelta(days=3 * 365 + 30)) == 2
    assert minimum_requests("1w", TUESDAY, TUESDAY + timedelta(days=5 * 365)) == 1
    assert minimum_requests("1h", TUESDAY, TUESDAY + timedelta(days=365)) == 13


def test_fractional_end_rounds_the_anchor_up() -> None:
    end = datetime(2024, 1, 2, 15, 0, 0, 500_000, tzinfo=UTC)
    (window,) = plan_windows("1min", TUESDAY, end)
    assert window.end == datetime(2024, 1, 2, 15, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        (datetime(2024, 1, 2), datetime(2024, 1, 3, tzinfo=UTC), "fromdate .* is naive"),
        (TUESDAY, datetime(2024, 1, 3), "todate .* is naive"),
        (TUESDAY, TUESDAY, "fromdate 2024-01-02T00:00:00\\+00:00 is not before todate"),
        (TUESDAY + timedelta(days=1), TUESDAY, "is not before todate"),
        (datetime(1960, 1, 1, tzinfo=UTC), TUESDAY, "1970-8999"),
    ],
)
def test_bad_ranges(start: datetime, end: datetime, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        plan_windows("1d", start, end)


def test_bad_bar_size() -> None:
    with pytest.raises(ConfigError, match="7min"):
        plan_windows("7min", TUESDAY, TUESDAY + timedelta(days=1))


def test_other_time_zones_are_converted() -> None:
    eastern = timezone(timedelta(hours=-5))
    local = plan_windows(
        "1h", datetime(2024, 1, 1, 19, tzinfo=eastern), datetime(2024, 2, 1, tzinfo=eastern)
    )
    utc = plan_windows("1h", TUESDAY, datetime(2024, 2, 1, 5, tzinfo=UTC))
    assert local == utc


# -- properties ------------------------------------------------------------------------------

#: Longest span per bar size in the property tests (keeps every example fast).
_SPAN_DAYS = {tf: min(4000, 12 * tf.minutes) if tf.is_intraday else 4000 for tf in Timeframe}


@st.composite
def ranges(draw: st.DrawFn) -> tuple[Timeframe, datetime, datetime, bool]:
    tf = draw(st.sampled_from(list(Timeframe)))
    start = draw(
        st.datetimes(datetime(2005, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC))
    ).replace(microsecond=0)
    if draw(st.booleans()):  # a round start: midnight or a bar boundary
        start = start.replace(hour=draw(st.sampled_from([0, 9, 14, 21])), minute=0, second=0)
    span = draw(st.floats(min_value=1 / 1440, max_value=_SPAN_DAYS[tf]))
    return tf, start, start + timedelta(days=span), draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(ranges())
def test_plan_covers_every_bar_within_the_limits(
    case: tuple[Timeframe, datetime, datetime, bool],
) -> None:
    tf, start, end, outside_rth = case
    windows = plan_windows(tf, start, end, outside_rth=outside_rth)
    assert len(windows) == minimum_requests(tf, start, end, outside_rth)
    stamps = bar_starts(tf, start, end, outside_rth)
    if not stamps:
        assert windows == [] or not tf.is_intraday
        return
    ends = [w.end for w in windows]
    assert ends == sorted(ends)
    for stamp in stamps:  # every bar falls in a window
        found = [w for w in windows[bisect.bisect_right(ends, stamp) :] if w.start <= stamp]
        assert found, f"bar {stamp} not covered by {windows}"
    first_bar = stamps[0]
    for window in windows:
        assert window.bar == tf.bar
        assert allows(window.period, tf), window
        assert window.start == coverage_start(window.period, window.end, outside_rth)
        assert window.start < window.end
        held = bar_starts(tf, window.start, window.end, outside_rth)
        assert len(held) <= MAX_POINTS, window
        assert held or window.end > first_bar, "a window without bars"
    # no plan with fewer windows exists: each window holds at most one longest period
    longest = {"1d": 1.0, "1w": 7.0, "1m": 31.0, "3m": 92.0, "6m": 184.0, "1y": 366.0,
               "3y": 1097.0, "15y": 15 * 366.0}[max_period(tf, outside_rth)]  # fmt: skip
    spread_days = (stamps[-1] - stamps[0]).total_seconds() / 86400
    if max_period(tf, outside_rth) == "1d":
        sessions = {(s - timedelta(hours=4)).date() for s in stamps}  # UTC-4 keeps a session's date
        assert len(windows) == len(sessions)
    else:
        assert len(windows) >= math.ceil(spread_days / longest)
        assert len(windows) <= math.ceil(spread_days / (longest * 0.9 - 1)) + 1
