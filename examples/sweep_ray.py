"""A parameter sweep as Ray tasks, every task running Cerebro over one shared bar store.

    pip install -e .[ray]
    python examples/sweep_ray.py                                   # a simulator, local Ray
    python examples/sweep_ray.py --gateway https://localhost:5000 --store /shared/bars
    python examples/sweep_ray.py --address auto --store s3://bucket/bars    # a Ray cluster

One task fills the store first: it is the only one that talks to the gateway, so IBKR's pacing
(about 10 requests/s, 5 history requests at a time) is spent once. Then every parameter set
of the grid runs as its own Ray task: a Cerebro with a store-backed feed, which reads its span
from the store and sends nothing to the gateway (not even a symbol look-up).

On a cluster: ``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on each
worker, the same Python environment everywhere (this package installed with ``[ray]``), and
the store where every node can read it: a shared folder (NFS) or an object store URI that
``pyarrow.fs`` understands (``s3://bucket/bars``, ``gs://...``). Run this script on the head
node with ``--address auto``. Only the filling task needs to reach the gateway; with an object
store, fill from one writer at a time (object stores have no locks).

Without ``--gateway`` a GatewaySimulator (IBKR's gateway played on loopback) stands in for the
gateway, so the script runs anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backtrader as bt

from backtrader_ibkr_cp import IBKRCPStore

#: What Ray ships to every worker: this folder, so tasks import this module by name
#: (backtrader's strategy classes cannot travel by value, and a ``__main__`` is not importable).
RUNTIME_ENV = {"working_dir": str(Path(__file__).resolve().parent)}
#: The parameter grid of the example: 4 x 2 = 8 tasks.
GRID = {"fast": [5, 8, 10, 13], "slow": [30, 50]}


@dataclass(frozen=True)
class Series:
    """What every task backtests: one symbol's 5-minute bars, ``start``/``end`` naive New
    York times (as a feed's ``fromdate``/``todate``)."""

    symbol: str = "AAPL"
    start: dt.datetime = dt.datetime(2024, 1, 2)
    end: dt.datetime = dt.datetime(2024, 3, 15, 16)


class SweepSmaCross(bt.Strategy):  # type: ignore[misc]
    """Long 10 shares when SMA(fast) crosses above SMA(slow); flat on the cross below."""

    params = (("fast", 10), ("slow", 30))

    def __init__(self) -> None:
        self.crossover = bt.ind.CrossOver(
            bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow)
        )
        self.trades = 0

    def notify_trade(self, trade: Any) -> None:
        if trade.isclosed:
            self.trades += 1

    def next(self) -> None:
        if not self.position and self.crossover > 0:
            self.buy(size=10)
        elif self.position and self.crossover < 0:
            self.close()

    def stop(self) -> None:
        # Read here: optstrategy runs every set on one broker, which ends at the last run.
        self.final = (self.p.fast, self.p.slow, round(self.broker.getvalue(), 6), self.trades)

    def result(self) -> tuple[int, int, float, int]:
        """(fast, slow, final portfolio value, closed trades)."""
        final: tuple[int, int, float, int] = self.final
        return final


def _cerebro(store_path: str, gateway_url: str, series: Series) -> tuple[bt.Cerebro, Any]:
    IBKRCPStore._reset()  # a fresh store object in this process (tasks may share a worker)
    store = IBKRCPStore(gateway_url=gateway_url, bar_store=store_path)
    cerebro = bt.Cerebro(stdstats=False, optreturn=False)
    cerebro.broker.setcash(100_000.0)
    data = store.getdata(
        dataname=series.symbol,
        timeframe=bt.TimeFrame.Minutes,
        compression=5,
        historical=True,
        fromdate=series.start,
        todate=series.end,
    )
    cerebro.adddata(data, name=series.symbol)
    return cerebro, store


def fill(store_path: str, gateway_url: str, series: Series) -> int:
    """Make the store hold the series (fetching only what it lacks); returns the bars held.
    The one task that talks to the gateway."""
    cerebro, store = _cerebro(store_path, gateway_url, series)
    cerebro.addstrategy(bt.Strategy)
    try:
        cerebro.run(runonce=True)
    finally:
        store.stop()
    return len(cerebro.datas[0])


def backtest(
    store_path: str, gateway_url: str, series: Series, fast: int, slow: int
) -> tuple[int, int, float, int]:
    """One parameter set over the stored series (no gateway once the store covers it)."""
    cerebro, store = _cerebro(store_path, gateway_url, series)
    cerebro.addstrategy(SweepSmaCross, fast=fast, slow=slow)
    try:
        (strategy,) = cerebro.run()
    finally:
        store.stop()
    result: tuple[int, int, float, int] = strategy.result()
    return result


def grid_points(grid: dict[str, list[int]] | None = None) -> list[dict[str, int]]:
    chosen = grid or GRID
    names = list(chosen)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*chosen.values())]


def sweep_on_ray(
    store_path: str,
    gateway_url: str,
    series: Series = Series(),
    grid: dict[str, list[int]] | None = None,
) -> list[tuple[int, int, float, int]]:
    """Fill once (one task), then one task per parameter set; results sorted. Needs
    ``ray.init(runtime_env=RUNTIME_ENV)`` first."""
    import ray

    fill_task = ray.remote(num_cpus=1)(fill)
    backtest_task = ray.remote(num_cpus=1)(backtest)
    ray.get(fill_task.remote(store_path, gateway_url, series))
    futures = [
        backtest_task.remote(store_path, gateway_url, series, point["fast"], point["slow"])
        for point in grid_points(grid)
    ]
    return sorted(ray.get(futures))


def sweep_with_optstrategy(
    store_path: str,
    gateway_url: str,
    series: Series = Series(),
    grid: dict[str, list[int]] | None = None,
    maxcpus: int = 1,
) -> list[tuple[int, int, float, int]]:
    """The same grid as one ``cerebro.optstrategy`` run (the reference for the Ray sweep)."""
    cerebro, store = _cerebro(store_path, gateway_url, series)
    cerebro.optstrategy(SweepSmaCross, **(grid or GRID))
    try:
        runs = cerebro.run(maxcpus=maxcpus)
    finally:
        store.stop()
    return sorted(strategies[0].result() for strategies in runs)


@contextlib.contextmanager
def gateway(url: str | None) -> Iterator[str]:
    """``url``, or a simulator's URL (its clock frozen on a Saturday) for the block."""
    if url:
        yield url
        return
    from backtrader_ibkr_cp.simulator import GatewaySimulator

    start = dt.datetime(2024, 3, 16, 12, 0, tzinfo=dt.timezone.utc)
    with GatewaySimulator(seed=1, speed=0, start=start) as sim:
        yield sim.url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gateway", help="gateway URL (default: a local GatewaySimulator)")
    parser.add_argument("--store", help="bar store folder or URI (default: a temporary folder)")
    parser.add_argument("--address", help="Ray cluster address ('auto'); default: local Ray")
    parser.add_argument("--num-cpus", type=int, default=None, help="local Ray's CPUs")
    parser.add_argument("--symbol", default="AAPL")
    args = parser.parse_args(argv)

    import ray

    with contextlib.ExitStack() as stack:
        store_path = args.store or stack.enter_context(tempfile.TemporaryDirectory())
        url = stack.enter_context(gateway(args.gateway))
        ray.init(
            address=args.address,
            num_cpus=args.num_cpus,
            include_dashboard=False,
            runtime_env=RUNTIME_ENV,
        )
        stack.callback(ray.shutdown)
        results = sweep_on_ray(store_path, url, Series(symbol=args.symbol))
    print(f"{'fast':>5} {'slow':>5} {'final value':>14} {'trades':>7}")
    for fast, slow, value, trades in results:
        print(f"{fast:>5} {slow:>5} {value:>14.2f} {trades:>7}")
    return 0


if __name__ == "__main__":
    import sweep_ray  # this file again, as a module the workers can import by name

    raise SystemExit(sweep_ray.main())
