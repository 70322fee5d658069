"""Replay benchmark: a backtest fed from a cassette vs the same bars through PandasData.

The same SMA-cross strategy runs over the same bars twice per round:

(a) ``IBKRCPData`` replaying a cassette (``IBKRCPStore(cassette=PATH)``: no gateway, no
    network; the cassette, the HTTP stack, parsing, validation and the feed are all timed);
(b) ``bt.feeds.PandasData`` from a DataFrame of the same bars, built before the clock starts.

Only ``cerebro.run()`` is timed; the best of ``--runs`` rounds is reported for each, the two
sides alternating so that drift in machine load hits both. Both must end with the same final
value and trade count, and their data lines must hold identical bars.

Run: ``.venv/bin/python bench/bench_replay.py [--runs 5] [--cassette PATH] [--profile]``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import os
import pstats
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import backtrader as bt
import pandas as pd  # type: ignore[import-untyped, import-not-found, unused-ignore]
from benchlib import Row, print_table, quiet, verdict

from backtrader_ibkr_cp import IBKRCPStore

__all__ = ["ReplayConfig", "ReplaySmaCross", "main", "run"]

NAME = "replay"
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "cassettes" / "aapl_msft_5min_synthetic.json"
UTC = dt.timezone.utc


@dataclass(frozen=True)
class ReplayConfig:
    """``runs`` rounds (best of); the cassette and the span/symbol it holds."""

    runs: int = 5
    cassette: Path = SHIPPED
    symbol: str = "AAPL"
    fromdate: dt.datetime = dt.datetime(2024, 1, 2)
    todate: dt.datetime = dt.datetime(2024, 4, 1)
    profile: bool = False


class ReplaySmaCross(bt.Strategy):  # type: ignore[misc]
    """Long 10 shares when SMA(10) crosses above SMA(30); flat when it crosses below."""

    params = (("fast", 10), ("slow", 30), ("size", 10))

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
            self.buy(size=self.p.size)
        elif self.position and self.crossover < 0:
            self.close()


@dataclass
class Outcome:
    """One ``cerebro.run()``: seconds, final value, closed trades, and the bars it saw."""

    seconds: float
    value: float
    trades: int
    bars: list[tuple[float, ...]]


def _bars(data: Any) -> list[tuple[float, ...]]:
    """Every bar in ``data``'s lines as (datetime num, open, high, low, close, volume)."""
    lines = (data.datetime, data.open, data.high, data.low, data.close, data.volume)
    arrays = [list(line.array) for line in lines]
    return list(zip(*arrays, strict=True))


def _run(data: Any) -> Outcome:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.addstrategy(ReplaySmaCross)
    cerebro.broker.setcash(100_000.0)
    started = time.perf_counter()
    (strategy,) = cerebro.run()
    seconds = time.perf_counter() - started
    return Outcome(seconds, cerebro.broker.getvalue(), strategy.trades, _bars(data))


def run_cassette(config: ReplayConfig) -> Outcome:
    """(a): ``IBKRCPData`` replaying ``config.cassette`` (a fresh store per run)."""
    IBKRCPStore._reset()
    try:
        store = IBKRCPStore(cassette=str(config.cassette))
        data = store.getdata(
            dataname=config.symbol,
            timeframe=bt.TimeFrame.Minutes,
            compression=5,
            fromdate=config.fromdate,
            todate=config.todate,
            historical=True,
            tz="UTC",
        )
        return _run(data)
    finally:
        IBKRCPStore._reset()


def frame(bars: Sequence[tuple[float, ...]]) -> pd.DataFrame:
    """The bars as the DataFrame PandasData reads (naive UTC index, OHLCV columns)."""
    index = pd.DatetimeIndex([bt.num2date(bar[0]) for bar in bars], name="datetime")
    columns = ("open", "high", "low", "close", "volume")
    return pd.DataFrame(
        {name: [bar[i + 1] for bar in bars] for i, name in enumerate(columns)}, index=index
    )


def run_pandas(df: pd.DataFrame) -> Outcome:
    """(b): ``bt.feeds.PandasData`` over ``df`` (built beforehand, not timed)."""
    data = bt.feeds.PandasData(dataname=df, timeframe=bt.TimeFrame.Minutes, compression=5)
    return _run(data)


def profile_cassette(config: ReplayConfig, top: int = 30) -> str:
    """cProfile of one cassette run over every thread (the feed's stream thread and the
    history pool do the HTTP replay and parsing): the ``top`` functions by total time and
    by cumulative time."""
    profiles: list[cProfile.Profile] = []

    def start_in_thread(frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()

    main = cProfile.Profile()
    threading.setprofile(start_in_thread)
    main.enable()
    try:
        run_cassette(config)
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type, unused-ignore]
    out = io.StringIO()
    stats = pstats.Stats(main, stream=out)
    for profile in profiles:
        profile.disable()
        stats.add(profile)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def run(config: ReplayConfig, log: Callable[[str], None] | None = None) -> list[Row]:
    """Alternate (a) and (b) ``config.runs`` times; return the table rows."""
    say = log or (lambda message: None)
    with quiet():
        say("replay: first cassette run (builds the DataFrame from its bars) ...")
        first = run_cassette(config)
        df = frame(first.bars)
        cassette_runs = [first]
        pandas_runs: list[Outcome] = []
        for index in range(config.runs):
            say(f"replay: round {index + 1}/{config.runs} ...")
            pandas_runs.append(run_pandas(df))
            if index + 1 < config.runs:
                cassette_runs.append(run_cassette(config))
        if config.profile:
            say(profile_cassette(config))
    best_a = min(o.seconds for o in cassette_runs)
    best_b = min(o.seconds for o in pandas_runs)
    ratio = best_a / best_b if best_b else float("inf")
    a, b = cassette_runs[-1], pandas_runs[-1]
    same = (
        all(o.bars == first.bars for o in cassette_runs + pandas_runs)
        and all(o.value == first.value and o.trades == first.trades for o in pandas_runs)
        and all(o.value == first.value and o.trades == first.trades for o in cassette_runs)
    )
    try:
        shown = config.cassette.relative_to(ROOT)
    except ValueError:
        shown = config.cassette
    setup = f"{config.symbol} 5min, {len(first.bars)} bars, SMA(10/30) cross, best of {config.runs}"
    return [
        Row(
            NAME,
            f"cerebro.run() fed by IBKRCPData replaying {shown} ({setup})",
            f"{best_a * 1000:.0f} ms",
        ),
        Row(NAME, "cerebro.run() fed by bt.feeds.PandasData, same bars", f"{best_b * 1000:.0f} ms"),
        Row(
            NAME,
            "ratio cassette / PandasData",
            f"{ratio:.2f}",
            "<= 1.0",
            verdict(ratio <= 1.0),
        ),
        Row(
            NAME,
            "same final value and trades",
            f"cassette {a.value:.2f} / {a.trades} trades; PandasData {b.value:.2f} / "
            f"{b.trades} trades; bars {'identical' if same else 'DIFFERENT'}",
            "identical",
            verdict(same and len(first.bars) > 0 and a.trades > 0),
        ),
    ]


def parse_config(argv: Sequence[str] | None) -> ReplayConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="rounds; best of each side")
    parser.add_argument("--cassette", type=Path, default=SHIPPED)
    parser.add_argument("--symbol", default="AAPL")
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--profile", action="store_true", help="cProfile a cassette run")
    args = parser.parse_args(argv)
    return ReplayConfig(
        runs=3 if args.quick else args.runs,
        cassette=args.cassette,
        symbol=args.symbol,
        profile=args.profile,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the replay table."""
    return print_table(run, parse_config(argv))


if __name__ == "__main__":
    raise SystemExit(main())
