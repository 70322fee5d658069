"""Live benchmark: requests per minute and bar-close -> next() latency, polled snapshots vs
the WebSocket side by side, snapshot requests per poll cycle, memory.

Everything runs through Cerebro and ``IBKRCPData`` live feeds against a ``GatewaySimulator``:

1. **Snapshots per cycle** (``streaming="poll"``) for 1, 10 and 100 feeds on one store (the
   simulator's instruments plus added ones to reach 100; feeds named by conid so start-up
   needs no contract look-ups). Once every conid is subscribed, the simulator's log of
   snapshot requests (``sim.stats.snapshot_conids``) is compared with the poller's completed
   cycles over a window of ``--window`` seconds. Simulator clock at real speed, no bar closes
   in the window.
2. **Requests per minute**, the same 1, 10 and 100 feeds with ``streaming="poll"`` and
   ``streaming="auto"`` (the WebSocket): every REST request the simulator received in the
   window (snapshots, keep-alive, anything), and the WebSocket messages it pushed, per minute.
3. **Bar close -> next()**: one feed of 1-minute bars, simulator at ``--speed`` (default 47:
   a bar closes every 1.28 real seconds, so bar closes fall at every phase of the 1 s poll
   cycle instead of always the same one), polled and over the socket, one after the other.
   For each bar that closes during the run, ``next()`` reads the simulator's clock:
   ``(sim.now() - bar end) / speed`` is the real time between the bar becoming complete and
   the strategy seeing it.
4. **Memory**: five feeds of 5-minute bars over the socket at ``--soak-speed`` (default 1800:
   30 simulated hours, crossing a close, a night and a full session, in ``--soak`` = 60 s).
   RSS (``VmRSS`` of ``/proc/self/status``) is sampled every second; growth is measured from
   the end of the warm-up (the first quarter of the run) to the end.

Run: ``.venv/bin/python bench/bench_live.py [--quick]``.
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
from benchlib import TUESDAY_10AM, Row, print_table, quiet, rss_mb, verdict

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.models import Timeframe
from backtrader_ibkr_cp.models.calendar import bar_end
from backtrader_ibkr_cp.simulator import GatewaySimulator

__all__ = ["LiveConfig", "main", "run"]

NAME = "live"
UTC = dt.timezone.utc
#: Tuesday 2024-03-05 14:00 New York: the soak crosses the close, the night, Wednesday.
TUESDAY_2PM = dt.datetime(2024, 3, 5, 19, 0, 0, tzinfo=UTC)
#: The simulator's US listings (one per symbol; "DUAL" is deliberately ambiguous).
SOAK_SYMBOLS = ("AAPL", "MSFT", "IBM", "SPY", "NVDA")
FIVE_MINUTES = Timeframe.parse("5min")
#: Conids of the instruments added to reach 100 feeds.
EXTRA_CONID_BASE = 910_000_000


@dataclass(frozen=True)
class LiveConfig:
    """Sizes and durations (seconds are real seconds)."""

    feed_counts: tuple[int, ...] = (1, 10, 100)
    poll_interval: float = 1.0
    window: float = 5.0
    speed: float = 47.0
    latency_bars: int = 20
    soak: float = 60.0
    soak_speed: float = 1800.0
    seed: int = 3


QUICK = LiveConfig(window=3.0, latency_bars=8, soak=20.0)


def _us_conids(sim: GatewaySimulator, count: int) -> list[int]:
    """``count`` conids of US stock listings: the simulator's own, then added ones."""
    seen: set[str] = set()
    conids: list[int] = []
    for instrument in sim.instruments.values():
        if instrument.us and instrument.symbol not in seen and instrument.symbol != "DUAL":
            seen.add(instrument.symbol)
            conids.append(instrument.conid)
    extra = 0
    while len(conids) < count:
        extra += 1
        conid = EXTRA_CONID_BASE + extra
        sim.add_instrument(f"BENCH{extra:03d}", conid, "NYSE", base_price=20.0 + extra)
        conids.append(conid)
    return conids[:count]


class Probe(bt.Strategy):  # type: ignore[misc]
    """Records, for every new bar of every data, the real seconds since the bar closed.

    Params: ``sim`` (the simulator, whose clock is read), ``bar`` (bar length), ``since``
    (bars ending at or before this simulated time are backfill and not measured),
    ``stop_after`` (stop the run after that many measured bars; None: never).
    """

    params = (
        ("sim", None),
        ("bar", dt.timedelta(minutes=1)),
        ("since", None),
        ("stop_after", None),
    )

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.bars = 0
        self._seen = {id(data): 0 for data in self.datas}

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        sim: GatewaySimulator = self.p.sim
        now = sim.now()
        for data in self.datas:
            if len(data) == self._seen[id(data)]:
                continue
            self._seen[id(data)] = len(data)
            self.bars += 1
            end = data.datetime.datetime(0).replace(tzinfo=UTC)  # bars are stamped at their end
            if self.p.since is not None and end > self.p.since:
                self.lags.append((now - end).total_seconds() / sim.speed)
        if self.p.stop_after is not None and len(self.lags) >= self.p.stop_after:
            self.env.runstop()


def _stop_later(cerebro: bt.Cerebro, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, cerebro.runstop)
    timer.daemon = True
    timer.start()
    return timer


@dataclass
class CycleCount:
    """Snapshot requests and poll cycles within the measuring window."""

    feeds: int
    requests: int = 0
    cycles: int = 0
    seconds: float = 0.0
    conids_per_request: list[int] = field(default_factory=list)
    error: str = ""


def _between_cycles(poller: Any, sim: GatewaySimulator) -> tuple[int, int]:
    """(completed poll cycles, snapshot requests the simulator saw), read half a poll
    interval after a cycle completed, so no request is in flight and both counts agree."""
    first = poller.cycles
    deadline = time.monotonic() + 10.0 * poller.interval
    while poller.cycles == first and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(poller.interval / 2.0)
    return poller.cycles, len(sim.stats.snapshot_conids)


def _watch_cycles(
    store: Any, sim: GatewaySimulator, result: CycleCount, window: float, cerebro: bt.Cerebro
) -> None:
    """Wait until every feed is subscribed, count over ``window`` seconds, stop the run."""
    try:
        deadline = time.monotonic() + 120.0
        while store.client is None or len(store.poller().conids) < result.feeds:
            if time.monotonic() > deadline:
                result.error = "feeds did not all subscribe within 120 s"
                return
            time.sleep(0.05)
        poller = store.poller()
        time.sleep(0.5)  # past the pre-flight re-polls of the last subscriptions
        before_cycles, before_requests = _between_cycles(poller, sim)
        started = time.monotonic()
        time.sleep(window)
        after_cycles, after_requests = _between_cycles(poller, sim)
        result.seconds = time.monotonic() - started
        result.cycles = after_cycles - before_cycles
        window_requests = sim.stats.snapshot_conids[before_requests:after_requests]
        result.requests = len(window_requests)
        result.conids_per_request = [len(conids) for conids in window_requests]
    finally:
        cerebro.runstop()


#: ``watch(store, sim, result, window, cerebro)``: measures while the run goes on, then stops it.
Watcher = Callable[[Any, GatewaySimulator, Any, float, bt.Cerebro], None]


def _watched_run(
    config: LiveConfig, feeds: int, streaming: str, watch: Watcher, result: Any
) -> None:
    """``feeds`` live feeds (no backfill) on one store, at real speed, while ``watch``
    measures on its own thread and then stops the run."""
    IBKRCPStore._reset()
    with GatewaySimulator(seed=config.seed, speed=1.0, start=TUESDAY_10AM) as sim:
        conids = _us_conids(sim, feeds)
        store = IBKRCPStore(
            gateway_url=sim.url, poll_interval=config.poll_interval, streaming=streaming
        )
        cerebro = bt.Cerebro(stdstats=False)
        for conid in conids:
            data = store.getdata(
                dataname=conid,
                timeframe=bt.TimeFrame.Minutes,
                compression=1,
                backfill_start=False,
                tz="UTC",
            )
            cerebro.adddata(data)
        cerebro.addstrategy(Probe, sim=sim)
        watcher = threading.Thread(
            target=watch, args=(store, sim, result, config.window, cerebro), daemon=True
        )
        watcher.start()
        try:
            cerebro.run()
        finally:
            watcher.join(config.window + 130.0)
            IBKRCPStore._reset()


def count_cycles(config: LiveConfig, feeds: int) -> CycleCount:
    """Snapshot requests per poll cycle with ``feeds`` live feeds on one store."""
    result = CycleCount(feeds)
    _watched_run(config, feeds, "poll", _watch_cycles, result)
    return result


@dataclass
class LatencyResult:
    lags: list[float]
    bars: int
    seconds: float


def measure_latency(config: LiveConfig, streaming: str = "poll") -> LatencyResult:
    """Bar close -> next() for one feed of 1-minute bars at ``config.speed``."""
    IBKRCPStore._reset()
    with GatewaySimulator(seed=config.seed, speed=config.speed, start=TUESDAY_10AM) as sim:
        store = IBKRCPStore(
            gateway_url=sim.url, poll_interval=config.poll_interval, streaming=streaming
        )
        cerebro = bt.Cerebro(stdstats=False)
        data = store.getdata(
            dataname="AAPL", timeframe=bt.TimeFrame.Minutes, compression=1, tz="UTC"
        )
        cerebro.adddata(data)
        cerebro.addstrategy(Probe, sim=sim, since=sim.now(), stop_after=config.latency_bars)
        # A bound in case bars stop coming: twice the expected time plus start-up.
        timer = _stop_later(cerebro, 30.0 + 2.0 * config.latency_bars * 60.0 / config.speed)
        started = time.monotonic()
        try:
            (strategy,) = cerebro.run()
        finally:
            timer.cancel()
            IBKRCPStore._reset()
        return LatencyResult(list(strategy.lags), strategy.bars, time.monotonic() - started)


@dataclass
class SoakResult:
    samples: list[tuple[float, float]]  # (seconds since start, RSS MiB)
    bars: int
    exact: bool  # every feed's bars equal the simulator's truth from its first to its last
    simulated_hours: float
    snapshot_requests: int
    history_requests: int
    rate_limited: int


def soak(config: LiveConfig) -> SoakResult:
    """Five feeds of 5-minute bars for ``config.soak`` real seconds at ``soak_speed``."""
    IBKRCPStore._reset()
    samples: list[tuple[float, float]] = []
    with GatewaySimulator(seed=config.seed, speed=config.soak_speed, start=TUESDAY_2PM) as sim:
        store = IBKRCPStore(gateway_url=sim.url, poll_interval=config.poll_interval)  # socket
        cerebro = bt.Cerebro(stdstats=False)
        datas = [
            store.getdata(dataname=symbol, timeframe=bt.TimeFrame.Minutes, compression=5, tz="UTC")
            for symbol in SOAK_SYMBOLS
        ]
        for data in datas:
            cerebro.adddata(data)
        sim_start = sim.now()
        cerebro.addstrategy(Probe, sim=sim, bar=dt.timedelta(minutes=5))
        stop = threading.Event()
        started = time.monotonic()

        def sample() -> None:
            while True:
                samples.append((time.monotonic() - started, rss_mb()))
                if stop.wait(1.0):
                    return

        samples.append((0.0, rss_mb()))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = _stop_later(cerebro, config.soak)
        try:
            (strategy,) = cerebro.run()
        finally:
            timer.cancel()
            stop.set()
            sampler.join()
            IBKRCPStore._reset()
        samples.append((time.monotonic() - started, rss_mb()))
        hours = (sim.now() - sim_start).total_seconds() / 3600.0
        requests = sim.stats.requests
        exact = all(
            _equals_truth(sim, symbol, data)
            for symbol, data in zip(SOAK_SYMBOLS, datas, strict=True)
        )
        return SoakResult(
            samples,
            strategy.bars,
            exact,
            hours,
            requests["/iserver/marketdata/snapshot"],
            requests["/iserver/marketdata/history"],
            sim.stats.rate_limited,
        )


def _equals_truth(sim: GatewaySimulator, symbol: str, data: Any) -> bool:
    """``data``'s bars (read from its lines after the run) equal ``sim.truth`` from its first
    bar to its last: none lost, none repeated, every value exact."""
    lines = (data.datetime, data.open, data.high, data.low, data.close, data.volume)
    rows = list(zip(*(list(line.array) for line in lines), strict=True))
    if not rows:
        return False
    delivered = [
        (bt.num2date(row[0]).replace(tzinfo=UTC), *(float(v) for v in row[1:])) for row in rows
    ]
    first, last = delivered[0][0], delivered[-1][0]
    truth = sim.truth(symbol, "5min", start=first - dt.timedelta(minutes=5), end=last)
    expected = [
        (bar_end(b.timestamp, FIVE_MINUTES), b.open, b.high, b.low, b.close, b.volume)
        for b in truth
    ]  # the feed stamps each bar at its end
    return delivered == expected


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _rss_at(samples: Sequence[tuple[float, float]], at: float) -> float:
    return next((rss for seconds, rss in samples if seconds >= at), samples[-1][1])


def run(config: LiveConfig, log: Callable[[str], None] | None = None) -> list[Row]:
    """Run the three parts and return the table rows."""
    say = log or (lambda message: None)
    rows: list[Row] = []
    limit = config.poll_interval + 0.25
    with quiet():
        for feeds in config.feed_counts:
            say(f"live: snapshot requests per cycle, {feeds} feed(s) ...")
            counted = count_cycles(config, feeds)
            per_cycle = counted.requests / counted.cycles if counted.cycles else float("inf")
            sizes = sorted(set(counted.conids_per_request))
            full = bool(sizes) and sizes == [feeds]
            result = (
                f"{counted.requests} requests in {counted.cycles} cycles over "
                f"{counted.seconds:.1f} s = {per_cycle:.2f} per cycle; conids per request: "
                f"{', '.join(map(str, sizes)) or 'none'}"
            )
            if counted.error:
                result += f"; {counted.error}"
            rows.append(
                Row(
                    NAME,
                    f"snapshot requests per poll cycle, {feeds} feed(s), poll "
                    f"{config.poll_interval:g} s",
                    result,
                    "1 per cycle",
                    verdict(per_cycle == 1.0 and full and not counted.error),
                )
            )
        for feeds in config.feed_counts:
            say(f"live: requests per minute, {feeds} feed(s), polled and over the socket ...")
            rows.append(_traffic_row(feeds, count_traffic(config, feeds, "poll"),
                                     count_traffic(config, feeds, "auto"), config))  # fmt: skip
        for streaming in ("poll", "auto"):
            path = "polled" if streaming == "poll" else "WebSocket"
            say(f"live: bar close -> next() ({path}), {config.latency_bars} bars ...")
            latency = measure_latency(config, streaming)
            setup = f"1 feed, 1min bars, clock {config.speed:g}x, {path}"
            rows.append(_latency_row(latency.lags, config, limit, setup, streaming))
        say(f"live: memory soak, {config.soak:g} s at {config.soak_speed:g}x ...")
        soaked = soak(config)
    rows += _soak_rows(soaked, config, limit)
    return rows


def _latency_row(
    lags: Sequence[float], config: LiveConfig, limit: float, setup: str, streaming: str = "poll"
) -> Row:
    socket = streaming != "poll"
    target = "median <= 0.25 s, max <= 0.5 s" if socket else f"max <= poll + 0.25 = {limit:g} s"
    poll = "" if socket else f", poll {config.poll_interval:g} s"
    what = f"bar close -> next() ({setup}{poll}"
    if not lags:
        return Row(NAME, what + ")", "no live bar measured", target, "NO")
    worst, median = max(lags), statistics.median(lags)
    met = median <= 0.25 and worst <= 0.5 if socket else worst <= limit
    return Row(
        NAME,
        what + ")",
        f"{len(lags)} bars: median {median:.3f} s, p95 {_percentile(lags, 0.95):.3f} s, "
        f"max {worst:.3f} s",
        target,
        verdict(met),
    )


@dataclass
class Traffic:
    """REST requests and WebSocket messages in a window, with every feed subscribed."""

    feeds: int
    streaming: str
    requests: int = 0
    ws_messages: int = 0
    seconds: float = 0.0
    error: str = ""

    @property
    def per_minute(self) -> float:
        return 60.0 * self.requests / self.seconds if self.seconds else float("inf")


def _subscribed(store: Any, streaming: str) -> int:
    """How many conids the store's market source has subscribed (0 before it exists)."""
    if store.client is None:
        return 0
    if streaming == "poll":
        return len(store.poller().conids)
    socket = store.socket()
    return len(socket.conids) if socket is not None and store.market_path == "websocket" else 0


def _watch_traffic(
    store: Any, sim: GatewaySimulator, result: Traffic, window: float, cerebro: bt.Cerebro
) -> None:
    try:
        deadline = time.monotonic() + 120.0
        while _subscribed(store, result.streaming) < result.feeds:
            if time.monotonic() > deadline:
                result.error = "feeds did not all subscribe within 120 s"
                return
            time.sleep(0.05)
        time.sleep(1.0)  # past the first answers (pre-flight polls, first full messages)
        requests, messages = sim.stats.requests.total(), sum(sim.stats.ws_messages.values())
        started = time.monotonic()
        time.sleep(window)
        result.seconds = time.monotonic() - started
        result.requests = sim.stats.requests.total() - requests
        result.ws_messages = sum(sim.stats.ws_messages.values()) - messages
    finally:
        cerebro.runstop()


def count_traffic(config: LiveConfig, feeds: int, streaming: str) -> Traffic:
    """REST requests per minute with ``feeds`` live feeds on one store, ``streaming``."""
    result = Traffic(feeds, streaming)
    _watched_run(config, feeds, streaming, _watch_traffic, result)
    return result


def _traffic_row(feeds: int, poll: Traffic, socket: Traffic, config: LiveConfig) -> Row:
    errors = "; ".join(e for e in (poll.error, socket.error) if e)
    ratio = socket.per_minute / poll.per_minute if poll.per_minute else float("nan")
    pushed = 60.0 * socket.ws_messages / max(socket.seconds, 1e-9)
    return Row(
        NAME,
        f"REST requests per minute, {feeds} feed(s), poll {config.poll_interval:g} s vs "
        "WebSocket (besides the keep-alive's one /tickle a minute, in both)",
        f"polled {poll.per_minute:.0f}/min, WebSocket {socket.per_minute:.0f}/min "
        f"(x{ratio:.2f}; the socket pushed {pushed:.0f} messages/min)"
        + (f"; {errors}" if errors else ""),
        "fewer over the socket",
        verdict(not errors and socket.per_minute < poll.per_minute),
    )


def _soak_rows(soaked: SoakResult, config: LiveConfig, limit: float) -> list[Row]:
    samples = soaked.samples
    duration = samples[-1][0]
    warm = duration / 4.0
    start, warmed, end = samples[0][1], _rss_at(samples, warm), samples[-1][1]
    peak = max(rss for _, rss in samples)
    growth = round(end - warmed, 1) + 0.0  # no "-0.0"
    setup = (
        f"{len(SOAK_SYMBOLS)} feeds, 5min bars, {soaked.simulated_hours:.1f} simulated hours in "
        f"{duration:.0f} s ({config.soak_speed:g}x)"
    )
    rows = [
        Row(
            NAME,
            f"resident memory ({setup})",
            f"start {start:.1f} MiB, after {warm:.0f} s warm-up {warmed:.1f} MiB, end "
            f"{end:.1f} MiB (peak {peak:.1f}); growth after warm-up {growth:+.1f} MiB",
            "< 5 MiB after warm-up",
            verdict(growth < 5.0),
        ),
        Row(
            NAME,
            "soak traffic",
            f"{soaked.bars} bars delivered (backfill and live), "
            f"{'equal to' if soaked.exact else 'DIFFERENT from'} the simulator's truth; "
            f"{soaked.snapshot_requests} snapshot + {soaked.history_requests} history requests; "
            f"{soaked.rate_limited} x 429",
            "0 x 429; bars exact",
            verdict(soaked.rate_limited == 0 and soaked.bars > 0 and soaked.exact),
        ),
    ]
    return rows


def parse_config(argv: Sequence[str] | None) -> LiveConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short windows and soak")
    parser.add_argument("--feeds", type=lambda s: tuple(int(x) for x in s.split(",")))
    parser.add_argument("--poll", type=float, help="poll interval, seconds (default 1.0)")
    parser.add_argument("--window", type=float, help="seconds counting snapshot requests")
    parser.add_argument("--speed", type=float, help="simulated seconds per real second")
    parser.add_argument("--bars", type=int, help="bars measured for latency")
    parser.add_argument("--soak", type=float, help="real seconds of the memory run")
    parser.add_argument("--soak-speed", type=float, help="clock speed of the memory run")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else LiveConfig()
    overrides = {
        "feed_counts": args.feeds,
        "poll_interval": args.poll,
        "window": args.window,
        "speed": args.speed,
        "latency_bars": args.bars,
        "soak": args.soak,
        "soak_speed": args.soak_speed,
    }
    values = {**base.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
    return LiveConfig(**values)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the live table."""
    return print_table(run, parse_config(argv))


if __name__ == "__main__":
    raise SystemExit(main())
