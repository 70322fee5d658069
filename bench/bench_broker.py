"""Broker benchmark: order submit -> ``Accepted`` and fill -> ``Completed`` notifications.

A live Cerebro run on the simulator (its default latency: none added; IBKR's pacing limits,
so the broker polls the order and trade lists once every 5 s, IBKR's rule) sends market
orders of 10 shares through ``IBKRCPBroker``, one at a time: a new one on the first live bar
after the previous one completed, buys and sells in turn. For each order:

- **submit -> Accepted**: from the strategy's ``buy()``/``sell()`` call to ``notify_order``
  with ``Accepted`` (the place request, IBKR's answer, the worker handing it back to Cerebro).
- **fill -> Completed**: from the moment the simulator executed the order's last fill (its
  order listener, called on the simulator's thread as the execution happens) to
  ``notify_order`` with ``Completed``.

Both are measured twice in the same run, one after the other: with ``streaming="poll"``
(fills are seen by the worker's polls of the order and trade lists) and ``streaming="auto"``
(IBKR's ``sor``/``str`` pushes over the WebSocket, the polls as the safety net). Times are
``time.monotonic()`` on both sides (one process).

Run: ``.venv/bin/python bench/bench_broker.py [--orders 8] [--speed 30]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import backtrader as bt
from benchlib import INFO, TUESDAY_10AM, Row, print_table, quiet, verdict

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator

__all__ = ["BrokerConfig", "main", "run"]

NAME = "broker"
UTC = dt.timezone.utc


@dataclass(frozen=True)
class BrokerConfig:
    orders: int = 8
    speed: float = 30.0  # a one-minute bar every 2 real seconds
    seed: int = 3


QUICK = BrokerConfig(orders=4)


@dataclass
class Timings:
    """Per order ref: when it was sent, accepted and completed (monotonic seconds)."""

    sent: dict[int, float] = field(default_factory=dict)
    accepted: dict[int, float] = field(default_factory=dict)
    completed: dict[int, float] = field(default_factory=dict)
    filled: dict[str, float] = field(default_factory=dict)  # last execution, by cOID
    coids: dict[int, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_sim(self, message: dict[str, Any]) -> None:
        """The simulator's order listener: note when each order's executions happen."""
        if message.get("topic") != "str":
            return
        now = time.monotonic()
        for execution in message.get("args", []):
            coid = execution.get("order_ref")
            if coid:
                with self.lock:
                    self.filled[coid] = now

    def submit_to_accepted(self) -> list[float]:
        return [self.accepted[r] - self.sent[r] for r in self.sent if r in self.accepted]

    def fill_to_completed(self) -> list[float]:
        out = []
        with self.lock:
            for ref, done in self.completed.items():
                coid = self.coids.get(ref)
                if coid is not None and coid in self.filled:
                    out.append(done - self.filled[coid])
        return out


class Trader(bt.Strategy):  # type: ignore[misc]
    """One market order at a time, on live bars, until ``orders`` have completed."""

    params = (("orders", 8), ("timings", None))

    def __init__(self) -> None:
        self.t: Timings = self.p.timings
        self.live = False
        self.working: Any = None
        self.done = 0

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        self.live = data._getstatusname(status) == "LIVE"

    def notify_order(self, order: Any) -> None:
        now = time.monotonic()
        if order.status == order.Accepted:
            self.t.accepted.setdefault(order.ref, now)
        elif order.status == order.Completed:
            self.t.completed.setdefault(order.ref, now)
            self.done += 1
            self.working = None
            if self.done >= self.p.orders:
                self.env.runstop()
        elif not order.alive():
            self.working = None  # rejected or cancelled: not measured

    def next(self) -> None:
        if not self.live or self.working is not None:
            return
        sell = self.done % 2 == 1
        sent = time.monotonic()
        self.working = self.sell(size=10) if sell else self.buy(size=10)
        self.t.sent[self.working.ref] = sent
        coid = getattr(self.broker, "_prefix", "") + str(self.working.ref)
        self.t.coids[self.working.ref] = coid


def measure(config: BrokerConfig, streaming: str) -> Timings:
    timings = Timings()
    IBKRCPStore._reset()
    with GatewaySimulator(seed=config.seed, speed=config.speed, start=TUESDAY_10AM) as sim:
        sim.add_order_listener(timings.on_sim)
        store = IBKRCPStore(gateway_url=sim.url, streaming=streaming)
        cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
        start = (sim.now() - dt.timedelta(minutes=3)).replace(tzinfo=None)
        cerebro.adddata(
            store.getdata(
                dataname="AAPL",
                timeframe=bt.TimeFrame.Minutes,
                compression=1,
                fromdate=start,
                tz="UTC",
                qcheck=0.05,
            )
        )
        cerebro.broker = store.getbroker()
        cerebro.addstrategy(Trader, orders=config.orders, timings=timings)
        bound = 60.0 + config.orders * 15.0
        timer = threading.Timer(bound, cerebro.runstop)
        timer.daemon = True
        timer.start()
        try:
            cerebro.run()
        finally:
            timer.cancel()
            IBKRCPStore._reset()
    return timings


def _summary(values: Sequence[float]) -> str:
    if not values:
        return "none measured"
    median, worst = statistics.median(values), max(values)
    return f"{len(values)} orders: median {median:.3f} s, max {worst:.3f} s"


def run(config: BrokerConfig, log: Callable[[str], None] | None = None) -> list[Row]:
    say = log or (lambda message: None)
    measured: dict[str, Timings] = {}
    with quiet():
        for streaming in ("poll", "auto"):
            say(f"broker: {config.orders} market orders, streaming={streaming!r} ...")
            measured[streaming] = measure(config, streaming)
    rows = []
    for streaming, label in (("poll", "polled order/trade lists"), ("auto", "WebSocket pushes")):
        t = measured[streaming]
        accepted, completed = t.submit_to_accepted(), t.fill_to_completed()
        complete = len(accepted) == len(completed) == config.orders
        rows.append(
            Row(
                NAME,
                f"order submit -> Accepted ({label}, simulator latency 0)",
                _summary(accepted),
                "-",
                INFO if complete else "NO",
            )
        )
        target = (
            "<= 5.5 s (IBKR allows 1 order-list read / 5 s)" if streaming == "poll" else "< 0.5 s"
        )
        limit = 5.5 if streaming == "poll" else 0.5
        rows.append(
            Row(
                NAME,
                f"fill -> Completed ({label}, simulator latency 0)",
                _summary(completed),
                target,
                verdict(complete and bool(completed) and max(completed) <= limit),
            )
        )
    return rows


def parse_config(argv: Sequence[str] | None) -> BrokerConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="4 orders per side")
    parser.add_argument("--orders", type=int, help="orders per side (default 8)")
    parser.add_argument("--speed", type=float, help="simulated seconds per real second")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else BrokerConfig()
    overrides = {"orders": args.orders, "speed": args.speed}
    values = {**base.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
    return BrokerConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    return print_table(run, parse_config(argv))


if __name__ == "__main__":
    raise SystemExit(main())
