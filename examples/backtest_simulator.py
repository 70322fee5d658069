"""Backtest an SMA crossover on months of 5-minute AAPL bars from a Client Portal Gateway.

By default the script starts a GatewaySimulator (IBKR's gateway played on loopback) and
backtests against it; pass ``--gateway https://localhost:5000`` to use a real, logged-in
gateway instead.

    python examples/backtest_simulator.py
    python examples/backtest_simulator.py --gateway https://localhost:5000 --symbol MSFT
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import backtrader as bt

from backtrader_ibkr_cp import IBKRCPData
from backtrader_ibkr_cp.simulator import GatewaySimulator


class SmaCross(bt.Strategy):  # type: ignore[misc]
    """Long when the fast SMA crosses above the slow one; flat when it crosses below."""

    params = (("fast", 10), ("slow", 30), ("size", 10))

    def __init__(self) -> None:
        self.crossover = bt.ind.CrossOver(
            bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow)
        )
        self.trades = 0

    def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        print(f"store: {msg}")

    def notify_trade(self, trade: Any) -> None:
        if trade.isclosed:
            self.trades += 1

    def next(self) -> None:
        if not self.position and self.crossover > 0:
            self.buy(size=self.p.size)
        elif self.position and self.crossover < 0:
            self.close()


@contextlib.contextmanager
def gateway(url: str | None) -> Iterator[str]:
    """``url``, or a simulator's URL for the duration of the block."""
    if url:
        yield url
        return
    # A frozen clock on a Saturday: every bar of the past months is complete.
    start = dt.datetime(2024, 3, 16, 12, 0, tzinfo=dt.timezone.utc)
    with GatewaySimulator(seed=1, speed=0, start=start) as sim:
        yield sim.url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", help="gateway URL (default: start a simulator)")
    parser.add_argument("--symbol", default="AAPL")
    parser.add_argument("--fromdate", default="2024-01-02", help="YYYY-MM-DD (New York)")
    parser.add_argument("--todate", default="2024-03-16", help="YYYY-MM-DD (New York)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    with gateway(args.gateway) as url:
        cerebro = bt.Cerebro(stdstats=False)
        data = IBKRCPData(
            dataname=args.symbol,
            gateway_url=url,
            timeframe=bt.TimeFrame.Minutes,
            compression=5,
            historical=True,
            fromdate=dt.datetime.fromisoformat(args.fromdate),
            todate=dt.datetime.fromisoformat(args.todate),
        )
        cerebro.adddata(data)
        cerebro.addstrategy(SmaCross)
        cerebro.broker.setcash(100_000.0)
        (strategy,) = cerebro.run()
    print(f"bars: {len(data)}")
    print(f"trades: {strategy.trades}")
    print(f"final value: {cerebro.broker.getvalue():.2f}")
    print(f"elapsed: {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
