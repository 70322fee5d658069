"""Fixtures shared by every test folder: simulators, a fake clock, a closed port, a check that
a test leaves no thread running, and a private shared-pacing folder per test.

Helpers that are not fixtures live in :mod:`tests.support` (instants, simulators, clocks,
ground truth, a recording strategy).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.timing import FakeClock
from tests.support.sims import make_sim

#: Real seconds the threads a test started get to end after it before it fails.
THREAD_JOIN_SECONDS = 5.0


def thread_stacks() -> str:
    """Every other running thread's name and stack, innermost call last."""
    frames = sys._current_frames()
    parts = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or -1)
        if frame is None or thread is threading.current_thread():
            continue
        parts.append(f"--- {thread.name}\n" + "".join(traceback.format_stack(frame)))
    return "\n".join(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report carries the stacks of the threads still running when it
    failed (a stalled socket, a worker waiting on something): the one look at a rare
    failure that a later run may not repeat."""
    report = yield
    if call.when == "call" and report.failed:
        stacks = thread_stacks()
        if stacks:
            report.sections.append(("threads running at the failure", stacks))
    return report


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fail the test if a thread it started is still running after it (each one is joined,
    at most :data:`THREAD_JOIN_SECONDS` in all)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + THREAD_JOIN_SECONDS
    while extra := [t for t in threading.enumerate() if t not in before]:
        for thread in extra:  # a thread may start another one while it ends: look again
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in extra if t.is_alive()]
        if alive:
            raise AssertionError(f"threads left running: {alive}")


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., GatewaySimulator]]:
    """``sim_factory(**kwargs)`` starts a simulator (:func:`tests.support.sims.make_sim`:
    seed 7, frozen on Tuesday morning unless told otherwise); each is stopped at teardown."""
    started: list[GatewaySimulator] = []

    def start(**kwargs: Any) -> GatewaySimulator:
        simulator = make_sim(**kwargs)
        started.append(simulator)
        return simulator.start()

    yield start
    for simulator in reversed(started):
        simulator.stop()


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when the test advances it (``autojump`` off; set
    ``fake_clock.autojump = True`` to let every wait jump to its end)."""
    return FakeClock()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _private_pacing_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Give each test its own shared-pacing folder ($IBKR_CP_PACING_DIR): a simulator that
    reuses a port an earlier test's simulator had must not inherit that test's penalty or
    in-flight entries (the ledger is keyed by host and port)."""
    monkeypatch.setenv("IBKR_CP_PACING_DIR", str(tmp_path_factory.mktemp("pacing")))
