"""Every process on the machine draws on one pacing budget per gateway.

Real processes (``subprocess``, fresh interpreters) against one simulator over loopback
HTTPS; ``$IBKR_CP_PACING_DIR`` points every process at this test's own ledger folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backtrader_ibkr_cp.client.pacing_ledger import PacingLedger
from backtrader_ibkr_cp.simulator import GatewaySimulator

WORKER = str(Path(__file__).with_name("pacing_worker.py"))
#: A safety net against a hung child, not a timing assertion.
CHILD_TIMEOUT = 90.0

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="shared pacing uses fcntl.flock (POSIX)"
)


@pytest.fixture
def pacing_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "pacing"
    folder.mkdir()
    return folder


def _env(pacing_dir: Path) -> dict[str, str]:
    return {**os.environ, "IBKR_CP_PACING_DIR": str(pacing_dir), "PYTHONUNBUFFERED": "1"}


def _start(pacing_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        env=_env(pacing_dir),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=CHILD_TIMEOUT)


def test_four_processes_started_together_never_provoke_a_429(
    sim: GatewaySimulator, pacing_dir: Path, children: list[subprocess.Popen[str]]
) -> None:
    """Four backtests start at once: each authenticates, searches and fetches six history
    windows four at a time. Alone each keeps IBKR's limits; together (16 history requests in
    flight, bursts of 36 requests) they keep them only if they share one budget."""
    sim.latency = 0.2  # history requests overlap, so the concurrency cap matters
    symbols = ["AAPL", "MSFT", "IBM", "AAPL"]
    children.extend(_start(pacing_dir, "fetch", sim.url, symbol) for symbol in symbols)
    for child in children:  # every client built: go together
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
    results = [child.communicate("go\n", timeout=CHILD_TIMEOUT) for child in children]
    for child, (out, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
        assert '"bars": ' in out
    assert sim.stats.requests["/iserver/marketdata/history"] == 4 * 6
    assert sim.stats.rate_limited == 0
    assert sim.stats.max_concurrent_history <= 4
    ledger = PacingLedger.for_gateway(sim.url, pacing_dir)
    assert ledger.shared
    assert ledger.state(time.time()).in_flight() == 0


def test_a_process_killed_holding_history_slots_does_not_block_the_others(
    sim: GatewaySimulator, pacing_dir: Path, children: list[subprocess.Popen[str]]
) -> None:
    """A process SIGKILLed while it holds every history slot cannot release them; the others
    see that it is dead and take the slots (no waiting for the expiry)."""
    holder = _start(pacing_dir, "hold", sim.url, "4")
    children.append(holder)
    assert holder.stdout is not None
    line = holder.stdout.readline()
    assert line.startswith("holding"), holder.stderr.read() if holder.stderr else line
    ledger = PacingLedger.for_gateway(sim.url, pacing_dir)
    assert ledger.state(time.time()).in_flight_pids("history") == {holder.pid: 4}

    fetcher = _start(pacing_dir, "fetch", sim.url, "AAPL")
    children.append(fetcher)
    assert fetcher.stdout is not None and fetcher.stdin is not None
    assert fetcher.stdout.readline() == "ready\n"
    fetcher.stdin.write("go\n")  # it authenticates, searches, then waits for a history slot
    fetcher.stdin.flush()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=CHILD_TIMEOUT)  # reaped: the pid is gone

    out, err = fetcher.communicate(timeout=CHILD_TIMEOUT)
    assert fetcher.returncode == 0, err
    assert '"bars": ' in out
    state = ledger.state(time.time())
    assert state.in_flight("history") == 0
    assert all(entry.pid != holder.pid or entry.done is not None for entry in state.entries)
    assert sim.stats.rate_limited == 0
    assert sim.stats.requests["/iserver/marketdata/history"] == 6
