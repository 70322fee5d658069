"""``cerebro.optstrategy(..., maxcpus=2)`` over a store-backed feed: the store is filled once,
in the main process, before any worker runs; then no worker, and no later sweep, asks the
gateway anything. Counted by the simulator (``sim.stats``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import backtrader as bt
import pytest

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.history.planner import minimum_requests
from backtrader_ibkr_cp.models import Timeframe
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.barstore.feed_runs import HISTORY, feed, ny
from tests.support.instants import WEEKEND

SPAN = (dt.datetime(2024, 2, 26), dt.datetime(2024, 3, 8, 16))
GRID = {"fast": [3, 5, 8, 13], "slow": [20, 30]}


class BarstoreSweepSma(bt.Strategy):  # type: ignore[misc]
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
        self.final = (self.p.fast, self.p.slow, round(self.broker.getvalue(), 6), len(self.data))


@pytest.fixture(autouse=True)
def fresh_stores() -> Iterator[None]:
    IBKRCPStore._reset()
    yield
    IBKRCPStore._reset()


@pytest.fixture
def sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(seed=11, speed=0, start=WEEKEND) as simulator:
        yield simulator


def sweep(url: str, folder: Any, *, maxcpus: int, runonce: bool) -> list[tuple[Any, ...]]:
    IBKRCPStore._reset()
    store = IBKRCPStore(gateway_url=url, bar_store=folder)
    cerebro = bt.Cerebro(stdstats=False, maxcpus=maxcpus, optreturn=False)
    cerebro.adddata(feed(store, *SPAN), name="AAPL")
    cerebro.optstrategy(BarstoreSweepSma, **GRID)
    return sorted(strategies[0].final for strategies in cerebro.run(runonce=runonce))


@pytest.mark.parametrize("runonce", [False, True])
def test_a_sweep_fills_the_store_once_then_asks_the_gateway_nothing(
    sim: GatewaySimulator, tmp_path: Path, runonce: bool
) -> None:
    one_fill = minimum_requests(Timeframe.MINUTE_5, ny(2024, 2, 26), ny(2024, 3, 8, 15, 55))
    results = sweep(sim.url, tmp_path, maxcpus=2, runonce=runonce)
    assert sim.stats.requests[HISTORY] == one_fill  # not once per worker or parameter set
    assert sim.stats.rate_limited == 0
    assert len(results) == 8 and len({value for *_, value, _ in results}) > 1
    assert {bars for *_, bars in results} == {10 * 78}

    sim.stats.reset()
    again = sweep(sim.url, tmp_path, maxcpus=2, runonce=runonce)
    assert sim.stats.requests == {}  # no worker logged in, looked up or fetched anything
    assert again == results
    assert sweep(sim.url, None, maxcpus=1, runonce=runonce) == results  # as without a store
