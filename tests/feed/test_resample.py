"""resampledata / replaydata on top of the live feed, and ticks mode."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import backtrader as bt
import pytest

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator

NY = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
SESSION_OPEN = dt.datetime(2024, 3, 5, 9, 30)
FIVE = dt.timedelta(minutes=5)
#: Tuesday 2024-03-05 10:00:30 New York.
START = dt.datetime(2024, 3, 5, 15, 0, 30, tzinfo=UTC)


@pytest.fixture
def fast_sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(seed=9, speed=240, start=START, penalty_seconds=5) as sim:
        yield sim


def one_minute_feed(sim: GatewaySimulator, **kwargs: Any) -> Any:
    store = IBKRCPStore(gateway_url=sim.url, poll_interval=0.2)
    return store.getdata(
        dataname="AAPL",
        timeframe=bt.TimeFrame.Minutes,
        compression=1,
        fromdate=SESSION_OPEN,
        qcheck=0.05,
        **kwargs,
    )


def test_resampled_five_minute_bars_equal_the_gateways_five_minute_bars(
    no_thread_leak: None,
    fast_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
) -> None:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.resampledata(
        one_minute_feed(fast_sim), name="AAPL", timeframe=bt.TimeFrame.Minutes, compression=5
    )
    cerebro.addstrategy(recorder, live_bars=2)
    strategy = run_cerebro(cerebro)
    rows = strategy.rows["AAPL"]
    assert len(strategy.live_rows["AAPL"]) >= 2
    truth = fast_sim.truth("AAPL", "5min", start=SESSION_OPEN.replace(tzinfo=NY))
    # backtrader stamps resampled bars at their right edge: truth start + 5 minutes.
    expected = to_rows(truth, "5min")[: len(rows)]  # stamped at the right edge
    assert rows == expected


def test_replayed_bars_end_as_the_gateways_five_minute_bars(
    no_thread_leak: None,
    fast_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
) -> None:
    class LastValue(recorder):  # type: ignore[misc,valid-type]
        """Keeps the last state of each replayed bar (replay updates a bar in place, with
        the same length)."""

        lengths: set[int] = set()

        def next(self) -> None:
            d = self.data
            when = bt.num2date(d.datetime[0]).replace(tzinfo=UTC)
            row = (when, d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0])
            rows = self.rows["AAPL"]
            if len(rows) == len(d):
                rows[-1] = row
            else:
                rows.append(row)
            if self._live:
                self.lengths.add(len(d))
            if len(self.lengths) >= 3:
                self.env.runstop()

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.replaydata(
        one_minute_feed(fast_sim), name="AAPL", timeframe=bt.TimeFrame.Minutes, compression=5
    )
    cerebro.addstrategy(LastValue)
    strategy = run_cerebro(cerebro)
    rows = strategy.rows["AAPL"][:-1]  # the last one may still be forming
    truth = fast_sim.truth("AAPL", "5min", start=SESSION_OPEN.replace(tzinfo=NY))
    expected = to_rows(truth, "5min")[: len(rows)]  # stamped at the right edge
    assert len(rows) >= 7 and rows == expected


def test_ticks_mode_resampled_to_minutes(
    no_thread_leak: None,
    fast_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
) -> None:
    store = IBKRCPStore(gateway_url=fast_sim.url, poll_interval=0.2)
    ticks = store.getdata(dataname="AAPL", ticks=True, fromdate=SESSION_OPEN, qcheck=0.05)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.resampledata(ticks, name="AAPL", timeframe=bt.TimeFrame.Minutes, compression=1)
    cerebro.addstrategy(recorder, live_bars=4)
    strategy = run_cerebro(cerebro)
    truth = {
        b.timestamp.astimezone(UTC) + dt.timedelta(minutes=1): b
        for b in fast_sim.truth("AAPL", "1min", start=SESSION_OPEN.replace(tzinfo=NY))
    }
    rows = strategy.rows["AAPL"]
    backfilled = [r for r in rows if r not in strategy.live_rows["AAPL"]]
    assert len(backfilled) >= 30
    for when, o, h, low, c, v in backfilled:  # backfill: the gateway's own minutes
        bar = truth[when]
        assert (o, h, low, c, v) == (bar.open, bar.high, bar.low, bar.close, bar.volume)
    for when, o, h, low, c, _ in strategy.live_rows["AAPL"]:  # live: built from ticks
        assert when in truth
        bar = truth[when]
        assert bar.low - 0.01 <= min(o, low, c) and max(o, h, c) <= bar.high + 0.01
    assert [r[0] for r in rows] == sorted({r[0] for r in rows})


def test_three_live_feeds_resampled_to_five_minutes_equal_the_truth(
    no_thread_leak: None, fast_sim: GatewaySimulator, run_cerebro: Callable[..., Any]
) -> None:
    """Bug: with several feeds, backtrader closed one feed's 5-minute bar when *another*
    feed's bar passed the boundary, before this feed's last minute of the bucket arrived: it
    landed in the next bucket, and every later live bar of that feed was shifted (3 of 3
    runs at 20x). The backfilled (DELAYED) bars were right."""
    from tests.support.recorder import Recorder
    from tests.support.truth import truth_rows

    store = IBKRCPStore(gateway_url=fast_sim.url, poll_interval=0.2)
    cerebro = bt.Cerebro(stdstats=False)
    symbols = ("AAPL", "MSFT", "IBM")
    for symbol in symbols:
        data = store.getdata(
            dataname=symbol,
            timeframe=bt.TimeFrame.Minutes,
            compression=1,
            fromdate=SESSION_OPEN,
            qcheck=0.05,
        )
        cerebro.resampledata(data, name=symbol, timeframe=bt.TimeFrame.Minutes, compression=5)
    cerebro.addstrategy(Recorder, live_bars=3)
    strategy = run_cerebro(cerebro, max_seconds=60)
    for symbol in symbols:
        rows = strategy.rows[symbol]
        assert len(strategy.live_rows[symbol]) >= 3
        truth = fast_sim.truth(symbol, "5min", start=SESSION_OPEN.replace(tzinfo=NY))
        assert rows == truth_rows(truth, "5min")[: len(rows)], symbol
