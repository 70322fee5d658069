from __future__ import annotations

import backtrader as bt
import pytest

from backtrader_ibkr_cp import ConfigError, Timeframe
from backtrader_ibkr_cp.models import timeframe as tfmod


def test_backtrader_constants_match() -> None:
    assert bt.TimeFrame.Minutes == tfmod.BT_MINUTES
    assert bt.TimeFrame.Days == tfmod.BT_DAYS
    assert bt.TimeFrame.Weeks == tfmod.BT_WEEKS
    assert bt.TimeFrame.Months == tfmod.BT_MONTHS


@pytest.mark.parametrize(
    ("bar", "tf", "comp"),
    [
        ("1min", bt.TimeFrame.Minutes, 1),
        ("5min", bt.TimeFrame.Minutes, 5),
        ("15min", bt.TimeFrame.Minutes, 15),
        ("30min", bt.TimeFrame.Minutes, 30),
        ("1h", bt.TimeFrame.Minutes, 60),
        ("4h", bt.TimeFrame.Minutes, 240),
        ("8h", bt.TimeFrame.Minutes, 480),
        ("1d", bt.TimeFrame.Days, 1),
        ("1w", bt.TimeFrame.Weeks, 1),
        ("1m", bt.TimeFrame.Months, 1),
    ],
)
def test_table_round_trips(bar: str, tf: int, comp: int) -> None:
    parsed = Timeframe.parse(bar)
    assert (parsed.bt_timeframe, parsed.bt_compression) == (tf, comp)
    assert Timeframe.from_backtrader(tf, comp) is parsed


def test_every_member_is_unique_in_both_directions() -> None:
    assert len({t.bar for t in Timeframe}) == len(Timeframe)
    assert len({(t.bt_timeframe, t.bt_compression) for t in Timeframe}) == len(Timeframe)


def test_original_names_exist() -> None:
    for name in ("MINUTE_1", "MINUTE_5", "MINUTE_15", "MINUTE_30", "HOUR_1", "HOUR_4"):
        assert Timeframe[name].is_intraday
    for name in ("DAY_1", "WEEK_1", "MONTH_1"):
        assert not Timeframe[name].is_intraday and Timeframe[name].minutes == 0


def test_unsupported_bar_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"'7min' is not supported; use one of 1min, 2min"):
        Timeframe.parse("7min")


def test_unsupported_backtrader_pair_lists_supported() -> None:
    with pytest.raises(ConfigError, match=r"Minutes/7 has no IBKR bar size.*Minutes/5"):
        Timeframe.from_backtrader(bt.TimeFrame.Minutes, 7)
    with pytest.raises(ConfigError, match=r"Seconds|has no IBKR"):
        Timeframe.from_backtrader(bt.TimeFrame.Seconds, 1)
