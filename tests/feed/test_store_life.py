"""A store's life belongs to the runs that use it; stopping never hangs; optimisation works.

Bugs (each failed before the fix):
- two backtests sharing a store in two threads: the quicker one's ``store.stop()`` closed the
  client under the slower one (0 bars);
- a store message not delivered in one run reached the *next* run's strategy;
- ``stop()`` waited behind ``connect()``, which held the store lock across HTTP calls and its
  reconnection sleeps, forever with ``reconnect=-1``;
- ``cerebro.optstrategy`` with more than one CPU crashed (``cannot pickle '_thread.RLock'``),
  and with one CPU every parameter set downloaded the span again.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import backtrader as bt
import pytest

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.timing import FakeClock
from tests.support.instants import NY, SESSION_OPEN
from tests.support.recorder import Recorder, run
from tests.support.truth import truth_rows

HISTORY = "/iserver/marketdata/history"


def historical(store: IBKRCPStore, symbol: str = "AAPL", days: int = 3) -> Any:
    return store.getdata(
        dataname=symbol,
        timeframe=bt.TimeFrame.Minutes,
        compression=5,
        fromdate=dt.datetime(2024, 3, 4),
        todate=dt.datetime(2024, 3, 4) + dt.timedelta(days=days),
        historical=True,
    )


def test_a_quick_backtest_does_not_close_the_store_under_a_live_run(
    no_thread_leak: None, live_sim: GatewaySimulator
) -> None:
    store = IBKRCPStore(gateway_url=live_sim.url, poll_interval=0.2)
    quick_done = threading.Event()
    results: dict[str, Any] = {}

    class WaitForTheQuickOne(Recorder):
        def next(self) -> None:
            super().next()
            if len(self.live_rows["AAPL"]) == 1:
                quick_done.wait(30)  # the quick run ends (and stops the store) right here

    def live() -> None:
        cerebro = bt.Cerebro(stdstats=False)
        data = store.getdata(
            dataname="AAPL",
            timeframe=bt.TimeFrame.Minutes,
            compression=1,
            fromdate=SESSION_OPEN,
            qcheck=0.1,
        )
        cerebro.adddata(data, name="AAPL")
        cerebro.addstrategy(WaitForTheQuickOne, live_bars=4)
        results["live"] = run(cerebro)

    thread = threading.Thread(target=live)
    thread.start()
    try:
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(historical(store, "MSFT", days=1), name="MSFT")
        cerebro.addstrategy(Recorder)
        results["quick"] = run(cerebro)
    finally:
        quick_done.set()
        thread.join(60)
    assert len(results["quick"].rows["MSFT"]) == 78
    live_rows = results["live"].live_rows["AAPL"]
    assert len(live_rows) >= 4  # the live run went on after the quick one stopped
    rows = results["live"].rows["AAPL"]
    truth = live_sim.truth("AAPL", "1min", start=SESSION_OPEN.replace(tzinfo=NY))
    assert rows == truth_rows(truth, "1min")[: len(rows)]


def test_messages_of_one_run_never_reach_the_next(
    no_thread_leak: None, frozen_sim: GatewaySimulator
) -> None:
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    frozen_sim.inject("invalid_bar", 1, path=HISTORY)  # a store message in run 1
    first = bt.Cerebro(stdstats=False)  # runonce: backtrader never delivers it
    first.adddata(historical(store), name="AAPL")
    first.addstrategy(Recorder)
    assert run(first).rows["AAPL"]
    second = bt.Cerebro(stdstats=False)
    second.adddata(historical(store), name="AAPL")
    second.addstrategy(Recorder)
    strategy = run(second, runonce=False)
    assert strategy.messages == []


def test_stop_ends_a_connect_that_retries_forever(no_thread_leak: None) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there
    clock = FakeClock()  # never advanced: without cancellation the retry waits forever
    store = IBKRCPStore(gateway_url=f"https://127.0.0.1:{port}", reconnect=-1, timeout=1.0)
    store.clock = clock
    store.start()  # a run holds the store
    failed: list[BaseException] = []

    def connect() -> None:
        try:
            store.connect()
        except BaseException as exc:  # the cancellation
            failed.append(exc)

    thread = threading.Thread(target=connect)
    thread.start()
    clock.wait_for_sleepers(1)  # connect is waiting between two attempts
    store.stop()  # the run ends: the last holder closes the store
    thread.join(10)
    assert not thread.is_alive()
    assert failed and "cancelled" in str(failed[0])


class StoreLifeSmaCross(bt.Strategy):  # type: ignore[misc]
    params = (("fast", 5), ("slow", 20))

    def __init__(self) -> None:
        self.cross = bt.ind.CrossOver(
            bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow)
        )

    def next(self) -> None:
        if not self.position and self.cross > 0:
            self.buy(size=10)
        elif self.position and self.cross < 0:
            self.close()

    def stop(self) -> None:
        self.final = (self.p.fast, self.p.slow, round(self.broker.getvalue(), 6))


def optimise(store: IBKRCPStore, maxcpus: int) -> list[tuple[int, int, float]]:
    cerebro = bt.Cerebro(stdstats=False, maxcpus=maxcpus, optreturn=False)
    cerebro.adddata(historical(store, days=10), name="AAPL")
    cerebro.optstrategy(StoreLifeSmaCross, fast=[3, 5, 8], slow=[20, 30])
    return sorted(strategies[0].final for strategies in cerebro.run())


@pytest.mark.parametrize("maxcpus", [1, 2])
def test_optstrategy_runs_every_set_from_one_download(
    no_thread_leak: None, frozen_sim: GatewaySimulator, maxcpus: int
) -> None:
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(historical(store, days=10), name="AAPL")
    cerebro.addstrategy(Recorder)
    run(cerebro)
    one_run = frozen_sim.stats.requests[HISTORY]
    frozen_sim.stats.reset()
    IBKRCPStore._reset()
    results = optimise(IBKRCPStore(gateway_url=frozen_sim.url), maxcpus)
    assert len(results) == 6
    assert frozen_sim.stats.requests[HISTORY] == one_run  # not once per parameter set
    assert len({value for *_, value in results}) > 1  # the sets really differ
