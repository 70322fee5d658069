"""Live runs through Cerebro on the simulator's fast clock: backfill, seam, live bars."""

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
SESSION_OPEN = dt.datetime(2024, 3, 5, 9, 30)  # New York, the feed's default tz
MINUTE = dt.timedelta(minutes=1)
SYMBOLS = ("AAPL", "IBM", "MSFT", "AMZN", "GOOGL", "META", "TSLA", "NVDA", "SPY", "QQQ")


def live_cerebro(
    sim: GatewaySimulator,
    recorder: type,
    live_bars: int,
    symbols: tuple[str, ...] = ("AAPL",),
    compression: int = 1,
    streaming: str = "auto",
    **data_kwargs: Any,
) -> bt.Cerebro:
    store = IBKRCPStore(gateway_url=sim.url, poll_interval=0.2, streaming=streaming)
    cerebro = bt.Cerebro(stdstats=False)
    for symbol in symbols:
        data = store.getdata(
            dataname=symbol,
            timeframe=bt.TimeFrame.Minutes,
            compression=compression,
            fromdate=SESSION_OPEN,
            qcheck=0.1,
            **data_kwargs,
        )
        cerebro.adddata(data, name=symbol)
    cerebro.addstrategy(recorder, live_bars=live_bars)
    return cerebro


def assert_contiguous_truth(
    sim: GatewaySimulator, symbol: str, rows: list[Any], to_rows: Any
) -> None:
    """The rows are the truth from the session open, each stamped at its bar's end."""
    first, last = rows[0][0], rows[-1][0]
    truth = sim.truth(symbol, "1min", start=first - MINUTE, end=last)
    assert first == SESSION_OPEN.replace(tzinfo=NY).astimezone(UTC) + MINUTE
    assert rows == to_rows(truth, "1min")  # equal, so none missing and none repeated


def test_backfill_then_live_equals_truth_across_the_seam(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
) -> None:
    strategy = run_cerebro(live_cerebro(live_sim, recorder, live_bars=5))
    assert [s for _, s in strategy.statuses] == ["CONNECTED", "DELAYED", "LIVE"]
    rows = strategy.rows["AAPL"]
    live = strategy.live_rows["AAPL"]
    assert len(live) >= 5 and len(rows) >= 30 + 5  # 30 backfilled minutes, then live
    assert_contiguous_truth(live_sim, "AAPL", rows, to_rows)


def test_confirm_false_delivers_bars_built_from_snapshots(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
) -> None:
    strategy = run_cerebro(live_cerebro(live_sim, recorder, live_bars=4, confirm=False))
    live = strategy.live_rows["AAPL"]
    truth = {
        t.timestamp: t
        for t in live_sim.truth("AAPL", "1min", start=SESSION_OPEN.replace(tzinfo=NY))
    }
    rows = strategy.rows["AAPL"]
    assert [r[0] - MINUTE for r in rows] == sorted(truth)[: len(rows)]  # every minute, once
    built = 0
    for when, o, h, low, c, _ in live:
        bar = truth[when - MINUTE]
        assert bar.low <= low <= h <= bar.high and bar.low <= o <= bar.high
        built += (o, h, low, c) != (bar.open, bar.high, bar.low, bar.close)
    assert built  # at this clock speed snapshots sample the path: some bars differ


@pytest.fixture
def near_a_five_minute_close() -> Iterator[GatewaySimulator]:
    """Tuesday 10:03:40 New York at 120x: the 10:00 bar closes in 0.7 s."""
    start = dt.datetime(2024, 3, 5, 10, 3, 40, tzinfo=NY)
    with GatewaySimulator(seed=5, speed=120, start=start, penalty_seconds=5) as sim:
        yield sim


@pytest.mark.parametrize("streaming", ["poll", "auto"])
def test_ten_feeds_build_bars_from_one_snapshot_request_per_poll_or_one_socket(
    no_thread_leak: None,
    near_a_five_minute_close: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
    streaming: str,
) -> None:
    live_sim = near_a_five_minute_close
    # 5-minute bars, built from snapshots (confirm=False): at 120x, confirming ten feeds'
    # bars would take more history requests than IBKR's budget leaves beside the polls (in
    # real time that is ten requests per bar, nothing).
    cerebro = live_cerebro(
        live_sim,
        recorder,
        live_bars=2,
        symbols=SYMBOLS,
        compression=5,
        streaming=streaming,
        confirm=False,
    )
    strategy = run_cerebro(cerebro)
    conids = sorted(live_sim.conid(s) for s in SYMBOLS)
    requests = live_sim.stats.snapshot_conids
    if streaming == "poll":
        full = [r for r in requests if sorted(r) == conids]
        assert len(full) >= 5
        first_full = requests.index(full[0])
        assert all(sorted(r) == conids for r in requests[first_full:])  # one request, all 10
    else:  # every update came over one socket
        assert requests == [] and live_sim.stats.ws_connections == 1
    assert live_sim.stats.rate_limited == 0
    for symbol in SYMBOLS:
        rows = strategy.rows[symbol]
        live = strategy.live_rows[symbol]
        assert len(live) >= 2
        truth = live_sim.truth(symbol, "5min", start=rows[0][0] - 5 * MINUTE, end=rows[-1][0])
        expected = to_rows(truth, "5min")
        assert [r[0] for r in rows] == [t[0] for t in expected]  # none lost or repeated
        backfilled = rows[: len(rows) - len(live)]
        assert backfilled == expected[: len(backfilled)]


def test_no_backfill_starts_with_the_first_complete_live_bar(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
) -> None:
    strategy = run_cerebro(live_cerebro(live_sim, recorder, live_bars=3, backfill_start=False))
    assert [s for _, s in strategy.statuses] == ["CONNECTED", "LIVE"]
    rows = strategy.rows["AAPL"]
    assert rows[0][0] >= dt.datetime(2024, 3, 5, 15, 1, tzinfo=UTC)  # nothing before start
    truth = live_sim.truth("AAPL", "1min", start=rows[0][0] - MINUTE, end=rows[-1][0])
    assert rows == to_rows(truth, "1min")


def test_backfill_from_another_feed_then_gateway_backfill_then_live(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
) -> None:
    import pandas as pd

    first = live_sim.truth(
        "AAPL", "1min", start=SESSION_OPEN.replace(tzinfo=NY), end=dt.datetime(2024, 3, 5, 14, 45)
    )
    # Bars saved from this feed earlier: stamped at their end, as the feed stamps them.
    frame = pd.DataFrame(
        [(b.open, b.high, b.low, b.close, b.volume) for b in first],
        columns=["open", "high", "low", "close", "volume"],
        index=pd.DatetimeIndex([(b.timestamp + MINUTE).replace(tzinfo=None) for b in first]),
    )
    csv_like = bt.feeds.PandasData(
        dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=1, openinterest=None
    )
    store = IBKRCPStore(gateway_url=live_sim.url, poll_interval=0.2)
    data = store.getdata(
        dataname="AAPL",
        timeframe=bt.TimeFrame.Minutes,
        compression=1,
        backfill_from=csv_like,
        qcheck=0.1,
    )
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data, name="AAPL")
    cerebro.addstrategy(recorder, live_bars=3)
    strategy = run_cerebro(cerebro)
    rows = strategy.rows["AAPL"]
    assert len(first) == 15 and rows[:15] == to_rows(first, "1min")  # from the other feed
    assert len(rows) >= 15 + 15 + 3  # then the gateway's bars from 09:45, then live
    assert_contiguous_truth(live_sim, "AAPL", rows, to_rows)
    history = live_sim.stats.history_requests
    assert history[0]["bar"] == "1min" and history[0]["period"] in ("1h", "1d")


def test_daily_and_weekly_bars_go_live_at_the_friday_close(
    no_thread_leak: None,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
) -> None:
    friday_close_soon = dt.datetime(2024, 3, 8, 15, 58, 30, tzinfo=NY)  # 1.5 s before the close
    with GatewaySimulator(seed=4, speed=60, start=friday_close_soon, penalty_seconds=5) as sim:
        store = IBKRCPStore(gateway_url=sim.url, poll_interval=0.2)
        cerebro = bt.Cerebro(stdstats=False)
        for name, timeframe, fromdate in (
            ("daily", bt.TimeFrame.Days, dt.datetime(2024, 2, 26)),
            ("weekly", bt.TimeFrame.Weeks, dt.datetime(2024, 1, 1)),
        ):
            data = store.getdata(
                dataname="AAPL", timeframe=timeframe, fromdate=fromdate, qcheck=0.1
            )
            cerebro.adddata(data, name=name)
        cerebro.addstrategy(recorder, live_bars=1)
        strategy = run_cerebro(cerebro)
        days = sim.truth("AAPL", "1d", start=dt.datetime(2024, 2, 26, tzinfo=NY))
        weeks = sim.truth("AAPL", "1w", start=dt.datetime(2024, 1, 1, tzinfo=NY))
    assert days[-1].timestamp.astimezone(NY).date() == dt.date(2024, 3, 8)
    assert len(weeks) == 10
    for name, truth in (("daily", days), ("weekly", weeks)):
        rows = strategy.rows[name]
        bar = "1d" if name == "daily" else "1w"
        assert rows == to_rows(truth, bar)
        assert strategy.live_rows[name][-1] == to_rows(truth, bar)[-1]  # this week, live
        assert rows[-1][0].astimezone(NY).date() == dt.date(2024, 3, 8)


def test_delayed_market_data_stays_delayed(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
) -> None:
    class TwoBars(recorder):  # type: ignore[misc,valid-type]
        def next(self) -> None:
            super().next()
            if len(self.rows["AAPL"]) >= 2:
                self.env.runstop()

    live_sim.set_availability(live_sim.conid("AAPL"), "DpB")  # delayed data only
    strategy = run_cerebro(live_cerebro(live_sim, TwoBars, live_bars=None, backfill_start=False))
    assert [s for _, s in strategy.statuses] == ["CONNECTED", "DELAYED"]  # never LIVE
    rows = strategy.rows["AAPL"]
    truth = live_sim.truth("AAPL", "1min", start=rows[0][0] - MINUTE, end=rows[-1][0])
    assert rows == to_rows(truth, "1min")


def test_no_market_data_permission_is_notsubscribed(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
) -> None:
    live_sim.set_availability(live_sim.conid("AAPL"), "N")
    strategy = run_cerebro(live_cerebro(live_sim, recorder, live_bars=1, backfill_start=False))
    assert [s for _, s in strategy.statuses] == ["CONNECTED", "NOTSUBSCRIBED"]
    assert any("Market Data Subscriptions" in m for m in strategy.messages)
