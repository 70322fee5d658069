"""Resampled bars equal the same bars aggregated from the ground truth, for every supported
pair of sizes, and equal what backtrader's PandasData gives when fed the same bars.

Bugs (each failed before the fix):
- ``cerebro.adddata(d); cerebro.resampledata(d, ...)`` (backtrader clones ``d``) built every
  1-hour bar from the wrong 5-minute bars, and stamped the last hour of a day 00:00 of the
  next day: the clone copied start-stamped bars;
- a 5-minute feed resampled to Days dated each day's bar the next day (Friday as Saturday);
- a native 1-hour feed beside a 5-minute feed resampled to 1 hour died in backtrader with
  ``ValueError: min() arg is an empty sequence``;
- two intraday feeds of one symbol (5 and 60 minutes) showed the strategy each hour's bar,
  and its close, at the first 5-minute bar of that hour.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import backtrader as bt
import pandas as pd
import pytest

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.models import Timeframe
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.support.instants import NY, UTC
from tests.support.recorder import Recorder, run
from tests.support.truth import Row, truth_rows

FROM = dt.datetime(2024, 3, 4)  # Monday, New York
TO = dt.datetime(2024, 3, 16)  # the Saturday after the next Friday

SOURCES = ("1min", "2min", "3min", "5min", "10min", "15min", "30min", "1h")
TARGETS = ("5min", "10min", "15min", "30min", "1h", "2h", "3h", "4h", "8h", "1d", "1w")
PAIRS = [
    (src, dst)
    for src in SOURCES
    for dst in TARGETS
    if (Timeframe.parse(dst).minutes or 10**6) > Timeframe.parse(src).minutes
    and (
        not Timeframe.parse(dst).is_intraday
        or Timeframe.parse(dst).minutes % Timeframe.parse(src).minutes == 0
    )
]


def feed(store: IBKRCPStore, bar: str, **kwargs: Any) -> Any:
    tf = Timeframe.parse(bar)
    return store.getdata(
        dataname="AAPL",
        timeframe=tf.bt_timeframe,
        compression=tf.bt_compression,
        fromdate=FROM,
        todate=TO,
        historical=True,
        **kwargs,
    )


def resample_kwargs(bar: str) -> dict[str, int]:
    tf = Timeframe.parse(bar)
    return {"timeframe": tf.bt_timeframe, "compression": tf.bt_compression}


def pandas_feed(sim: GatewaySimulator, bar: str) -> Any:
    """The same bars as PandasData, stamped (naive New York time) at their end."""
    tf = Timeframe.parse(bar)
    rows = truth_rows(
        sim.truth("AAPL", bar, start=FROM.replace(tzinfo=NY), end=TO.replace(tzinfo=NY)), bar
    )
    frame = pd.DataFrame(
        [r[1:] for r in rows],
        columns=["open", "high", "low", "close", "volume"],
        index=pd.DatetimeIndex([r[0].astimezone(NY).replace(tzinfo=None) for r in rows]),
    )
    return bt.feeds.PandasData(
        dataname=frame,
        timeframe=tf.bt_timeframe,
        compression=tf.bt_compression,
        openinterest=None,
        sessionend=dt.time(16, 0),
    )


def ohlcv_by_date(rows: list[Row]) -> list[tuple[dt.date, float, float, float, float, float]]:
    return [(r[0].astimezone(NY).date(), *r[1:]) for r in rows]


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{s}-to-{d}" for s, d in PAIRS])
def test_resampled_bars_equal_the_truth_and_pandas_data(
    frozen_sim: GatewaySimulator, src: str, dst: str
) -> None:
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.resampledata(feed(store, src), name="AAPL", **resample_kwargs(dst))
    cerebro.addstrategy(Recorder)
    ours = run(cerebro).rows["AAPL"]

    truth = truth_rows(
        frozen_sim.truth("AAPL", dst, start=FROM.replace(tzinfo=NY), end=TO.replace(tzinfo=NY)), dst
    )
    if Timeframe.parse(dst).is_intraday:
        assert ours == truth
    else:  # the trading date and OHLCV (backtrader picks the time of day of resampled days)
        assert ohlcv_by_date(ours) == ohlcv_by_date(truth)

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.resampledata(pandas_feed(frozen_sim, src), name="AAPL", **resample_kwargs(dst))
    cerebro.addstrategy(Recorder)
    theirs = [(r[0].replace(tzinfo=NY).astimezone(UTC), *r[1:]) for r in run(cerebro).rows["AAPL"]]
    assert ohlcv_by_date(ours) == ohlcv_by_date(theirs)
    if Timeframe.parse(dst).is_intraday:
        assert ours == theirs


def test_a_feed_added_and_resampled_from_the_same_object_gives_true_hours(
    frozen_sim: GatewaySimulator,
) -> None:
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    five = feed(store, "5min")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(five, name="5min")
    cerebro.resampledata(five, name="1h", **resample_kwargs("1h"))  # backtrader clones it
    cerebro.addstrategy(Recorder)
    rows = run(cerebro).rows
    start, end = FROM.replace(tzinfo=NY), TO.replace(tzinfo=NY)
    assert rows["5min"] == truth_rows(
        frozen_sim.truth("AAPL", "5min", start=start, end=end), "5min"
    )
    assert rows["1h"] == truth_rows(frozen_sim.truth("AAPL", "1h", start=start, end=end), "1h")


def test_a_native_hourly_feed_beside_a_resampled_one_runs_and_both_are_true(
    frozen_sim: GatewaySimulator,
) -> None:
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed(store, "1h"), name="native")
    cerebro.resampledata(feed(store, "5min"), name="resampled", **resample_kwargs("1h"))
    cerebro.addstrategy(Recorder)
    rows = run(cerebro, runonce=False).rows
    truth = truth_rows(
        frozen_sim.truth("AAPL", "1h", start=FROM.replace(tzinfo=NY), end=TO.replace(tzinfo=NY)),
        "1h",
    )
    assert rows["native"] == truth
    assert rows["resampled"] == truth


class Watch(bt.Strategy):  # type: ignore[misc]
    """At each step: the 5-minute bar's close, and the hourly close shown."""

    def __init__(self) -> None:
        self.seen_closes: set[float] = set()
        self.future: list[tuple[dt.datetime, float]] = []

    def next(self) -> None:
        five, hour = self.datas
        self.seen_closes.add(five.close[0])
        if hour.close[0] not in self.seen_closes:
            self.future.append((bt.num2date(five.datetime[0]), hour.close[0]))


def test_two_intraday_feeds_never_show_a_bar_before_it_is_complete(
    frozen_sim: GatewaySimulator,
) -> None:
    """An hourly bar's close is the close of its last 5-minute bar, so it may only be shown
    once that 5-minute bar was: otherwise the strategy sees the future."""
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed(store, "5min"), name="5min")
    cerebro.adddata(feed(store, "1h"), name="1h")
    cerebro.addstrategy(Watch)
    strategy = run(cerebro)
    assert strategy.future == []


def test_stamp_start_keeps_ibkrs_labels(frozen_sim: GatewaySimulator) -> None:
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed(store, "5min", stamp="start"), name="AAPL")
    cerebro.addstrategy(Recorder)
    rows = run(cerebro).rows["AAPL"]
    truth = frozen_sim.truth(
        "AAPL", "5min", start=FROM.replace(tzinfo=NY), end=TO.replace(tzinfo=NY)
    )
    assert rows == truth_rows(truth, "5min", at_end=False)
