"""Fixtures of the fault matrix: a fresh simulator per cell, fresh stores, and checks that a
cell leaves no socket open."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from matrix_cells import NY, SIM_START, SPEED, client_sockets, open_sockets

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator


@pytest.fixture
def cell_sim(no_thread_leak: None) -> Iterator[GatewaySimulator]:
    """A simulator at :data:`SPEED` from :data:`SIM_START`. After the cell (Cerebro has
    stopped the store): no connection of the client to the simulator is open, although the
    cell's objects may still be referenced (log records, kept errors); and once the
    simulator stopped, the process has exactly the sockets it had before."""
    IBKRCPStore._reset()
    before = open_sockets()
    with GatewaySimulator(seed=7, speed=SPEED, start=SIM_START, penalty_seconds=5) as sim:
        yield sim
        assert client_sockets(sim.port) == 0, "the client left a connection open"
        IBKRCPStore._reset()
    assert open_sockets() == before, "a socket was left open"


@pytest.fixture
def frozen_weekday() -> Iterator[GatewaySimulator]:
    """A simulator stopped at Tuesday 2024-03-05 10:00 New York (history only)."""
    IBKRCPStore._reset()
    start = dt.datetime(2024, 3, 5, 10, 0, tzinfo=NY)
    with GatewaySimulator(seed=7, speed=0, start=start, penalty_seconds=5) as sim:
        yield sim
        IBKRCPStore._reset()
