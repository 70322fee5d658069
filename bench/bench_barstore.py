"""Bar store benchmark: filling it, backtesting from it, sweeping over it; side by side.

One ``GatewaySimulator`` (the seed and frozen clock the shipped cassette was recorded with, so
all three sources below hold the very same bars) serves:

1. **fill**: ``ibkr-cp store fill``'s path (``fill_series``: ``GatewayClient.fetch_bars`` piece
   by piece, each written as it arrives) for AAPL 5-minute bars, 2024-01-02 to 2024-04-01,
   into an empty store: history requests per second (IBKR allows about 10/s), bars per second,
   429 answers.
2. **backtests**, the same SMA-cross strategy and ``cerebro.run()`` (preload, runonce) over the
   same bars from (a) ``IBKRCPStore(bar_store=...)`` (the store covers the span: no gateway),
   (b) ``bt.feeds.PandasData`` over a DataFrame built before the clock starts, (c)
   ``IBKRCPStore(cassette=...)`` replaying the shipped cassette. Rounds alternate a, b, c; the
   best of ``--runs`` is kept for each. All must end with the same value and trades, and their
   lines must hold identical bars.
3. **sweeps**: ``cerebro.optstrategy`` over 8 parameter sets with ``maxcpus=2`` and
   ``runonce=False`` (backtrader then loads the data in every task), (a) over the store, which
   covers the span, vs (b) without a store, where every task fetches the span from the gateway.
   Wall time and the history requests the simulator received; both must give the same results.

Run: ``.venv/bin/python bench/bench_barstore.py [--runs 5] [--quick | --smoke]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import backtrader as bt
import bench_replay
from bench_replay import Outcome, ReplaySmaCross, frame, run_pandas
from benchlib import Row, print_table, quiet, verdict

from backtrader_ibkr_cp import BarStore, GatewayClient, IBKRCPStore
from backtrader_ibkr_cp.cli.store_cmds import fill_series
from backtrader_ibkr_cp.models import Timeframe
from backtrader_ibkr_cp.simulator import GatewaySimulator

__all__ = ["BarStoreConfig", "main", "run"]

NAME = "barstore"
HISTORY = "/iserver/marketdata/history"
UTC = dt.timezone.utc
#: The simulator the shipped cassette was recorded from (cassettes/README.md).
SEED = 20240102
FROZEN = dt.datetime(2024, 4, 2, 22, 0, tzinfo=UTC)
GRID = {"fast": [5, 8, 10, 13], "slow": [30, 50]}


@dataclass(frozen=True)
class BarStoreConfig:
    """``runs`` rounds (best of); the backtest span (naive UTC, the cassette's) and the sweep
    span; ``latency`` seconds the simulator adds to every answer."""

    runs: int = 5
    fromdate: dt.datetime = dt.datetime(2024, 1, 2)
    todate: dt.datetime = dt.datetime(2024, 4, 1)
    sweep_from: dt.datetime = dt.datetime(2024, 3, 1)
    latency: float = 0.0
    cassette: Path = bench_replay.SHIPPED


class SweepCross(ReplaySmaCross):
    """The replay benchmark's strategy, keeping its result when it stops (optstrategy runs
    every set on one broker)."""

    def stop(self) -> None:
        self.final = (self.p.fast, self.p.slow, round(self.broker.getvalue(), 6), self.trades)


def _feed(store: IBKRCPStore, fromdate: dt.datetime, todate: dt.datetime) -> Any:
    return store.getdata(
        dataname="AAPL", timeframe=bt.TimeFrame.Minutes, compression=5, historical=True,
        fromdate=fromdate, todate=todate, tz="UTC",
    )  # fmt: skip


def fill_store(sim: GatewaySimulator, folder: str, config: BarStoreConfig) -> tuple[float, int]:
    """``ibkr-cp store fill``'s path into an empty store; returns (seconds, bars held)."""
    store = BarStore(folder)
    start = config.fromdate.replace(tzinfo=UTC)
    end = config.todate.replace(tzinfo=UTC)
    with GatewayClient(sim.url) as client:
        client.authenticate()
        client.resolve("AAPL")  # the look-up is not part of the fill's rate
        sim.stats.reset()
        started = time.perf_counter()
        fill_series(client, store, "AAPL", Timeframe.MINUTE_5, start, end, stream=io.StringIO())
        seconds = time.perf_counter() - started
    return seconds, len(store.read_columns("AAPL", "5min", start, end))


def run_store(url: str, folder: str, config: BarStoreConfig) -> Outcome:
    """(a): ``IBKRCPData`` reading the store (a fresh store object per run)."""
    IBKRCPStore._reset()
    try:
        store = IBKRCPStore(gateway_url=url, bar_store=folder)
        return bench_replay._run(_feed(store, config.fromdate, config.todate))
    finally:
        IBKRCPStore._reset()


def run_cassette(config: BarStoreConfig) -> Outcome:
    """(c): ``IBKRCPData`` replaying the shipped cassette."""
    replay = bench_replay.ReplayConfig(
        runs=1, cassette=config.cassette, fromdate=config.fromdate, todate=config.todate
    )
    return bench_replay.run_cassette(replay)


def sweep(url: str, folder: str | None, config: BarStoreConfig) -> tuple[float, list[Any]]:
    """``optstrategy`` over :data:`GRID` with 2 workers; returns (seconds, sorted results)."""
    IBKRCPStore._reset()
    try:
        store = IBKRCPStore(gateway_url=url, bar_store=folder)
        cerebro = bt.Cerebro(stdstats=False, maxcpus=2, optreturn=False)
        cerebro.broker.setcash(100_000.0)
        cerebro.adddata(_feed(store, config.sweep_from, config.todate))
        cerebro.optstrategy(SweepCross, **GRID)
        started = time.perf_counter()
        runs = cerebro.run(runonce=False)
        seconds = time.perf_counter() - started
    finally:
        IBKRCPStore._reset()
    return seconds, sorted(strategies[0].final for strategies in runs)


def run(config: BarStoreConfig, log: Callable[[str], None] | None = None) -> list[Row]:
    """Every measurement of the module docstring, in one run; returns the table rows."""
    say = log or (lambda message: None)
    with (
        quiet(),
        tempfile.TemporaryDirectory() as folder,
        GatewaySimulator(seed=SEED, speed=0, start=FROZEN) as sim,
    ):
        sim.latency = config.latency
        say("barstore: filling an empty store ...")
        fill_seconds, held = fill_store(sim, folder, config)
        fill_requests, fill_429 = sim.stats.requests[HISTORY], sim.stats.rate_limited

        say("barstore: backtest rounds (store, PandasData, cassette) ...")
        sim.stats.reset()
        first = run_store(sim.url, folder, config)
        store_gateway = sum(sim.stats.requests.values())
        df = frame(first.bars)
        stored, pandas, replayed = [first], [], []
        for index in range(config.runs):
            say(f"barstore: round {index + 1}/{config.runs} ...")
            if index:
                stored.append(run_store(sim.url, folder, config))
            pandas.append(run_pandas(df))
            replayed.append(run_cassette(config))

        say("barstore: sweeps (store, then no store) ...")
        sim.stats.reset()
        store_sweep_s, store_results = sweep(sim.url, folder, config)
        store_sweep_requests = sum(sim.stats.requests.values())
        sim.stats.reset()
        fetch_sweep_s, fetch_results = sweep(sim.url, None, config)
        fetch_sweep_requests = sim.stats.requests[HISTORY]
        sweep_429 = sim.stats.rate_limited

    best = {name: min(o.seconds for o in runs) for name, runs in
            (("store", stored), ("pandas", pandas), ("cassette", replayed))}  # fmt: skip
    store_ratio = best["store"] / best["pandas"]
    cassette_ratio = best["cassette"] / best["pandas"]
    everything = stored + pandas + replayed
    same = all(o.bars == first.bars and (o.value, o.trades) == (first.value, first.trades)
               for o in everything)  # fmt: skip
    span = f"{config.fromdate:%Y-%m-%d} to {config.todate:%Y-%m-%d}"
    setup = f"AAPL 5min {span}, {len(first.bars)} bars, SMA(10/30) cross, best of {config.runs}"
    sweep_span = f"{config.sweep_from:%Y-%m-%d} to {config.todate:%Y-%m-%d}"
    per_s = fill_requests / fill_seconds if fill_seconds else float("inf")
    sweep_same = store_results == fetch_results and len(store_results) == 8
    return [
        Row(
            NAME,
            f"fill an empty store ({span}, AAPL 5min, `ibkr-cp store fill` path, simulator "
            f"latency {config.latency:g} s)",
            f"{fill_requests} history requests in {fill_seconds:.2f} s = {per_s:.1f} req/s "
            f"(IBKR allows ~10/s); {held / fill_seconds:.0f} bars/s; {fill_429} x 429",
            "<= 10 req/s, 0 x 429",
            verdict(per_s <= 10.0 and fill_429 == 0 and held == len(first.bars)),
        ),
        Row(NAME, f"cerebro.run() fed by IBKRCPData from the bar store ({setup})",
            f"{best['store'] * 1000:.0f} ms; {store_gateway} gateway requests"),
        Row(NAME, "cerebro.run() fed by bt.feeds.PandasData, same bars",
            f"{best['pandas'] * 1000:.0f} ms"),
        Row(NAME, "cerebro.run() fed by IBKRCPData replaying the shipped cassette, same bars",
            f"{best['cassette'] * 1000:.0f} ms"),
        Row(NAME, "ratio store / PandasData", f"{store_ratio:.2f}", "<= 0.8",
            verdict(store_ratio <= 0.8 and store_gateway == 0)),
        Row(NAME, "ratio cassette / PandasData", f"{cassette_ratio:.2f}", "<= 1.0",
            verdict(cassette_ratio <= 1.0)),
        Row(NAME, "same final value and trades (store, PandasData, cassette)",
            f"{first.value:.2f} / {first.trades} trades in every run; bars "
            f"{'identical' if same else 'DIFFERENT'}", "identical",
            verdict(same and first.trades > 0)),
        Row(NAME, f"optstrategy, 8 sets, maxcpus=2, runonce=False, {sweep_span}: from the store",
            f"{store_sweep_s:.2f} s; {store_sweep_requests} gateway requests", "0 requests",
            verdict(store_sweep_requests == 0)),
        Row(NAME, "the same sweep without a store (every task fetches the span)",
            f"{fetch_sweep_s:.2f} s; {fetch_sweep_requests} history requests; {sweep_429} x 429"),
        Row(NAME, "sweep: no store / store",
            f"{fetch_sweep_s / store_sweep_s:.1f}x the wall time; results "
            f"{'identical' if sweep_same else 'DIFFERENT'}", "identical results",
            verdict(sweep_same)),
    ]  # fmt: skip


def parse_config(argv: Sequence[str] | None) -> BarStoreConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="backtest rounds; best of each")
    parser.add_argument("--latency", type=float, default=0.0, help="simulator latency, s")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="3 rounds, a 2-week sweep")
    size.add_argument("--smoke", action="store_true", help="1 round, a 1-week sweep")
    args = parser.parse_args(argv)
    config = BarStoreConfig(runs=args.runs, latency=args.latency)
    if args.quick:
        return BarStoreConfig(runs=3, sweep_from=dt.datetime(2024, 3, 18), latency=args.latency)
    if args.smoke:
        return BarStoreConfig(runs=1, sweep_from=dt.datetime(2024, 3, 25), latency=args.latency)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Print the bar store table."""
    return print_table(run, parse_config(argv))


if __name__ == "__main__":
    raise SystemExit(main())
