"""Backfill benchmark: months of 5-minute bars through ``GatewayClient.fetch_bars``.

Every side fetches the same span from its own, identical ``GatewaySimulator`` (same seed, clock
frozen after the span, the same fixed latency added to every answer):

- ours, ``PacingLimits(history_concurrency=4)`` (the default): requests vs the planner's
  minimum, wall time vs the bound ``ceil(requests / concurrency) x latency``, 429s, and the bars
  vs the simulator's ground truth;
- ours with concurrency 1: the same windows one at a time;
- ibind (optional; ``pip install ibind``): the same windows (ibind has no chunking), one by one
  and with its own parallel helper, ``execute_in_parallel(max_workers=4)``.

Run: ``.venv/bin/python bench/bench_backfill.py [--latency 1.0] [--quick]``. See
``bench/README.md`` for why the default latency is 1.0 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import INFO, Row, print_table, quiet, verdict

from backtrader_ibkr_cp import GatewayClient
from backtrader_ibkr_cp.client.pacing import PacingLimits
from backtrader_ibkr_cp.history.planner import Window, minimum_requests, plan_windows
from backtrader_ibkr_cp.models import Bar, Timeframe
from backtrader_ibkr_cp.simulator import GatewaySimulator, SimBar

__all__ = ["BackfillConfig", "main", "run"]

NAME = "backfill"
UTC = dt.timezone.utc
HISTORY = "/iserver/marketdata/history"
#: The simulator's frozen clock: a Tuesday evening after the span, so every bar is complete.
SIM_NOW = dt.datetime(2024, 4, 2, 22, 0, tzinfo=UTC)
TIMEFRAME = Timeframe.MINUTE_5


@dataclass(frozen=True)
class BackfillConfig:
    """What to fetch and how. ``latency`` is the simulator's added seconds per answer."""

    start: dt.datetime = dt.datetime(2024, 1, 2, tzinfo=UTC)
    end: dt.datetime = dt.datetime(2024, 4, 1, tzinfo=UTC)
    latency: float = 1.0
    concurrency: int = 4
    symbol: str = "AAPL"
    seed: int = 7
    ibind: bool = True

    @property
    def span(self) -> str:
        return f"{self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"


#: ``--quick``: two weeks instead of three months.
QUICK = {"start": dt.datetime(2024, 3, 18, tzinfo=UTC)}


@dataclass
class Side:
    """One fetch: wall time and what the simulator saw during it."""

    label: str
    seconds: float = 0.0
    history_requests: int = 0
    other_requests: int = 0
    rate_limited: int = 0
    max_in_flight: int = 0
    bars: list[tuple[int, float, float, float, float, float]] = field(default_factory=list)
    truth: list[tuple[int, float, float, float, float, float]] = field(default_factory=list)
    failures: int = 0
    error: str = ""


def _key_bar(bar: Bar) -> tuple[int, float, float, float, float, float]:
    return (
        int(bar.timestamp.timestamp() * 1000),
        bar.open,
        bar.high,
        bar.low,
        bar.close,
        bar.volume,
    )


def _key_sim(bar: SimBar) -> tuple[int, float, float, float, float, float]:
    return (
        int(bar.timestamp.timestamp() * 1000),
        bar.open,
        bar.high,
        bar.low,
        bar.close,
        bar.volume,
    )


def _simulator(config: BackfillConfig) -> GatewaySimulator:
    return GatewaySimulator(seed=config.seed, speed=0, start=SIM_NOW)


def _measure(sim: GatewaySimulator, side: Side, latency: float, fetch: Callable[[], None]) -> None:
    """Run ``fetch`` with the latency switched on and record what the simulator saw."""
    sim.stats.reset()
    sim.latency = latency
    started = time.perf_counter()
    try:
        fetch()
    finally:
        side.seconds = time.perf_counter() - started
        sim.latency = 0.0
    requests = sim.stats.requests
    side.history_requests = requests[HISTORY]
    side.other_requests = sum(requests.values()) - requests[HISTORY]
    side.rate_limited = sim.stats.rate_limited
    side.max_in_flight = sim.stats.max_concurrent_history


def run_ours(config: BackfillConfig, concurrency: int) -> Side:
    """``GatewayClient.fetch_bars`` over the span; contract and session set up beforehand
    (not timed: ibind is handed the conid too)."""
    side = Side(f"ours, concurrency {concurrency}")
    with _simulator(config) as sim:
        client = GatewayClient(
            sim.url,
            verify=sim.cert_fingerprint,
            pacing=PacingLimits(history_concurrency=concurrency),
        )
        try:
            client.authenticate()
            client.resolve(config.symbol)
            client.server_time()

            def fetch() -> None:
                bars = client.fetch_bars(config.symbol, TIMEFRAME, config.start, config.end)
                side.bars = [_key_bar(bar) for bar in bars]

            _measure(sim, side, config.latency, fetch)
        finally:
            client.close()
        side.truth = [
            _key_sim(bar)
            for bar in sim.truth(config.symbol, TIMEFRAME.bar, config.start, config.end)
        ]
    return side


def _ibind_module() -> Any | None:
    try:
        import ibind  # type: ignore[import-untyped, import-not-found, unused-ignore]
        from ibind.support import py_utils  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        return None
    return (ibind, py_utils)


def ibind_version() -> str | None:
    """ibind's installed version, or None when it is not importable."""
    if _ibind_module() is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ibind")
    except PackageNotFoundError:  # pragma: no cover - importable but not installed
        return "unknown version"


def run_ibind(config: BackfillConfig, windows: Sequence[Window], parallel: bool) -> Side:
    """ibind's ``marketdata_history_by_conid`` for each planned window (ibind does not chunk),
    one by one or through ibind's ``execute_in_parallel(max_workers=4)`` (the pool its own
    ``marketdata_history_by_conids`` uses). TLS verification off (``cacert=False``), as ibind's
    docs say for the gateway's self-signed certificate."""
    loaded = _ibind_module()
    assert loaded is not None
    ibind, py_utils = loaded
    how = "execute_in_parallel(max_workers=4)" if parallel else "one by one"
    side = Side(f"ibind, {how}")
    with _simulator(config) as sim:
        conid = str(sim.conid(config.symbol))
        client = ibind.IbkrClient(
            url=sim.api_url + "/",
            cacert=False,
            timeout=10,
            auto_register_shutdown=False,
        )
        calls = {
            index: {
                "kwargs": {
                    "conid": conid,
                    "bar": window.bar,
                    "period": window.period,
                    "outside_rth": False,
                    "start_time": window.end,
                }
            }
            for index, window in enumerate(windows)
        }
        results: dict[int, Any] = {}

        def fetch() -> None:
            if parallel:
                results.update(
                    py_utils.execute_in_parallel(
                        client.marketdata_history_by_conid, requests=calls, max_workers=4
                    )
                )
                return
            for index, call in calls.items():
                try:
                    results[index] = client.marketdata_history_by_conid(**call["kwargs"])
                except Exception as exc:  # ibind raises ExternalBrokerError on 429 and others
                    results[index] = exc

        try:
            _measure(sim, side, config.latency, fetch)
        finally:
            client.close()
    start_ms = int(config.start.timestamp() * 1000)
    end_ms = int(config.end.timestamp() * 1000)
    merged: dict[int, tuple[int, float, float, float, float, float]] = {}
    for result in results.values():
        if isinstance(result, Exception):
            side.failures += 1
            status = getattr(result, "status_code", None)
            what = f"HTTP {status}" if status else str(result)[:80]
            side.error = side.error or f"{type(result).__name__} ({what})"
            continue
        for row in (result.data or {}).get("data", []):
            if start_ms <= row["t"] < end_ms:
                merged[row["t"]] = (row["t"], row["o"], row["h"], row["l"], row["c"], row["v"])
    side.bars = [merged[t] for t in sorted(merged)]
    return side


def _same_prices(ours: Sequence[tuple[Any, ...]], theirs: Sequence[tuple[Any, ...]]) -> bool:
    """Timestamps and OHLC equal, bar for bar."""
    return len(ours) == len(theirs) and all(
        a[:5] == b[:5] for a, b in zip(ours, theirs, strict=True)
    )


def _same_volume(
    ours: Sequence[tuple[Any, ...]], theirs: Sequence[tuple[Any, ...]], k: float
) -> bool:
    return len(ours) == len(theirs) and all(
        math.isclose(a[5], b[5] * k, rel_tol=1e-9, abs_tol=1e-6)
        for a, b in zip(ours, theirs, strict=True)
    )


def run(config: BackfillConfig, log: Callable[[str], None] | None = None) -> list[Row]:
    """Run every side and return the table rows."""
    say = log or (lambda message: None)
    windows = plan_windows(TIMEFRAME, config.start, config.end)
    minimum = minimum_requests(TIMEFRAME, config.start, config.end)
    setup = f"{config.symbol} 5min {config.span}, latency {config.latency:g} s"
    with quiet():
        say(f"backfill: ours, concurrency {config.concurrency} ...")
        ours = run_ours(config, config.concurrency)
        say("backfill: ours, concurrency 1 ...")
        serial = run_ours(config, 1)
    rows: list[Row] = []
    n = ours.history_requests
    rows.append(
        Row(
            NAME,
            f"history requests ({setup})",
            f"{n} issued; planner minimum {minimum} ({len(windows)} windows); "
            f"{ours.other_requests} other requests while fetching",
            "= minimum",
            verdict(n == minimum),
        )
    )
    bound = math.ceil(n / config.concurrency) * config.latency
    ratio = ours.seconds / bound if bound else math.inf
    rows.append(
        Row(
            NAME,
            f"wall time, concurrency {config.concurrency}",
            f"{ours.seconds:.2f} s = {ratio:.2f}x the bound ceil({n}/{config.concurrency}) x "
            f"{config.latency:g} s = {bound:.2f} s (peak {ours.max_in_flight} in flight)",
            "<= 1.25x",
            verdict(ratio <= 1.25),
        )
    )
    speedup = serial.seconds / ours.seconds if ours.seconds else math.inf
    rows.append(
        Row(
            NAME,
            "same windows one at a time (concurrency 1)",
            f"{serial.seconds:.2f} s ({serial.history_requests} requests); concurrent is "
            f"{speedup:.2f}x faster",
            ">= 3x faster",
            verdict(speedup >= 3.0),
        )
    )
    rows.append(
        Row(
            NAME,
            "429 answers (both of ours)",
            f"{ours.rate_limited} + {serial.rate_limited}",
            "0",
            verdict(ours.rate_limited == 0 and serial.rate_limited == 0),
        )
    )
    exact = ours.bars == ours.truth and serial.bars == serial.truth
    rows.append(
        Row(
            NAME,
            "bars vs simulator ground truth",
            f"{len(ours.bars)} bars; {'identical' if exact else 'DIFFERENT'} (OHLCV, "
            "timestamps; both of ours)",
            "identical",
            verdict(exact and len(ours.bars) > 0),
        )
    )
    rows.append(_pacing_row(config))
    rows += _ibind_rows(config, windows, ours, say)
    return rows


def _pacing_row(config: BackfillConfig) -> Row:
    """Why the latency is what it is: the client's pacer must not be the binding limit, or
    the concurrency bound cannot be reached by any client keeping IBKR's 10 requests/s."""
    limits = PacingLimits(history_concurrency=config.concurrency)
    slots = math.floor(limits.total_per_second)
    held = config.latency + slots / limits.total_per_second + limits.margin
    pacer_rate = slots / held
    pool_rate = config.concurrency / config.latency if config.latency else math.inf
    binding = "concurrency" if pool_rate <= pacer_rate else "pacing (the bound is out of reach)"
    return Row(
        NAME,
        "what limits the rate at this latency",
        f"pool {config.concurrency}/{config.latency:g} s = {pool_rate:.2f} req/s; pacer "
        f"{slots} requests per (latency + {slots / limits.total_per_second + limits.margin:g} s"
        f" held after each answer) = {pacer_rate:.2f} req/s -> {binding}",
    )


def _ibind_rows(
    config: BackfillConfig, windows: Sequence[Window], ours: Side, say: Callable[[str], None]
) -> list[Row]:
    version = ibind_version() if config.ibind else None
    if version is None:
        why = "ibind not installed" if config.ibind else "ibind skipped (--no-ibind)"
        return [Row(NAME, "ibind, same windows", why, "", INFO)]
    rows: list[Row] = []
    for parallel in (False, True):
        with quiet():
            say(f"backfill: ibind {'parallel' if parallel else 'one by one'} ...")
            side = run_ibind(config, windows, parallel)
        ratio = side.seconds / ours.seconds if ours.seconds else math.inf
        prices = _same_prices(ours.bars, side.bars)
        lots = _same_volume(ours.bars, side.bars, 100.0)
        detail = (
            f"{side.seconds:.2f} s = {ratio:.2f}x ours; {side.history_requests} requests, "
            f"{side.rate_limited} x 429, {side.failures} failed; "
            f"{len(side.bars)} bars, timestamps+OHLC "
            f"{'equal ours' if prices else 'DIFFER from ours'}"
        )
        if side.bars:
            detail += "; volume in IBKR lots of 100 (x100 = ours)" if lots else "; volume differs"
        if side.error:
            detail += f"; first error: {side.error}"
        rows.append(Row(NAME, f"ibind {version}, {side.label.split(', ', 1)[1]}", detail))
    return rows


def _date(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def parse_config(argv: Sequence[str] | None) -> BackfillConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per answer")
    parser.add_argument("--start", type=_date, help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("--end", type=_date, help="end day (exclusive), YYYY-MM-DD (UTC)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--symbol", default="AAPL")
    parser.add_argument("--no-ibind", action="store_true", help="skip the ibind rows")
    parser.add_argument("--quick", action="store_true", help="two weeks instead of 3 months")
    args = parser.parse_args(argv)
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    if args.start is not None:
        values["start"] = args.start
    if args.end is not None:
        values["end"] = args.end
    return BackfillConfig(
        latency=args.latency,
        concurrency=args.concurrency,
        symbol=args.symbol,
        ibind=not args.no_ibind,
        **values,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the backfill table."""
    return print_table(run, parse_config(argv))


if __name__ == "__main__":
    raise SystemExit(main())
