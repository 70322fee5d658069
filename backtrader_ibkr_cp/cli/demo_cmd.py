"""``ibkr-cp demo``: a backtest replayed from the bundled cassette, then a short live
paper-trading run against the simulator at a fast clock, a summary table and an equity chart."""

from __future__ import annotations

import argparse
import csv
import importlib
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

from ..cassettes import read_metadata
from ..cassettes.recording import run_parameters
from ..errors import ConfigError
from ..models import Timeframe
from .common import bar_name, print_table

__all__ = ["BUNDLED_CASSETTE", "add_demo", "find_bundled_cassette"]

#: The cassette shipped with the project (synthetic data recorded from the simulator).
BUNDLED_CASSETTE = Path("cassettes") / "aapl_msft_5min_synthetic.json"


def find_bundled_cassette() -> Path:
    """The bundled cassette: ``./cassettes/...`` or the source checkout's ``cassettes/``."""
    candidates = [Path.cwd() / BUNDLED_CASSETTE, Path(__file__).parents[2] / BUNDLED_CASSETTE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"the bundled cassette {BUNDLED_CASSETTE} was not found (looked in "
        f"{', '.join(str(c.parent) for c in candidates)}); pass --cassette PATH, or record one "
        "with `ibkr-cp record --cassette PATH SYMBOL... --bar 5min --from ... --to ...`"
    )


def add_demo(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        parents=parents,
        help="backtest from the bundled cassette, then a short live paper run on the simulator",
        description="1) Replay the bundled cassette (months of synthetic 5-minute bars, no "
        "network) into an SMA(10/30) crossover backtest. 2) Start the gateway simulator with a "
        "fast clock and paper-trade an SMA(3/8) trend on live one-minute bars for a few "
        "seconds: IBKRCPBroker sends the orders to the simulator's paper account, which fills "
        "them as IBKR would. 3) Print a summary, the account's positions and cash, and write "
        "the equity curves (CSV, and a PNG chart if matplotlib is installed) under --out.",
    )
    p.add_argument("--cassette", type=Path, default=None, help="default: the bundled cassette")
    p.add_argument("--out", type=Path, default=Path("out"), help="output folder (default ./out)")
    p.add_argument(
        "--live-bars", type=int, default=40,
        help="stop the live run after this many live bars, all symbols together (default 40; "
        "0 skips the live run)",
    )  # fmt: skip
    p.add_argument(
        "--speed", type=float, default=120.0,
        help="simulated seconds per real second in the live run (default 120: a 1-minute bar "
        "every half second)",
    )  # fmt: skip
    p.add_argument(
        "--timeout", type=float, default=60.0, help="give the live run at most this many seconds"
    )
    p.add_argument("--seed", type=int, default=0, help="simulator seed for the live run")
    p.set_defaults(func=run_demo)


def _live_start(after: datetime) -> datetime:
    """15:00 UTC (10:00 or 11:00 New York, inside regular hours) of the first weekday after
    ``after``."""
    day = after.astimezone(timezone.utc).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 15, 0, tzinfo=timezone.utc)


def run_demo(args: argparse.Namespace) -> int:
    from ..bt.backtest import run_backtest

    if args.live_bars < 0 or args.speed <= 0 or args.timeout <= 0:
        raise ConfigError("--live-bars must be >= 0, --speed and --timeout > 0")
    out: IO[str] = sys.stdout
    cassette = args.cassette if args.cassette is not None else find_bundled_cassette()
    symbols, timeframe, start, end, outside_rth = run_parameters(
        read_metadata(cassette), path=cassette
    )
    out.write(
        f"1/2 backtest: {', '.join(symbols)} {bar_name(timeframe)} bars {start:%Y-%m-%d} to "
        f"{end:%Y-%m-%d}, replayed from {cassette} (no network)\n"
    )
    out.flush()
    backtest = run_backtest(
        symbols, timeframe, start, end, outside_rth=outside_rth, cassette=cassette
    )
    rows = [_row("backtest (cassette)", backtest)]
    results = {"backtest": backtest}
    if args.live_bars:
        live = _live_run(args, symbols, end, out)
        rows.append(_row("live paper (simulator)", live))
        results["live"] = live
    out.write("\n")
    print_table(
        rows,
        ("run", "bars", "live bars", "start value", "end value", "return", "trades", "max DD",
         "seconds"),
        out,
    )  # fmt: skip
    out.write("\n")
    _write_outputs(results, args.out, out)
    for name, result in results.items():
        if not any(result.bars.values()):
            raise ConfigError(
                f"the {name} run delivered no bars: {'; '.join(result.notifications)}"
            )
    return 0


def _live_run(
    args: argparse.Namespace, symbols: Sequence[str], after: datetime, out: IO[str]
) -> Any:
    from ..bt.backtest import run_backtest
    from ..plugins import apply_simulator_instruments
    from ..simulator import GatewaySimulator

    start = _live_start(after)
    out.write(
        f"2/2 live paper trading: {', '.join(symbols)} 1min bars on the simulator from "
        f"{start:%Y-%m-%d %H:%M} UTC at {args.speed:g}x, until {args.live_bars} live bars\n"
    )
    out.flush()
    with GatewaySimulator(seed=args.seed, speed=args.speed, start=start) as sim:
        apply_simulator_instruments(sim)
        result = run_backtest(
            symbols,
            Timeframe.MINUTE_1,
            start - timedelta(hours=1),
            None,
            gateway_url=sim.url,
            historical=False,
            store_kwargs={"poll_interval": 0.2},
            stop_after_live=args.live_bars,
            timeout=args.timeout,
            fast=3,
            slow=8,
            broker_kwargs={},  # IBKRCPBroker: the orders go to the (simulated) paper account
        )
        _print_account(sim, symbols, result, out)
        return result


def _print_account(sim: Any, symbols: Sequence[str], result: Any, out: IO[str]) -> None:
    """The paper account at the end, as IBKR (the simulator) holds it and as the broker saw
    it."""
    account = sim.account
    held = {symbol: float(account.positions.get(sim.conid(symbol), 0)) for symbol in symbols}
    filled = sum(1 for order in account.orders if order.status == "Filled")
    out.write(
        f"\npaper account (simulated IBKR) at the end: cash {account.cash:,.2f}; positions "
        + ", ".join(f"{symbol} {size:,.0f}" for symbol, size in held.items())
        + f"; {len(account.orders)} orders sent, {filled} filled, "
        f"{len(account.executions)} executions\n"
        f"the broker's view:                        cash {result.cash:,.2f}; positions "
        + ", ".join(f"{s} {result.positions.get(s, 0.0):,.0f}" for s in symbols)
        + ("  (agrees)\n" if _agrees(held, account.cash, result) else "  (DIFFERS)\n")
    )


def _agrees(held: dict[str, float], cash: float, result: Any) -> bool:
    return abs(cash - result.cash) < 0.01 and all(
        abs(size - result.positions.get(symbol, 0.0)) < 1e-9 for symbol, size in held.items()
    )


def _row(name: str, result: Any) -> tuple[object, ...]:
    bars = sum(len(b) for b in result.bars.values())
    return (
        name,
        bars,
        result.live_bars,
        f"{result.start_value:,.2f}",
        f"{result.end_value:,.2f}",
        f"{result.return_pct:+.2f}%",
        f"{result.trades} ({result.won} won)",
        f"{result.max_drawdown_pct:.2f}%",
        f"{result.seconds:.1f}",
    )


def _write_outputs(results: dict[str, Any], folder: Path, out: IO[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, result in results.items():
        path = folder / f"demo_{name}_equity.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("datetime", "value"))
            writer.writerows((when.isoformat(), f"{value:.2f}") for when, value in result.equity)
        out.write(f"equity curve: {path}\n")
    chart = _chart(results, folder / "demo_equity.png")
    out.write(f"chart: {chart}\n" if chart else "chart: skipped (matplotlib is not installed; "
              "`pip install matplotlib` for a PNG)\n")  # fmt: skip


def _chart(results: dict[str, Any], path: Path) -> Path | None:
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
    except ImportError:
        return None
    importlib.import_module("backtrader.plot")  # forces TkAgg when imported: override it after
    matplotlib.use("Agg", force=True)
    plt: Any = importlib.import_module("matplotlib.pyplot")

    fig, axes = plt.subplots(len(results), 1, figsize=(10, 3.2 * len(results)), squeeze=False)
    for axis, (name, result) in zip(axes[:, 0], results.items(), strict=True):
        if result.equity:
            times, values = zip(*result.equity, strict=True)
            axis.plot(times, values, linewidth=1.0)
        axis.set_title(f"{name}: equity ({result.return_pct:+.2f}%)")
        axis.set_ylabel("portfolio value")
        axis.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
