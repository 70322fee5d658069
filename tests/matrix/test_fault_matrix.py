"""The fault matrix: every fault the simulator injects (and a session expiry) x every phase of a
live run (backfill, the backfill -> live seam, live, the gap backfill of a reconnection) x one
and three feeds, through Cerebro.

Each cell asserts one of the two outcomes of DESIGN.md's reliability target:

- ``truth``: every feed delivered exactly ``sim.truth`` from its ``fromdate`` to its last bar
  (same timestamps, OHLCV; none lost, none repeated), went back to LIVE and delivered live
  bars after the fault was met;
- ``stop``: the feed the fault hit ended DISCONNECTED with a store message that names the
  problem and says what to do, after delivering only true bars; the other feeds: ``truth``.

After each cell no thread is left (``no_thread_leak``) and the process has as many sockets
open as before the simulator started (see ``conftest.py``). ``docs/reliability.md`` has the
table with the reasons.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import backtrader as bt
import pytest
from matrix_cells import (
    BARS_AFTER,
    HISTORY,
    MAX_SECONDS,
    MINUTE,
    NY,
    PHASES,
    SESSION_OPEN,
    STORE,
    UTC,
    CellResult,
    FaultCase,
    run_cell,
    truth_rows,
    utc,
)

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import FAULT_KINDS, GatewaySimulator

#: A fault the transport's own retries absorb: nothing changed for the user, so nothing is
#: said (one store message per change of state; the retries are logged).
RETRIED = None

FAULTS = (
    FaultCase(
        "latency",
        "latency",
        count=2,
        seconds=0.3,
        why="answers 0.3 s late, inside the 0.5 s client timeout: nothing fails, bars come later",
    ),
    FaultCase(
        "http_500",
        "http_500",
        count=2,
        says=RETRIED,
        why="5xx is transient: the transport retries with back-off (3 retries)",
    ),
    FaultCase(
        "http_503",
        "http_503",
        count=3,
        says=RETRIED,
        why="three 503 in a row use up 3 of the transport's retries; the 4th attempt succeeds",
    ),
    FaultCase(
        "http_429",
        "http_429",
        says="rate limited",
        why="429 with Retry-After: 1 holds every request of the store 1 s, then it resumes",
    ),
    FaultCase(
        "reset",
        "reset",
        count=2,
        says=RETRIED,
        why="a reset connection is a network error: retried on a new connection",
    ),
    FaultCase(
        "timeout",
        "timeout",
        seconds=1.0,
        says=RETRIED,
        why="no answer within the 0.5 s client timeout: RequestTimeout, retried",
    ),
    FaultCase(
        "malformed",
        "malformed",
        count=2,
        says=RETRIED,
        why="a truncated JSON body is a DataIntegrityError, retried as transient",
    ),
    FaultCase(
        "no_data",
        "no_data",
        count=2,
        why='"No data." for a window that has bars: asked again, then the span is asked again '
        "by the next catch-up pass or confirmation; no bar may be settled as empty",
    ),
    FaultCase(
        "invalid_bar",
        "invalid_bar",
        says_in=("backfill",),
        says="dropped an invalid bar",
        why="one bar of the answer has high < low: dropped, reported to notify_store, and the "
        "span asked again, which brings the true bar (a corrupted bar outside the requested "
        "span, as in the live phases' one-hour answers, is never used)",
    ),
    FaultCase(
        "invalid_bar-strict",
        "invalid_bar",
        strict=True,
        stops_in=("backfill",),
        phases=("backfill",),
        why="strict=True: a bar of the requested span that fails validation stops the feed "
        "(DISCONNECTED, InvalidBarStop explained). Only in the backfill: in the live phases "
        "the corrupted bar is an old bar of a one-hour answer, outside the span, so the cells "
        "would repeat the default ones; test_an_invalid_bar_in_a_live_confirmation covers a "
        "corrupted bar inside a live confirmation",
    ),
    FaultCase(
        "answer_lost",
        "answer_lost",
        count=1,
        says=RETRIED,
        why="the gateway carried the request out and the connection dropped without an answer: "
        "for a read (history, snapshot) that is a network error, retried on a new connection",
    ),
    FaultCase(
        "duplicate_bars",
        "duplicate_bars",
        why="repeated bars are exact copies: de-duplicated by timestamp",
    ),
    FaultCase(
        "out_of_order",
        "out_of_order",
        why="shuffled bars are sorted by timestamp",
    ),
    FaultCase(
        "competing",
        "competing",
        says="reopened",
        says_in=("backfill", "seam", "live"),
        why="another login takes the session: 401, the client reopens it (compete) and retries",
    ),
    FaultCase(
        "daily_reset",
        "daily_reset",
        says="reopened",
        says_in=("backfill", "seam", "live"),
        why="the session drops as at IBKR's nightly reset: 401, reopened, retried",
    ),
    FaultCase(
        "expire_session",
        None,
        says="reopened",
        says_in=("backfill", "seam", "live"),
        why="the session expires between requests: the next one gets 401, the client reopens "
        "the session and retries",
    ),
)


def test_the_matrix_covers_every_fault_kind_the_simulator_has() -> None:
    assert {f.kind for f in FAULTS if f.kind is not None} == set(FAULT_KINDS)


CELLS = [
    pytest.param(fault, phase, feeds, id=f"{fault.name}-{phase}-{feeds}feed{'s' * (feeds > 1)}")
    for fault in FAULTS
    for phase in PHASES
    if phase in fault.phases
    for feeds in (1, 3)
]


def assert_truth(sim: GatewaySimulator, name: str, result: CellResult) -> None:
    rows = result.rows[name]
    assert rows, f"{name}: no bar delivered"
    assert rows[0][0] == utc(SESSION_OPEN) + MINUTE, f"{name}: the first bar is not the fromdate's"
    assert rows == truth_rows(sim, name, rows), f"{name}: delivered bars differ from the truth"
    assert result.status_names(name)[-1] == "LIVE", result.status_names(name)
    assert len(result.live_rows[name]) >= BARS_AFTER


def assert_stopped(sim: GatewaySimulator, name: str, result: CellResult) -> None:
    rows = result.rows[name]
    assert rows == truth_rows(sim, name, rows)  # whatever came before the stop is true
    assert not rows or rows[0][0] == utc(SESSION_OPEN) + MINUTE
    assert result.status_names(name)[-1] == "DISCONNECTED", result.status_names(name)
    said = [m for m in result.messages if m.startswith(f"{name} 1min: ")]
    assert said, result.messages
    text = said[-1]
    assert "invalid bar" in text and "high" in text  # what happened
    assert "strict=False" in text  # what to do


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "phase", "feeds"), CELLS)
def test_cell(cell_sim: GatewaySimulator, fault: FaultCase, phase: str, feeds: int) -> None:
    result = run_cell(cell_sim, fault, phase, feeds)
    assert result.injected and result.met, "the fault was not met during the run"
    stopped = [name for name in result.rows if result.status_names(name)[-1:] == ["DISCONNECTED"]]
    if fault.outcome(phase) == "stop":
        assert len(stopped) == 1, result.statuses  # the one feed whose answer was corrupted
    else:
        assert stopped == [], result.messages
    for name in result.rows:
        if name in stopped:
            assert_stopped(cell_sim, name, result)
        else:
            assert_truth(cell_sim, name, result)
    text = " | ".join(result.messages)
    assert "unexpectedly" not in text
    if phase == "reconnect":  # the session loss broke every feed, which reconnected
        assert all("CONNBROKEN" in result.status_names(name) for name in result.rows)
        assert "reconnected" in text
    if fault.says is not None and (not fault.says_in or phase in fault.says_in):
        assert fault.says in text, text


class ConfirmOfFirstLiveBar(bt.Strategy):  # type: ignore[misc]
    """At LIVE (09:31:50, clock at real time), corrupt the next history answer and move the
    clock to 09:32:05: the next answer is the confirmation of the 09:31 bar, ``[09:30, 09:31,
    09:32 forming]``, whose middle bar (the one the simulator corrupts) is 09:31 itself. The
    run stops once the 09:31 bar and the store message about the dropped bar were both seen
    (the message is queued before the bar, but Cerebro may deliver it one cycle later)."""

    params = (("sim", None),)

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.statuses: list[str] = []
        self.messages: list[str] = []
        self.confirmed = False

    def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.messages.append(str(msg))
        self._stop_when_done()

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        self.statuses.append(data._getstatusname(status))
        if self.statuses[-1] == "LIVE" and self.statuses.count("LIVE") == 1:
            self.p.sim.inject("invalid_bar", 1, path=HISTORY)
            self.p.sim.advance(15)

    def next(self) -> None:
        d = self.data
        when = bt.num2date(d.datetime[0]).replace(tzinfo=UTC)
        self.rows.append((when, d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))
        if when == utc(dt.datetime(2024, 3, 5, 9, 32)):  # the 09:31 bar, stamped at its end
            self.confirmed = True
            self._stop_when_done()

    def _stop_when_done(self) -> None:
        if self.confirmed and any("dropped an invalid bar" in m for m in self.messages):
            self.env.runstop()


@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_an_invalid_bar_in_a_live_confirmation(no_thread_leak: None, strict: bool) -> None:
    start = dt.datetime(2024, 3, 5, 9, 31, 50, tzinfo=NY)
    with GatewaySimulator(seed=7, speed=1.0, start=start, penalty_seconds=5) as sim:
        store = IBKRCPStore(gateway_url=sim.url, strict=strict, **STORE)
        cerebro = bt.Cerebro(stdstats=False)
        data = store.getdata(
            dataname="AAPL",
            timeframe=bt.TimeFrame.Minutes,
            compression=1,
            fromdate=SESSION_OPEN,
            qcheck=0.1,
        )
        cerebro.adddata(data, name="AAPL")
        cerebro.addstrategy(ConfirmOfFirstLiveBar, sim=sim)
        guard = threading.Timer(MAX_SECONDS, cerebro.runstop)
        guard.start()
        try:
            (strategy,) = cerebro.run()
        finally:
            guard.cancel()
            guard.join()
            IBKRCPStore._reset()
        assert sim.pending_faults == 0
        rows = strategy.rows
        assert rows == truth_rows(sim, "AAPL", rows)
        assert rows[0][0] == utc(SESSION_OPEN) + MINUTE
    said = " | ".join(strategy.messages)
    if strict:  # stopped on the corrupted 09:31 bar, after the true 09:30 bar
        assert [r[0] for r in rows] == [utc(SESSION_OPEN) + MINUTE]
        assert strategy.statuses[-1] == "DISCONNECTED"
        assert "invalid bar" in said and "14:31:00" in said and "strict=False" in said
    else:  # dropped, reported, asked again: the true 09:31 bar arrives
        assert len(rows) == 2
        assert strategy.statuses[-1] == "LIVE"
        assert "dropped an invalid bar" in said and "14:31:00" in said
