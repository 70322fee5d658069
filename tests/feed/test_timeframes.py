"""Every (TimeFrame, compression) of the Timeframe table works end to end, bar for bar."""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import backtrader as bt
import pytest

from backtrader_ibkr_cp.models import Timeframe
from backtrader_ibkr_cp.simulator import GatewaySimulator, SimBar
from backtrader_ibkr_cp.store import IBKRCPStore

NY = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
CLOSE = dt.time(16, 0)
END = dt.datetime(2024, 3, 16, tzinfo=NY)


def last_trading_date(bar: SimBar, tf: Timeframe) -> dt.date:
    day = bar.timestamp.astimezone(NY).date()
    if tf is Timeframe.WEEK_1:
        return day + dt.timedelta(days=4 - day.weekday())
    if tf is Timeframe.MONTH_1:
        last = day.replace(day=calendar.monthrange(day.year, day.month)[1])
        while last.weekday() >= 5:
            last -= dt.timedelta(days=1)
        return last
    return day


def expected_stamp(tf: Timeframe) -> Callable[[SimBar], dt.datetime]:
    if tf.is_intraday:
        return lambda b: b.timestamp.astimezone(UTC)
    return lambda b: dt.datetime.combine(last_trading_date(b, tf), CLOSE, tzinfo=NY).astimezone(UTC)


@pytest.mark.parametrize("tf", list(Timeframe), ids=[tf.bar for tf in Timeframe])
def test_each_supported_bar_size_equals_truth(
    no_thread_leak: None,
    frozen_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
    tf: Timeframe,
) -> None:
    span = {1: 2, 2: 3, 3: 4, 5: 5}.get(tf.minutes, 10) if tf.is_intraday else 0
    start = {
        "1d": dt.datetime(2024, 1, 2),
        "1w": dt.datetime(2023, 6, 5),
        "1m": dt.datetime(2022, 1, 1),
    }.get(tf.bar, dt.datetime(2024, 3, 15) - dt.timedelta(days=span))
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    data = store.getdata(
        dataname="AAPL",
        timeframe=tf.bt_timeframe,
        compression=tf.bt_compression,
        historical=True,
        fromdate=start,
        todate=END.replace(tzinfo=None),
    )
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data, name="AAPL")
    cerebro.addstrategy(recorder)
    strategy = run_cerebro(cerebro)
    truth = frozen_sim.truth("AAPL", tf.bar, start=start.replace(tzinfo=NY), end=END)
    expected = to_rows(truth, expected_stamp(tf))
    got = strategy.rows["AAPL"]
    assert len(expected) > 5
    assert got == expected
