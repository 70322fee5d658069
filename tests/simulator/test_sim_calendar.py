"""Calendar, bar buckets and history periods of the simulated market (pure functions)."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timezone

import pytest

from backtrader_ibkr_cp.simulator.calendar import (
    BarSize,
    BarUnit,
    day_buckets,
    group_start,
    last_session_day,
    locate,
    minute_time,
    session_bounds,
)
from backtrader_ibkr_cp.simulator.periods import Period, allowed_bars, window_start

UTC = timezone.utc


def test_rth_open_is_0930_new_york_in_utc_across_dst() -> None:
    # EST (UTC-5) in January, EDT (UTC-4) in July; DST started Sunday 2024-03-10.
    assert session_bounds(date(2024, 1, 9), False) == (
        datetime(2024, 1, 9, 14, 30, tzinfo=UTC),
        datetime(2024, 1, 9, 21, 0, tzinfo=UTC),
    )
    assert session_bounds(date(2024, 7, 9), False)[0] == datetime(2024, 7, 9, 13, 30, tzinfo=UTC)
    assert session_bounds(date(2024, 3, 8), True)[0] == datetime(2024, 3, 8, 9, 0, tzinfo=UTC)
    assert session_bounds(date(2024, 3, 11), True)[0] == datetime(2024, 3, 11, 8, 0, tzinfo=UTC)
    assert minute_time(date(2024, 3, 11), 960) == datetime(2024, 3, 12, 0, 0, tzinfo=UTC)


def test_hour_buckets_start_at_session_start_then_clock_hours() -> None:
    rth = day_buckets(60, False)
    assert rth[0] == (330, 360)  # 09:30-10:00
    assert rth[1] == (360, 420)  # 10:00-11:00
    assert rth[-1] == (660, 720)  # 15:00-16:00
    assert len(rth) == 7
    # 8h buckets are clock multiples of 8 hours from midnight: 00-08, 08-16, 16-24.
    assert day_buckets(480, True) == ((0, 240), (240, 720), (720, 960))
    assert day_buckets(480, False) == ((330, 720),)
    # 3h: 03:00-06:00 cut to 04:00, then 06-09, 09-12 ...
    assert day_buckets(180, True)[:2] == ((0, 120), (120, 300))
    for minutes in (1, 2, 3, 5, 10, 15, 30, 60, 120, 180, 240, 480):
        for outside in (False, True):
            buckets = day_buckets(minutes, outside)
            assert all(a < b for a, b in buckets)
            assert all(b1 == a2 for (_, b1), (a2, _) in itertools.pairwise(buckets))
            # every bucket but the first starts on a clock multiple of the bar length
            assert all((a + 240) % minutes == 0 for a, _ in buckets[1:])


def test_week_and_month_bars_start_at_first_session() -> None:
    assert group_start(date(2024, 3, 7), BarUnit.WEEK) == date(2024, 3, 4)
    assert group_start(date(2024, 6, 20), BarUnit.MONTH) == date(2024, 6, 3)  # June 1 = Sat
    assert group_start(date(2024, 5, 20), BarUnit.MONTH) == date(2024, 5, 1)


def test_locate_and_last_session_day() -> None:
    saturday = datetime(2024, 3, 9, 15, 0, tzinfo=UTC)
    assert not locate(saturday).trading
    assert last_session_day(saturday, False) == date(2024, 3, 8)
    before_open = datetime(2024, 3, 5, 14, 29, tzinfo=UTC)  # 09:29 New York
    assert last_session_day(before_open, False) == date(2024, 3, 4)
    assert last_session_day(before_open, True) == date(2024, 3, 5)
    moment = locate(datetime(2024, 3, 5, 15, 0, 30, tzinfo=UTC))
    assert (moment.minute, moment.second) == (360, 30.0)


@pytest.mark.parametrize(
    ("period", "smallest", "largest"),
    [
        ("30min", "1min", "1min"),
        ("1h", "1min", "8h"),
        ("1d", "1min", "8h"),
        ("3d", "10min", "8h"),
        ("1w", "10min", "1w"),
        ("1m", "1h", "1m"),
        ("2m", "2h", "1m"),
        ("1y", "8h", "1m"),
        ("12m", "8h", "1m"),
        ("3y", "1d", "1m"),
        ("10y", "1w", "1m"),
        ("15y", "1w", "1m"),
    ],
)
def test_period_bar_table(period: str, smallest: str, largest: str) -> None:
    allowed = allowed_bars(Period.parse(period))
    assert (allowed[0], allowed[-1]) == (smallest, largest)


@pytest.mark.parametrize("text", ["0d", "31min", "9h", "1001d", "793w", "183m", "16y", "5x", "d"])
def test_bad_periods_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="period"):
        Period.parse(text)


def test_bad_bar_size_names_valid_ones() -> None:
    with pytest.raises(ValueError, match="use one of 1min, 2min"):
        BarSize.parse("7min")


def test_day_periods_count_sessions_back_from_the_anchor() -> None:
    tuesday_1000 = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
    assert window_start(Period.parse("1d"), tuesday_1000, False) == datetime(
        2024, 3, 5, 14, 30, tzinfo=UTC
    )
    # 3 sessions: Tue, Mon, and Fri before the weekend.
    assert window_start(Period.parse("3d"), tuesday_1000, False) == datetime(
        2024, 3, 1, 14, 30, tzinfo=UTC
    )
    # An anchor exactly at the session start does not include that session (IBKR's example).
    monday_open = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    assert window_start(Period.parse("1d"), monday_open, False) == datetime(
        2024, 3, 1, 14, 30, tzinfo=UTC
    )
    assert window_start(Period.parse("2w"), tuesday_1000, False) == datetime(
        2024, 2, 20, 15, 0, tzinfo=UTC
    )
    assert window_start(Period.parse("1m"), datetime(2024, 3, 31, tzinfo=UTC), False) == datetime(
        2024, 2, 29, tzinfo=UTC
    )
