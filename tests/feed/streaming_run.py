"""A live Cerebro run for the streaming tests: feeds on the simulator, every bar and message
recorded, an action on chosen live bars, and the simulator's request counts at each of them.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import backtrader as bt

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.support.instants import NY, UTC
from tests.support.truth import Row, truth_rows

SNAPSHOT = "/iserver/marketdata/snapshot"
#: Real seconds a run may take before it is stopped (the test then fails on its asserts).
MAX_SECONDS = 60.0


@dataclass
class Run:
    """What a run saw: rows and statuses per feed, store messages, and the simulator's
    snapshot-request count when each message arrived."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    statuses: dict[str, list[str]] = field(default_factory=dict)
    messages: list[tuple[str, int]] = field(default_factory=list)
    #: ``IBKRCPStore.market_path`` when the strategy stopped.
    path: str | None = None

    def said(self, text: str) -> bool:
        return any(text in message for message, _ in self.messages)

    def snapshots_when(self, text: str) -> int:
        """Snapshot requests counted when the last message containing ``text`` arrived."""
        return [count for message, count in self.messages if text in message][-1]


class StreamRecorder(bt.Strategy):  # type: ignore[misc]
    params = (
        ("run", None),
        ("sim", None),
        ("live_bars", 8),
        ("actions", None),
        ("count", None),
        ("until", None),
    )

    def __init__(self) -> None:
        self.result: Run = self.p.run
        self.live: dict[str, int] = {d._name: 0 for d in self.datas}
        self.done: set[int] = set()
        self.ended = False

    def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        snapshots = self.p.sim.stats.requests.get(SNAPSHOT, 0)
        self.result.messages.append((str(msg), snapshots))
        if self.ended:
            self.env.runstop()  # the message that says why the feeds ended is in

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        self.result.statuses.setdefault(data._name, []).append(data._getstatusname(status))
        last = [names[-1] for names in self.result.statuses.values()]
        if len(last) == len(self.datas) and all(name == "DISCONNECTED" for name in last):
            # Every feed ended: stop once the store's message about it arrived (a feed's
            # message is queued before its status, and delivered on Cerebro's next cycle).
            self.ended = True
            if self.result.messages:
                self.env.runstop()

    def next(self) -> None:
        for data in self.datas:
            if not len(data):
                continue
            rows = self.result.rows.setdefault(data._name, [])
            stamp = bt.num2date(data.datetime[0]).replace(tzinfo=UTC)
            if rows and rows[-1][0] == stamp:
                continue
            rows.append(
                (stamp, data.open[0], data.high[0], data.low[0], data.close[0], data.volume[0])
            )
            if self.result.statuses.get(data._name, [""])[-1] == "LIVE":
                self.live[data._name] += 1
        counted = self.p.count or list(self.live)
        least = min(self.live[name] for name in counted)
        for at, action in (self.p.actions or {}).items():
            if least >= at and at not in self.done:
                self.done.add(at)
                action(self.p.sim)
        if least >= self.p.live_bars and (self.p.until is None or self.p.until(self)):
            self.env.runstop()

    def stop(self) -> None:
        self.result.path = self.data._store.market_path


def run_live(
    sim: GatewaySimulator,
    symbols: Sequence[str] = ("AAPL",),
    *,
    live_bars: int = 8,
    actions: dict[int, Callable[[GatewaySimulator], Any]] | None = None,
    count: Sequence[str] | None = None,
    until: Callable[[Any], bool] | None = None,
    **store: Any,
) -> Run:
    """Run ``symbols`` live (one-minute bars, a five-minute backfill) until every feed (of
    ``count``, default all) delivered ``live_bars`` live bars (and ``until(strategy)`` holds);
    ``actions[n](sim)`` runs once they all have ``n``."""
    result = Run()
    options: dict[str, Any] = {"gateway_url": sim.url, "poll_interval": 0.2}
    options.update(store)
    the_store = IBKRCPStore(**options)
    cerebro = bt.Cerebro(stdstats=False)
    start = (sim.now() - dt.timedelta(minutes=5)).astimezone(NY).replace(tzinfo=None)
    for symbol in symbols:
        data = the_store.getdata(
            dataname=symbol,
            timeframe=bt.TimeFrame.Minutes,
            compression=1,
            fromdate=start,
            qcheck=0.05,
        )
        cerebro.adddata(data, name=symbol)
    cerebro.addstrategy(
        StreamRecorder,
        run=result,
        sim=sim,
        live_bars=live_bars,
        actions=actions,
        count=count,
        until=until,
    )
    guard = threading.Timer(MAX_SECONDS, cerebro.runstop)
    guard.start()
    try:
        cerebro.run()
    finally:
        guard.cancel()
        guard.join()
    return result


def assert_truth(sim: GatewaySimulator, run: Run) -> None:
    """Every feed delivered exactly the simulator's bars: none lost, none repeated."""
    for symbol, rows in run.rows.items():
        first, last = rows[0][0], rows[-1][0]
        truth = sim.truth(symbol, "1min", first - dt.timedelta(minutes=1), last)
        assert rows == truth_rows(truth, "1min"), symbol
