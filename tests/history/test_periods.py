"""Period strings, IBKR's period -> bar table read conservatively, and window reach."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backtrader_ibkr_cp.errors import ConfigError
from backtrader_ibkr_cp.history.periods import (
    allows,
    bar_range,
    coverage_start,
    parse_period,
    worst_case_points,
)
from backtrader_ibkr_cp.models.calendar import bars_per_session, max_trading_days
from backtrader_ibkr_cp.models.timeframe import Timeframe as TF

UTC = timezone.utc


@pytest.mark.parametrize(
    ("period", "low", "high"),
    [
        ("1min", TF.MINUTE_1, TF.MINUTE_1),
        ("30min", TF.MINUTE_1, TF.MINUTE_1),
        ("1h", TF.MINUTE_1, TF.HOUR_8),
        ("8h", TF.MINUTE_1, TF.HOUR_8),
        ("1d", TF.MINUTE_1, TF.HOUR_8),
        ("3d", TF.MINUTE_10, TF.HOUR_8),  # interfaces.md's example: between 1d and 1w
        ("1w", TF.MINUTE_10, TF.WEEK_1),
        ("2w", TF.HOUR_1, TF.WEEK_1),
        ("1m", TF.HOUR_1, TF.MONTH_1),
        ("2m", TF.HOUR_2, TF.MONTH_1),
        ("3m", TF.HOUR_2, TF.MONTH_1),
        ("6m", TF.HOUR_4, TF.MONTH_1),
        ("1y", TF.HOUR_8, TF.MONTH_1),
        ("2y", TF.DAY_1, TF.MONTH_1),
        ("3y", TF.DAY_1, TF.MONTH_1),
        ("5y", TF.WEEK_1, TF.MONTH_1),
        ("15y", TF.WEEK_1, TF.MONTH_1),
    ],
)
def test_step_size_table(period: str, low: TF, high: TF) -> None:
    assert bar_range(period) == (low, high)
    assert allows(period, low) and allows(period, high)


def test_disallowed_pairs() -> None:
    assert not allows("1d", TF.DAY_1)  # the 1d column stops at 8h
    assert not allows("2d", TF.MINUTE_5)  # past 1d the smallest bar is 10min
    assert not allows("1w", TF.MINUTE_5)
    assert not allows("15y", TF.DAY_1)


@pytest.mark.parametrize(
    "text", ["0d", "31min", "9h", "1001d", "793w", "183m", "16y", "1", "d", "1s", "1D"]
)
def test_bad_periods(text: str) -> None:
    with pytest.raises(ConfigError, match=r"min 1-30, h 1-8, d 1-1000"):
        parse_period(text)


def test_parse_period() -> None:
    assert parse_period("15y") == (15, "y")
    assert parse_period("30min") == (30, "min")


def test_day_periods_count_sessions_back_from_the_anchor() -> None:
    friday_close = datetime(2024, 3, 8, 21, 0, tzinfo=UTC)  # 16:00 EST
    assert coverage_start("1d", friday_close, False) == datetime(2024, 3, 8, 14, 30, tzinfo=UTC)
    assert coverage_start("2d", friday_close, True) == datetime(2024, 3, 7, 9, 0, tzinfo=UTC)
    saturday = datetime(2024, 3, 9, 12, 0, tzinfo=UTC)
    assert coverage_start("1d", saturday, False) == datetime(2024, 3, 8, 14, 30, tzinfo=UTC)
    monday = datetime(2024, 3, 11, 13, 30, tzinfo=UTC)  # 09:30 EDT
    assert coverage_start("5d", monday, False) == datetime(2024, 3, 5, 14, 30, tzinfo=UTC)


def test_one_day_before_the_open_covers_nothing() -> None:
    premarket = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)  # Tuesday 07:00 EST
    assert coverage_start("1d", premarket, False) == premarket


def test_calendar_periods_take_the_shortest_reading() -> None:
    anchor = datetime(2024, 3, 31, 20, 0, tzinfo=UTC)
    # "Feb 31" overflowing to Mar 2 (New York wall time) is the shortest reading of a month
    assert coverage_start("1m", anchor, False) == datetime(2024, 3, 2, 21, 0, tzinfo=UTC)
    assert coverage_start("1w", anchor, False) == datetime(2024, 3, 24, 20, 0, tzinfo=UTC)
    assert coverage_start("1y", datetime(2024, 3, 1, tzinfo=UTC), False) == datetime(
        2023, 3, 2, tzinfo=UTC
    )
    assert coverage_start("2h", anchor, False) == datetime(2024, 3, 31, 18, 0, tzinfo=UTC)


def test_bars_per_session() -> None:
    assert bars_per_session(1, False) == 390
    assert bars_per_session(1, True) == 960
    assert bars_per_session(5, False) == 78
    assert bars_per_session(60, False) == 7  # 09:30, 10:00 ... 15:00
    assert bars_per_session(180, False) == 3
    assert bars_per_session(480, True) == 3


def test_max_trading_days() -> None:
    assert max_trading_days(0) == 2
    assert max_trading_days(7) == 7  # an upper bound: up to 9 dates, at most 7 weekdays
    assert max_trading_days(366) == 264


def test_worst_case_points_of_the_chosen_periods() -> None:
    assert worst_case_points("1d", TF.MINUTE_1, True) == 960
    assert worst_case_points("3y", TF.DAY_1, False) <= 1000
    assert worst_case_points("15y", TF.WEEK_1, False) <= 1000
    assert worst_case_points("1w", TF.MINUTE_10, True) > 5 * 96
    assert worst_case_points("2h", TF.MINUTE_1, False) == 121


def test_every_allowed_pair_is_accepted_by_the_simulator() -> None:
    """The planner's table is never more permissive than the simulator's reading of IBKR's."""
    from backtrader_ibkr_cp.simulator.periods import Period, allowed_bars

    limits = {"min": 30, "h": 8, "d": 1000, "w": 792, "m": 182, "y": 15}
    checked = 0
    for unit, most in limits.items():
        for count in range(1, most + 1):
            period = f"{count}{unit}"
            accepted = allowed_bars(Period.parse(period))
            for tf in TF:
                if allows(period, tf):
                    assert tf.bar in accepted, (period, tf.bar)
                    checked += 1
    assert checked > 5000
