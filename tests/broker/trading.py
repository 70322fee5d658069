"""A Cerebro harness for broker tests: a live feed on the simulator, a strategy that runs a
script of order actions, and a recorder of every notification.

The simulator's clock is fast (a minute bar every 0.5 s); its 1-request-per-5-s limits on the
order, trade and portfolio-account lists are relaxed, and the store's pacing with them (the
tests are about the broker, the pacing tests are elsewhere), so the broker polls every 0.2 s.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import backtrader as bt

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.client.pacing import PacingLimits
from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.simulator.pacing import SimLimits
from tests.support.instants import NY, TUESDAY_MORNING

#: The order lists without IBKR's 1-per-5-s limit (both sides).
RELAXED_SIM = SimLimits(
    live_orders_per_5s=10_000, trades_per_5s=10_000, portfolio_accounts_per_5s=10_000
)
RELAXED_CLIENT = PacingLimits(orders_seconds_per_request=0.001)
SPEED = 120.0
ACCOUNT = "DU0000000"
#: Real seconds a run may take before it is stopped (the test then fails on its asserts).
MAX_SECONDS = 40.0


@contextmanager
def trading_sim(**kwargs: Any) -> Iterator[GatewaySimulator]:
    options: dict[str, Any] = {
        "seed": 3,
        "speed": SPEED,
        "start": TUESDAY_MORNING,
        "penalty_seconds": 5,
        "limits": RELAXED_SIM,
        "account": ACCOUNT,
    }
    options.update(kwargs)
    with GatewaySimulator(**options) as sim:
        yield sim


def store_for(sim: GatewaySimulator, **kwargs: Any) -> IBKRCPStore:
    options: dict[str, Any] = {
        "gateway_url": sim.url,
        "poll_interval": 0.2,
        "pacing": RELAXED_CLIENT,
    }
    options.update(kwargs)
    return IBKRCPStore(**options)


@dataclass
class Seen:
    """What the strategy saw: per order ref, the statuses notified, in order."""

    statuses: dict[int, list[str]] = field(default_factory=dict)
    executed: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    trades: list[tuple[str, float]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    orders: dict[str, Any] = field(default_factory=dict)
    cash: float | None = None
    value: float | None = None
    position: float | None = None


#: A script step: ``(live bar number, action(strategy))``; the action may place orders and
#: keep them in ``strategy.seen.orders`` by name.
Step = tuple[int, Callable[[Any], None]]


class Scripted(bt.Strategy):  # type: ignore[misc]
    """Runs the script's steps on live bars and stops once every order it made is done."""

    params = (("script", ()), ("seen", None), ("after", 0), ("react", None), ("each", None))

    def __init__(self) -> None:
        self.seen: Seen = self.p.seen
        self.live = 0
        self.is_live = False
        self.done_at: int | None = None

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        self.is_live = data._getstatusname(status) == "LIVE"

    def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.seen.messages.append(str(msg))

    def notify_order(self, order: Any) -> None:
        self.seen.statuses.setdefault(order.ref, []).append(order.getstatusname())
        if order.status == order.Completed or order.status == order.Partial:
            ex = order.executed
            self.seen.executed[order.ref] = (ex.size, ex.price, ex.comm)
        if self.p.react is not None:
            self.p.react(self, order)
        self._maybe_stop()

    def notify_trade(self, trade: Any) -> None:
        self.seen.trades.append(("closed" if trade.isclosed else "open", trade.pnl))

    def next(self) -> None:
        if not self.is_live:
            return
        self.live += 1
        for at, action in self.p.script:
            if at == self.live:
                action(self)
        if self.p.each is not None:
            self.p.each(self)
        self._maybe_stop()

    def _maybe_stop(self) -> None:
        """Stop ``after`` live bars once every step has run and every order made is done
        (at once with 0). A step still ahead keeps the run going however fast the orders
        before it were done."""
        made = list(self.seen.orders.values())
        ahead = any(at > self.live for at, _ in self.p.script)
        if ahead or not made or any(o.alive() for o in made):
            self.done_at = None
            return
        if self.done_at is None:
            self.done_at = self.live
        if self.live >= self.done_at + self.p.after:
            self.env.runstop()

    def stop(self) -> None:
        self.seen.cash = self.broker.getcash()
        self.seen.value = self.broker.getvalue()
        self.seen.position = self.getposition(self.data).size


def run_script(
    sim: GatewaySimulator,
    script: list[Step],
    *,
    after: int = 1,
    broker: dict[str, Any] | None = None,
    store: dict[str, Any] | None = None,
    symbol: str = "AAPL",
    react: Callable[[Any, Any], None] | None = None,
    each: Callable[[Any], None] | None = None,
) -> Seen:
    """Run ``script`` on live one-minute bars of ``symbol``; returns what was seen.
    ``react(strategy, order)`` runs on every order notification, ``each(strategy)`` on every
    live bar after the script's steps."""
    seen = Seen()
    the_store = store_for(sim, **(store or {}))
    cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
    start = (sim.now() - dt.timedelta(minutes=5)).astimezone(NY).replace(tzinfo=None)
    data = the_store.getdata(
        dataname=symbol,
        timeframe=bt.TimeFrame.Minutes,
        compression=1,
        fromdate=start,  # a short backfill: live bars come soon
        qcheck=0.05,
    )
    cerebro.adddata(data, name=symbol)
    options: dict[str, Any] = {"orders_every": 0.2, "account_every": 0.5}
    options.update(broker or {})
    cerebro.broker = the_store.getbroker(**options)
    cerebro.addstrategy(
        Scripted, script=tuple(script), seen=seen, after=after, react=react, each=each
    )
    guard = threading.Timer(MAX_SECONDS, cerebro.runstop)
    guard.start()
    try:
        cerebro.run()
    finally:
        guard.cancel()
        guard.join()
    return seen
