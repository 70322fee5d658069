"""Paper-trade live bars: backfill, then live 1-minute bars from a Client Portal Gateway,
orders sent to the paper account through IBKRCPBroker.

By default a GatewaySimulator runs at 120x speed from a Tuesday 10:00 New York, so a minute
bar completes every half second, and plays IBKR's paper account (DU0000000, 1,000,000 USD):
the orders are filled by its order engine as IBKR would. The run stops by itself after
``--bars`` live bars (and once no order is working). Pass ``--gateway https://localhost:5000``
for a real gateway logged in to your paper account (then bars arrive in real time); a live
account is refused unless the store is given ``allow_live=True``. ``--local-fills`` keeps
backtrader's own simulated broker instead.

    python examples/live_paper_simulator.py
    python examples/live_paper_simulator.py --gateway https://localhost:5000 --bars 3
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import backtrader as bt

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator


class PaperTrader(bt.Strategy):  # type: ignore[misc]
    """Trades a fast/slow SMA cross, only on LIVE bars (never on backfilled ones)."""

    params = (("bars", 10), ("fast", 3), ("slow", 8))

    def __init__(self) -> None:
        self.crossover = bt.ind.CrossOver(
            bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow)
        )
        self.live = False
        self.live_bars = 0

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        name = data._getstatusname(status)
        print(f"data: {name}")
        self.live = name == "LIVE"

    def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        print(f"store: {msg}")

    def notify_order(self, order: Any) -> None:
        if order.status == order.Completed:
            side = "BUY" if order.isbuy() else "SELL"
            print(f"  {side} {order.executed.size:+.0f} @ {order.executed.price:.2f}")

    def notify_trade(self, trade: Any) -> None:
        if trade.isclosed:
            print(f"  trade closed, pnl {trade.pnlcomm:.2f}")

    def next(self) -> None:
        if not self.live:
            return  # backfilled bar: indicators warm up, no orders
        self.live_bars += 1
        d = self.data
        print(
            f"{d.datetime.datetime(0):%Y-%m-%d %H:%M} o={d.open[0]:.2f} h={d.high[0]:.2f} "
            f"l={d.low[0]:.2f} c={d.close[0]:.2f} v={d.volume[0]:.0f}"
        )
        working = any(order.alive() for order in self.broker.get_orders_open())
        if self.live_bars >= self.p.bars:
            if not working:
                self.env.runstop()
            return
        if working:
            return  # the last order is still at the broker
        if not self.position and self.crossover > 0:
            self.buy(size=10)
        elif self.position and self.crossover < 0:
            self.close()

    def stop(self) -> None:
        print(f"cash {self.broker.getcash():,.2f}, position {self.position.size:+.0f}")


@contextlib.contextmanager
def gateway(url: str | None) -> Iterator[tuple[str, float]]:
    """``(url, poll interval)``: the given gateway, or a fast simulator."""
    if url:
        yield url, 1.0
        return
    start = dt.datetime(2024, 3, 5, 15, 0, 5, tzinfo=dt.timezone.utc)  # Tue 10:00:05 New York
    with GatewaySimulator(seed=2, speed=120, start=start) as sim:
        yield sim.url, 0.1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", help="gateway URL (default: start a simulator)")
    parser.add_argument("--symbol", default="AAPL")
    parser.add_argument("--bars", type=int, default=10, help="live bars before stopping")
    parser.add_argument(
        "--local-fills", action="store_true", help="backtrader's simulated broker, not IBKR's"
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    with gateway(args.gateway) as (url, poll):
        store = IBKRCPStore(gateway_url=url, poll_interval=poll)
        cerebro = bt.Cerebro(stdstats=False, quicknotify=True)  # live: notify at once
        data = store.getdata(
            dataname=args.symbol,
            timeframe=bt.TimeFrame.Minutes,
            compression=1,
            backfill_start=True,  # about 300 bars back by default
        )
        cerebro.adddata(data)
        if args.local_fills:
            cerebro.setbroker(store.getbroker(simulated=True))
            cerebro.broker.setcash(100_000.0)
        else:
            cerebro.setbroker(store.getbroker())  # IBKRCPBroker: the account's own cash
        cerebro.addstrategy(PaperTrader, bars=args.bars)
        cerebro.run()
    print(f"final value: {cerebro.broker.getvalue():.2f}")
    print(f"elapsed: {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
