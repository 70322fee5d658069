"""Fixtures of the fault matrix: a fresh simulator per cell, fresh stores, and a check that a
cell leaves no socket open."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator

import pytest
from matrix_cells import NY, SIM_START, SPEED, open_sockets

from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.store import IBKRCPStore


@pytest.fixture
def cell_sim(no_thread_leak: None, caplog: pytest.LogCaptureFixture) -> Iterator[GatewaySimulator]:
    """A simulator at :data:`SPEED` from :data:`SIM_START`. Afterwards every store is stopped
    and the process has exactly the sockets it had before the simulator started.

    What the cell created is released first: backtrader's objects form reference cycles
    (hence ``gc.collect()``), and pytest keeps the log records of the test, whose arguments
    may be exceptions holding a response, hence the connection pool (``GatewayClient.close()``
    leaves pools that are still referenced open: see ``test_resources.py``)."""
    IBKRCPStore._reset()
    before = open_sockets()
    with GatewaySimulator(seed=7, speed=SPEED, start=SIM_START, penalty_seconds=5) as sim:
        yield sim
        IBKRCPStore._reset()
    for when in ("setup", "call"):
        caplog.get_records(when).clear()
    gc.collect()
    assert open_sockets() == before, "a socket was left open"


@pytest.fixture
def frozen_weekday() -> Iterator[GatewaySimulator]:
    """A simulator stopped at Tuesday 2024-03-05 10:00 New York (history only)."""
    IBKRCPStore._reset()
    start = dt.datetime(2024, 3, 5, 10, 0, tzinfo=NY)
    with GatewaySimulator(seed=7, speed=0, start=start, penalty_seconds=5) as sim:
        yield sim
        IBKRCPStore._reset()
