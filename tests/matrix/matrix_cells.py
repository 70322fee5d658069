"""One cell of the fault matrix: a Cerebro run against the simulator with one fault injected
in one phase, and what it delivered.

Phases (where the fault lands):

- ``backfill``: injected from ``Strategy.start`` (the feeds are connected and resolved, their
  streams not started yet) on the history path, so the backfill's history requests take it.
- ``seam``: injected when the first feed reports LIVE (its backfill is done, its first live
  bar not confirmed yet), on the market-data paths (snapshot polls and confirmations).
- ``live``: injected once every feed delivered a live bar, on the market-data paths.
- ``reconnect``: once every feed is LIVE, the simulator's clock slows to real time
  (no further bar completes during the cell's next seconds) and, as soon as every feed has
  delivered the last bar completed by then (so no stream has a confirmation pending), the
  gateway loses its login (``POST /logout``) and the fault is injected on the history path
  (``expire_session``: the session expires again as soon as a stream reopened it). The next
  snapshot poll fails with AuthenticationError and every stream reports CONNBROKEN and
  reconnects. When the strategy sees CONNBROKEN the clock jumps :data:`GAP_SECONDS` ahead
  and runs fast again, so bars completed during the outage (the gap). The first history
  request after the injection is therefore a stream's gap backfill.

A fault counts as *met* once the simulator has no pending fault left (for
``expire_session``: once the client reopened the session); the run stops when every feed
delivered :data:`BARS_AFTER` live bars after that, or ended.

The simulator's clock runs :data:`SPEED` times real time: a one-minute bar every 0.5 s.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import backtrader as bt

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator

NY = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
MINUTE = dt.timedelta(minutes=1)
HISTORY = "/iserver/marketdata/history"
#: Tuesday 2024-03-05, regular hours; the feeds backfill from the open (10 one-minute bars).
SESSION_OPEN = dt.datetime(2024, 3, 5, 9, 30)
SIM_START = dt.datetime(2024, 3, 5, 9, 40, 30, tzinfo=NY)
#: Simulated seconds per real second: a one-minute bar every 0.5 s.
SPEED = 120.0
#: Store settings of every cell: polled snapshots (the faults hit the polls; the socket's
#: faults have cells of their own), fast polls, short client timeouts, quick reconnections.
STORE: dict[str, Any] = {
    "streaming": "poll",
    "poll_interval": 0.25,
    "timeout": 0.5,
    "reconnect": 5,
    "reconnect_timeout": 0.2,
    "stall_timeout": 3.0,
}
SYMBOLS = {1: ("AAPL",), 3: ("AAPL", "MSFT", "IBM")}
PHASES = ("backfill", "seam", "live", "reconnect")
#: Simulated seconds the outage of the ``reconnect`` phase lasts (two one-minute bars).
GAP_SECONDS = 120.0
#: Live bars every feed must deliver after the fault was met before the run is stopped.
BARS_AFTER = 1
#: Real seconds a cell may run before it is stopped (it then fails on its assertions).
MAX_SECONDS = 20.0

Row = tuple[dt.datetime, float, float, float, float, float]


@dataclass(frozen=True)
class FaultCase:
    """A fault of the matrix: what is injected and which outcome is right.

    ``kind`` is a simulator fault kind, or None for ``sim.expire_session()``. The expected
    outcome is ``"stop"`` in the phases ``stops_in`` (the hit feed ends DISCONNECTED,
    explained, after a prefix of the truth) and ``"truth"`` elsewhere (every feed delivers
    exactly ``sim.truth``). ``says``: text a store message must contain once the fault was
    met (in the phases ``says_in``; all when empty). ``phases``: the phases the matrix runs
    it in. ``why``: why the outcome is right.
    """

    name: str
    kind: str | None
    count: int = 1
    seconds: float | None = None
    strict: bool = False
    stops_in: tuple[str, ...] = ()
    says: str | None = None
    says_in: tuple[str, ...] = ()
    phases: tuple[str, ...] = ("backfill", "seam", "live", "reconnect")
    why: str = ""

    def outcome(self, phase: str) -> str:
        return "stop" if phase in self.stops_in else "truth"

    def inject(self, sim: GatewaySimulator, path: str | None) -> None:
        if self.kind is None:
            sim.expire_session()
        else:
            sim.inject(self.kind, self.count, path=path, seconds=self.seconds)


@dataclass
class CellResult:
    """What a cell run delivered: rows per feed (UTC, OHLCV), statuses, store messages."""

    rows: dict[str, list[Row]]
    live_rows: dict[str, list[Row]]
    statuses: list[tuple[str, str]]
    messages: list[str]
    injected: bool
    met: bool
    seconds: float

    def status_names(self, feed: str) -> list[str]:
        return [status for name, status in self.statuses if name == feed]


class _Expirer(threading.Thread):
    """Expires the brokerage session as soon as a reconnection has reopened it."""

    def __init__(self, sim: GatewaySimulator) -> None:
        super().__init__(name="matrix-expirer", daemon=True)
        self.sim = sim
        self.stop_event = threading.Event()
        self.fired = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            if self.sim.authenticated:
                self.sim.expire_session()
                self.fired.set()
                return
            time.sleep(0.002)

    def finish(self) -> None:
        self.stop_event.set()
        if self.is_alive():
            self.join()


def last_complete_bar(sim: GatewaySimulator) -> dt.datetime:
    """Stamp (its end, UTC) of the newest one-minute bar complete at the simulator's now."""
    return sim.now().replace(second=0, microsecond=0)


def end_outage(sim: GatewaySimulator) -> None:
    """The outage lasted :data:`GAP_SECONDS`: jump the clock and run fast again."""
    sim.advance(GAP_SECONDS)
    sim.speed = SPEED


class Cell(bt.Strategy):  # type: ignore[misc]
    """Records every feed's bars and notifications, injects the fault, stops the run.

    Module-level on purpose: backtrader keeps the last strategy class of each name alive, so
    a class made per cell must not hold the cell's simulator or store in a closure.
    """

    params = (("sim", None), ("fault", None), ("phase", None), ("expirer", None))

    def __init__(self) -> None:
        self.rows: dict[str, list[Row]] = {d._name: [] for d in self.datas}
        self.live_rows: dict[str, list[Row]] = {d._name: [] for d in self.datas}
        self.statuses: list[tuple[str, str]] = []
        self.messages: list[str] = []
        self.live: set[str] = set()
        self.ended: set[str] = set()
        self.injected = False
        self.quiet_after: dt.datetime | None = None
        self.outage_over = False
        self.met_at: dict[str, int] | None = None

    def inject(self, path: str | None) -> None:
        if self.injected:
            return
        self.injected = True
        fault: FaultCase = self.p.fault
        if fault.kind is None and self.p.phase == "reconnect":
            self.p.expirer.start()
        else:
            fault.inject(self.p.sim, path)

    def met(self) -> bool:
        sim: GatewaySimulator = self.p.sim
        if self.p.fault.kind is None:
            reconnect = self.p.phase == "reconnect"
            return sim.authenticated and (not reconnect or self.p.expirer.fired.is_set())
        return sim.pending_faults == 0

    def start(self) -> None:
        if self.p.phase == "backfill":
            self.inject(HISTORY)

    def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.messages.append(str(msg))

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        name = data._getstatusname(status)
        self.statuses.append((data._name, name))
        if name == "LIVE":
            self.live.add(data._name)
        else:
            self.live.discard(data._name)
        if name in ("DISCONNECTED", "NOTSUBSCRIBED"):
            self.ended.add(data._name)
        phase = self.p.phase
        if phase == "seam" and name == "LIVE":
            self.inject(None)
        if phase == "reconnect" and not self.injected and self.live == set(self.rows):
            self.lose_session()
        if phase == "reconnect" and name == "CONNBROKEN" and not self.outage_over:
            self.outage_over = True
            end_outage(self.p.sim)

    def lose_session(self) -> None:
        """Slow the clock, wait for every feed to catch up, then inject and log out."""
        sim: GatewaySimulator = self.p.sim
        if self.quiet_after is None:
            sim.speed = 1.0
            self.quiet_after = last_complete_bar(sim)
        if all(rows and rows[-1][0] >= self.quiet_after for rows in self.rows.values()):
            # Through the store's own client, so that it is paced with the feeds' requests.
            # No stream can reach its gap backfill before the fault is in: each first has to
            # see the loss, then reopen the session.
            self.datas[0]._store.client.api.logout()
            self.inject(HISTORY)

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        for data in self.datas:
            if not len(data):
                continue
            rows = self.rows[data._name]
            when = bt.num2date(data.datetime[0]).replace(tzinfo=UTC)
            if rows and rows[-1][0] == when:
                continue
            row = (when, data.open[0], data.high[0], data.low[0], data.close[0], data.volume[0])
            rows.append(row)
            if data._name in self.live:
                self.live_rows[data._name].append(row)
        if self.p.phase == "live" and all(self.live_rows.values()):
            self.inject(None)
        if self.quiet_after is not None and not self.injected:
            self.lose_session()
        if self.injected and self.met_at is None and self.met():
            self.met_at = {name: len(rows) for name, rows in self.live_rows.items()}
        if self.met_at is not None and all(
            name in self.ended or len(rows) >= self.met_at[name] + BARS_AFTER
            for name, rows in self.live_rows.items()
        ):
            self.env.runstop()


def run_cell(sim: GatewaySimulator, fault: FaultCase, phase: str, feeds: int) -> CellResult:
    """Run Cerebro with ``feeds`` one-minute feeds from :data:`SESSION_OPEN`, inject ``fault``
    in ``phase``; stop once every feed delivered :data:`BARS_AFTER` live bars after the fault
    was met (or ended). Returns plain data only (no live objects)."""
    expirer = _Expirer(sim)
    store = IBKRCPStore(gateway_url=sim.url, strict=fault.strict, **STORE)
    cerebro = bt.Cerebro(stdstats=False)
    for symbol in SYMBOLS[feeds]:
        data = store.getdata(
            dataname=symbol,
            timeframe=bt.TimeFrame.Minutes,
            compression=1,
            fromdate=SESSION_OPEN,
            qcheck=0.1,
        )
        cerebro.adddata(data, name=symbol)
    cerebro.addstrategy(Cell, sim=sim, fault=fault, phase=phase, expirer=expirer)
    started = time.monotonic()
    guard = threading.Timer(MAX_SECONDS, cerebro.runstop)
    guard.start()
    try:
        (strategy,) = cerebro.run()
    finally:
        guard.cancel()
        guard.join()
        expirer.finish()
    return CellResult(
        rows=strategy.rows,
        live_rows=strategy.live_rows,
        statuses=strategy.statuses,
        messages=strategy.messages,
        injected=strategy.injected,
        met=strategy.injected and (strategy.met_at is not None or strategy.met()),
        seconds=time.monotonic() - started,
    )


def truth_rows(sim: GatewaySimulator, symbol: str, rows: list[Row]) -> list[Row]:
    """``sim.truth`` for the span ``rows`` covers, as rows (stamped at each bar's end)."""
    if not rows:
        return []
    bars = sim.truth(symbol, "1min", start=rows[0][0] - MINUTE, end=rows[-1][0])
    return [
        (b.timestamp.astimezone(UTC) + MINUTE, b.open, b.high, b.low, b.close, b.volume)
        for b in bars
    ]


def utc(moment: dt.datetime) -> dt.datetime:
    """A naive New York wall time as UTC."""
    return moment.replace(tzinfo=NY).astimezone(UTC)


def client_sockets(port: int) -> int:
    """This process's TCP sockets connected to ``port`` on loopback (a client's connections to
    the simulator; its own server-side sockets have ``port`` as local port)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            count += remote_port == port and fields[9] in inodes
    return count


def open_sockets() -> int:
    """Sockets this process has open (from ``/proc/self/fd``)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith("socket:")
    return count
