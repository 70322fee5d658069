"""historical=True through Cerebro: the bars a strategy sees are the simulator's truth."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import backtrader as bt
import pandas as pd
import pytest

from backtrader_ibkr_cp import IBKRCPData, IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator

NY = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
CLOSE = dt.time(16, 0)


def daily_stamp(day: dt.date) -> dt.datetime:
    """Daily and longer bars are stamped at the close of their last session."""
    return dt.datetime.combine(day, CLOSE, tzinfo=NY).astimezone(UTC)


def cerebro_with(data: Any, strategy: type, **kwargs: Any) -> bt.Cerebro:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data, name="AAPL")
    cerebro.addstrategy(strategy, **kwargs)
    return cerebro


@pytest.mark.parametrize(
    ("timeframe", "compression", "bar", "fromdate"),
    [
        (bt.TimeFrame.Minutes, 5, "5min", dt.datetime(2024, 3, 1)),
        (bt.TimeFrame.Minutes, 60, "1h", dt.datetime(2024, 1, 2)),
    ],
)
def test_intraday_bars_equal_truth(
    no_thread_leak: None,
    frozen_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
    timeframe: int,
    compression: int,
    bar: str,
    fromdate: dt.datetime,
) -> None:
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    data = store.getdata(
        dataname="AAPL",
        timeframe=timeframe,
        compression=compression,
        historical=True,
        fromdate=fromdate,
        todate=dt.datetime(2024, 3, 15, 16, 0),
    )
    # runonce=False: backtrader's vectorized mode delivers no notifications at all.
    strategy = run_cerebro(cerebro_with(data, recorder), runonce=False)
    start = fromdate.replace(tzinfo=NY)
    truth = frozen_sim.truth("AAPL", bar, start=start, end=dt.datetime(2024, 3, 15, 21, 0))
    assert len(truth) > 300
    assert strategy.rows["AAPL"] == to_rows(truth, bar)
    statuses = [s for _, s in strategy.statuses]
    assert statuses == ["CONNECTED", "DELAYED", "DISCONNECTED"]


def test_daily_and_weekly_bars_equal_truth_stamped_at_the_trading_date(
    no_thread_leak: None,
    frozen_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
) -> None:
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    daily = store.getdata(
        dataname="AAPL",
        timeframe=bt.TimeFrame.Days,
        historical=True,
        fromdate=dt.datetime(2023, 6, 1),
        todate=dt.date(2024, 3, 15),
    )
    weekly = store.getdata(
        dataname="AAPL",
        timeframe=bt.TimeFrame.Weeks,
        historical=True,
        fromdate=dt.datetime(2022, 1, 3),
        todate=dt.date(2024, 3, 15),
    )
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(daily, name="daily")
    cerebro.adddata(weekly, name="weekly")
    cerebro.addstrategy(recorder)
    strategy = run_cerebro(cerebro)

    days = frozen_sim.truth("AAPL", "1d", start=dt.datetime(2023, 6, 1, 4), end=WEEK_END)
    weeks = frozen_sim.truth("AAPL", "1w", start=dt.datetime(2022, 1, 3, 5), end=WEEK_END)
    expected_days = to_rows(days, "1d")  # stamped at the close of the trading date
    expected_weeks = to_rows(weeks, "1w")  # at Friday's close
    assert expected_days[0][0] == daily_stamp(dt.date(2023, 6, 1))
    assert len(expected_days) > 150 and len(expected_weeks) > 100
    assert strategy.rows["daily"] == expected_days
    assert strategy.rows["weekly"] == expected_weeks
    shown = [daily.num2date(x) for x in daily.datetime.array]  # the exchange's zone
    assert [s.date() for s in shown] == [b.timestamp.astimezone(NY).date() for b in days]
    assert {s.time() for s in shown} == {CLOSE}


WEEK_END = dt.datetime(2024, 3, 15, 21, 0)


class HistoricalSmaCross(bt.Strategy):  # type: ignore[misc]
    params = (("fast", 10), ("slow", 30))

    def __init__(self) -> None:
        fast = bt.ind.SMA(period=self.p.fast)
        slow = bt.ind.SMA(period=self.p.slow)
        self.cross = bt.ind.CrossOver(fast, slow)
        self.trades = 0

    def notify_trade(self, trade: Any) -> None:
        if trade.isclosed:
            self.trades += 1

    def next(self) -> None:
        if not self.position and self.cross > 0:
            self.buy(size=10)
        elif self.position and self.cross < 0:
            self.close()


def test_same_trades_and_value_as_pandas_data(
    no_thread_leak: None, frozen_sim: GatewaySimulator, run_cerebro: Callable[..., Any]
) -> None:
    start, end = dt.datetime(2023, 9, 1, tzinfo=NY), dt.datetime(2024, 3, 16, tzinfo=NY)
    truth = frozen_sim.truth("AAPL", "1h", start=start, end=end)
    frame = pd.DataFrame(
        [(b.open, b.high, b.low, b.close, b.volume) for b in truth],
        columns=["open", "high", "low", "close", "volume"],
        index=pd.DatetimeIndex([b.timestamp.replace(tzinfo=None) for b in truth]),
    )
    pandas_data = bt.feeds.PandasData(
        dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=60, openinterest=None
    )
    ours = IBKRCPData(
        dataname="AAPL",
        gateway_url=frozen_sim.url,
        timeframe=bt.TimeFrame.Minutes,
        compression=60,
        historical=True,
        fromdate=dt.datetime(2023, 9, 1),
        todate=dt.datetime(2024, 3, 16),
    )
    results = []
    for data in (pandas_data, ours):
        cerebro = cerebro_with(data, HistoricalSmaCross)
        cerebro.broker.setcash(100_000.0)
        strategy = run_cerebro(cerebro)
        results.append((cerebro.broker.getvalue(), strategy.trades, len(strategy.data)))
    assert results[0] == results[1]
    assert results[0][1] > 10  # the strategy actually traded


class LineSma(bt.Strategy):  # type: ignore[misc]
    """Indicators on a data *line* (the most common pattern in user strategies)."""

    def __init__(self) -> None:
        self.sma = bt.ind.SMA(self.data.close, period=5)
        self.seen: list[float] = []

    def next(self) -> None:
        self.seen.append(float(self.sma[0]))


def test_indicator_on_a_data_line_works(
    frozen_sim: GatewaySimulator, run_cerebro: Callable[..., Any]
) -> None:
    """Regression: the feed kept its own ``_clock`` attribute, which backtrader uses for the
    line clock, so ``SMA(data.close)`` crashed with "'datetime.datetime' object has no
    attribute '_owner'"."""
    data = IBKRCPData(
        dataname="AAPL",
        gateway_url=frozen_sim.url,
        timeframe=bt.TimeFrame.Days,
        compression=1,
        historical=True,
        fromdate=dt.datetime(2024, 1, 2),
        todate=dt.datetime(2024, 3, 1),
    )
    strategy = run_cerebro(cerebro_with(data, LineSma))
    closes = [
        b.close
        for b in frozen_sim.truth(
            "AAPL",
            "1d",
            start=dt.datetime(2024, 1, 2, tzinfo=UTC),
            end=dt.datetime(2024, 3, 1, tzinfo=UTC),
        )
    ]
    assert strategy.seen[0] == pytest.approx(sum(closes[:5]) / 5)
    assert len(strategy.seen) == len(closes) - 4
