"""Soak: ten live feeds for a simulated day under a steady rain of faults.

Ten one-hour feeds (pre- and post-market included, 04:00-20:00 New York) run through Cerebro
against the simulator at :data:`SPEED` times real time (a one-hour bar every 3 s, a simulated
day in 72 s; the run crosses the 20:00 close, the night and the 04:00 open). Once every feed is
LIVE, a fault is injected every :data:`FAULT_EVERY` real seconds (about
``FAULT_EVERY * SPEED / 60`` simulated minutes), cycling through every kind the client must
recover from. Then the faults stop, the feeds catch up, and the run ends.

It runs twice: with ``streaming="poll"`` (live data from the snapshot poller) and with
``streaming="auto"`` (live data over the gateway's WebSocket, whose cuts join the faults; the
poller covers each cut). The run ends once the faults already injected were all taken, the
brokerage session they closed was reopened by the client, and every feed delivered the first
bar that completed after that and is LIVE.

Asserted: every feed delivered exactly ``sim.truth`` from its ``fromdate`` (none lost, none
repeated) and is LIVE; when polling, the snapshot poller sent one request per poll cycle for
all ten feeds (plus the retries the faults caused), never one per feed; when streaming, the
market data came over the socket and every cut socket was replaced; the client never provoked
a pacing 429 of its own; the process's resident memory (``VmRSS``, sampled every
:data:`RSS_EVERY` s after a garbage collection and ``malloc_trim``) grows less than
:data:`RSS_GROWTH_LIMIT_KB` after :data:`WARM_UP`. The simulator runs in the same process,
so its own growth (a cache of generated market days, its request statistics) counts too;
``docs/reliability.md`` has the measured figures.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import gc
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import backtrader as bt
import pytest

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.support.truth import truth_rows

NY = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
SYMBOLS = ("AAPL", "IBM", "MSFT", "AMZN", "GOOGL", "META", "TSLA", "NVDA", "SPY", "QQQ")
#: Tuesday 2024-03-05 10:00:30 New York; the feeds backfill from 04:00 (six bars each).
SIM_START = dt.datetime(2024, 3, 5, 10, 0, 30, tzinfo=NY)
FROMDATE = dt.datetime(2024, 3, 5, 4, 0)
#: Simulated seconds per real second: a one-hour bar every 3 s.
SPEED = 1200.0
POLL_INTERVAL = 0.5
#: Real seconds between faults (20 simulated minutes) and how long faults are injected.
FAULT_EVERY = 1.0
FAULT_SECONDS = 60.0
#: Real seconds of warm-up before the memory baseline is taken (two rounds of the fault
#: cycle: the first connection resets, timeouts and reconnections grow the allocator's arenas
#: and OpenSSL's buffers once), how often memory is sampled, and the allowed growth.
WARM_UP = 30.0
WARM_UP_RESETS = 60
WARM_UP_TIMEOUTS = 6
RSS_EVERY = 2.0
RSS_GROWTH_LIMIT_KB = 4 * 1024
#: Real seconds the feeds get to catch up once the faults stopped.
CATCH_UP_SECONDS = 20.0


#: Injects one fault; a socket cut returns how many sockets it cut.
Fault = Callable[[GatewaySimulator], "int | None"]


def _fault(kind: str, count: int = 1, seconds: float | None = None) -> Callable[[Any], None]:
    def inject(sim: GatewaySimulator) -> None:
        sim.inject(kind, count, seconds=seconds)

    inject.__name__ = kind
    return inject


def _expire(sim: GatewaySimulator) -> None:
    sim.expire_session()


_expire.__name__ = "expire_session"


def _drop_websockets(sim: GatewaySimulator) -> int:
    return sim.drop_websockets()


_drop_websockets.__name__ = "drop_websockets"

#: Every fault the client recovers from (strict mode off), on the market-data paths.
FAULTS: tuple[Fault, ...] = (
    _fault("latency", 2, 0.3),
    _fault("http_500", 2),
    _fault("http_503", 3),
    _fault("http_429"),
    _fault("reset", 2),
    _fault("timeout", seconds=1.0),
    _fault("malformed", 2),
    _fault("no_data", 2),
    _fault("invalid_bar"),
    _fault("duplicate_bars"),
    _fault("out_of_order"),
    _fault("competing"),
    _fault("daily_reset"),
    _expire,
)
#: The socket's own fault, added to the cycle when the feeds stream.
SOCKET_FAULTS: tuple[Fault, ...] = (_drop_websockets,)

Row = tuple[dt.datetime, float, float, float, float, float]


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()


def rss_kb() -> int:
    """This process's resident set size in kB (``VmRSS`` of ``/proc/self/status``), measured
    after a garbage collection and, with glibc, after ``malloc_trim(0)`` returned the free
    memory of every malloc arena: what is left is memory still in use (or fragmented), so
    growth means something is kept, not that threads left free pages in their arenas."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


@dataclass
class SoakState:
    """Shared between the strategy (Cerebro's thread) and the fault driver."""

    live: threading.Event = field(default_factory=threading.Event)
    rows: dict[str, list[Row]] = field(default_factory=dict)
    statuses: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    poller: Any = None


class Soak(bt.Strategy):  # type: ignore[misc]
    """Records bars, statuses and store messages; tells the driver when all feeds are LIVE."""

    params = (("state", None),)

    def __init__(self) -> None:
        self.rows: dict[str, list[Row]] = {d._name: [] for d in self.datas}
        self.statuses: dict[str, list[str]] = {d._name: [] for d in self.datas}
        self.messages: list[str] = []
        self.p.state.rows = self.rows
        self.p.state.statuses = self.statuses

    def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.messages.append(str(msg))

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        self.statuses[data._name].append(data._getstatusname(status))
        state: SoakState = self.p.state
        if state.poller is None:
            state.poller = data._store.poller()
        if all(s and s[-1] == "LIVE" for s in self.statuses.values()):
            state.live.set()

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        with self.p.state.lock:
            for data in self.datas:
                if not len(data):
                    continue
                rows = self.rows[data._name]
                when = bt.num2date(data.datetime[0]).replace(tzinfo=UTC)
                if rows and rows[-1][0] == when:
                    continue
                rows.append(
                    (when, data.open[0], data.high[0], data.low[0], data.close[0], data.volume[0])
                )


@dataclass
class DriverReport:
    injected: list[str] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)
    cut_sockets: int = 0
    target: dt.datetime | None = None
    caught_up: bool = False
    error: BaseException | None = None


def next_bar_end(now: dt.datetime) -> dt.datetime:
    """The end of the first one-hour bar (04:00-20:00 New York, Monday to Friday) that
    completes after ``now``."""
    start = now.astimezone(NY).replace(minute=0, second=0, microsecond=0)
    while not (4 <= start.hour < 20 and start.weekday() < 5):
        start += dt.timedelta(hours=1)
    return (start + dt.timedelta(hours=1)).astimezone(UTC)


class Driver(threading.Thread):
    """Injects the faults, samples memory, waits for the catch-up, stops Cerebro."""

    def __init__(
        self,
        sim: GatewaySimulator,
        state: SoakState,
        cerebro: bt.Cerebro,
        faults: tuple[Fault, ...],
    ) -> None:
        super().__init__(name="soak-driver", daemon=True)
        self.sim = sim
        self.state = state
        self.cerebro = cerebro
        self.faults = faults
        self.report = DriverReport()
        self.cancel = threading.Event()

    def run(self) -> None:
        try:
            self._drive()
        except BaseException as exc:  # reported by the test
            self.report.error = exc
        finally:
            self.cerebro.runstop()

    def _drive(self) -> None:
        if not self.state.live.wait(30.0):
            raise AssertionError("the feeds never all went LIVE")
        # Warm-up burst: the first few dozen replaced connections (resets, timeouts) grow the
        # allocator's arenas and OpenSSL's buffers once; get that behind the memory baseline.
        self.sim.inject("reset", WARM_UP_RESETS, path="/iserver")
        self.sim.inject("timeout", WARM_UP_TIMEOUTS, path="/iserver", seconds=1.0)
        started = time.monotonic()
        next_fault = next_sample = started
        index = 0
        while time.monotonic() - started < FAULT_SECONDS and not self.cancel.is_set():
            now = time.monotonic()
            if now >= next_fault:
                fault = self.faults[index % len(self.faults)]
                self.report.cut_sockets += fault(self.sim) or 0
                self.report.injected.append(fault.__name__)
                index += 1
                next_fault += FAULT_EVERY
            if now >= next_sample:
                self.report.rss.append((now - started, rss_kb()))
                next_sample += RSS_EVERY
            self.cancel.wait(max(0.0, min(next_fault, next_sample) - time.monotonic()))
        # Let the faults already injected be taken (each one is counted below), then no more.
        self._wait_for(lambda: not self.sim.pending_faults, CATCH_UP_SECONDS)
        self.sim.clear_faults()
        # A fault taken last may have closed the brokerage session (competing login, nightly
        # reset, expiry) with every feed still LIVE: a feed learns it at its next request and
        # breaks then. Wait for the client to have reopened the session; a feed that broke has
        # said so by then.
        if not self._wait_for(lambda: self.sim.authenticated, CATCH_UP_SECONDS):
            raise AssertionError("the client never reopened the brokerage session")
        # Then every feed must deliver the first bar that completes after that instant (the
        # same bar for every feed) and be LIVE: a feed broken by the last fault has backfilled
        # and come back, and a break it announced is behind that bar.
        sim_now = self.sim.now()
        target = self.report.target = next_bar_end(sim_now)
        ahead = (target - sim_now).total_seconds() / SPEED

        def caught_up() -> bool:
            with self.state.lock:
                return all(
                    rows and rows[-1][0] >= target for rows in self.state.rows.values()
                ) and all(s and s[-1] == "LIVE" for s in self.state.statuses.values())

        self.report.caught_up = self._wait_for(caught_up, ahead + CATCH_UP_SECONDS)

    def _wait_for(self, condition: Callable[[], bool], seconds: float) -> bool:
        """Check ``condition`` every 0.1 s until it holds (True) or ``seconds`` passed or the
        run was cancelled (False)."""
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() >= deadline or self.cancel.wait(0.1):
                return False
        return True


@pytest.fixture
def soak_sim() -> Iterator[GatewaySimulator]:
    IBKRCPStore._reset()
    with GatewaySimulator(seed=21, speed=SPEED, start=SIM_START, penalty_seconds=5) as sim:
        yield sim
        IBKRCPStore._reset()


@pytest.mark.slow
@pytest.mark.parametrize("streaming", ["poll", "auto"])
def test_ten_feeds_stay_exact_under_faults_for_a_simulated_day(
    no_thread_leak: None, soak_sim: GatewaySimulator, streaming: str
) -> None:
    sim = soak_sim
    store = IBKRCPStore(
        gateway_url=sim.url,
        poll_interval=POLL_INTERVAL,
        timeout=1.0,
        reconnect=-1,
        reconnect_timeout=0.5,
        stall_timeout=10.0,
        streaming=streaming,
    )
    cerebro = bt.Cerebro(stdstats=False)
    for symbol in SYMBOLS:
        data = store.getdata(
            dataname=symbol,
            timeframe=bt.TimeFrame.Minutes,
            compression=60,
            fromdate=FROMDATE,
            useRTH=False,
            qcheck=0.1,
        )
        cerebro.adddata(data, name=symbol)
    state = SoakState()
    cerebro.addstrategy(Soak, state=state)
    faults = FAULTS if streaming == "poll" else FAULTS + SOCKET_FAULTS
    driver = Driver(sim, state, cerebro, faults)
    driver.start()
    started = time.monotonic()
    try:
        (strategy,) = cerebro.run()
    finally:
        driver.cancel.set()
        driver.join()
    elapsed = time.monotonic() - started
    report = driver.report
    poller = state.poller
    requests = sim.stats.snapshot_conids
    print(
        f"\nsoak: {elapsed:.1f} s, {len(report.injected)} faults, bars per feed "
        f"{ {symbol: len(strategy.rows[symbol]) for symbol in SYMBOLS} }, snapshot requests "
        f"{len(requests)} / poll cycles {poller.cycles if poller else None}, history requests "
        f"{len(sim.stats.history_requests)}, sockets {sim.stats.ws_connections} "
        f"({report.cut_sockets} cut), socket messages {dict(sim.stats.ws_messages)}, "
        f"RSS kB every {RSS_EVERY:g} s: "
        f"{[kb for _, kb in report.rss]}"
    )
    assert report.error is None, repr(report.error)
    assert report.caught_up, f"feeds did not catch up to {report.target}"
    assert sim.pending_faults == 0

    # Exact bars for every feed.
    first = FROMDATE.replace(tzinfo=NY).astimezone(UTC)
    for symbol in SYMBOLS:
        rows = strategy.rows[symbol]
        truth = sim.truth(symbol, "1h", start=first, end=rows[-1][0], outside_rth=True)
        expected = truth_rows(truth, "1h", outside_rth=True)  # stamped at each bar's end
        assert rows[0][0] == first + dt.timedelta(hours=1), symbol
        assert rows == expected, f"{symbol}: delivered bars differ from the truth"
        assert strategy.statuses[symbol][-1] == "LIVE", (
            f"{symbol} ended {strategy.statuses[symbol][-6:]}; its last messages: "
            f"{[m for m in strategy.messages if symbol in m][-6:]}; last faults "
            f"{report.injected[-4:]}"
        )
    text = " | ".join(strategy.messages)
    assert "unexpectedly" not in text
    # Pacing: the only 429s are the injected ones.
    assert sim.stats.rate_limited == report.injected.count("http_429")

    if streaming == "poll":
        assert_polled_once_per_cycle(sim, poller)
    else:
        # The market data came over the socket, and every cut socket was replaced.
        assert sim.stats.ws_messages["smd"] > 0
        assert sim.stats.ws_connections > report.cut_sockets > 0

    # Memory flat after warm-up.
    after = [kb for at, kb in report.rss if at >= WARM_UP]
    assert len(after) >= 12
    growth = max(after) - after[0]
    assert growth < RSS_GROWTH_LIMIT_KB, f"RSS grew {growth} kB after warm-up: {after}"


def assert_polled_once_per_cycle(sim: GatewaySimulator, poller: Any) -> None:
    """One snapshot request per poll cycle for all ten feeds (one per feed would be ten per
    cycle); the extra requests are the transport's retries and re-sends the faults caused."""
    requests = sim.stats.snapshot_conids
    conids = sorted(sim.conid(s) for s in SYMBOLS)
    full = sum(sorted(r) == conids for r in requests)
    assert full >= 0.9 * len(requests)
    assert poller.cycles <= len(requests) <= 3 * poller.cycles
