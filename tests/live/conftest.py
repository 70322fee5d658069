"""Fixtures for the live layer: a simulator on a weekday mid-session and an ApiClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from backtrader_ibkr_cp.client import ApiClient, Transport
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.support.instants import TUESDAY_MORNING


@pytest.fixture
def sim(sim_factory: Callable[..., GatewaySimulator]) -> GatewaySimulator:
    """Running a minute per real second from Tuesday morning (seed 3)."""
    return sim_factory(seed=3, speed=60, start=TUESDAY_MORNING, penalty_seconds=5)


@pytest.fixture
def api(sim: GatewaySimulator) -> Iterator[ApiClient]:
    transport = Transport(sim.url, timeout=5.0)
    yield ApiClient(transport)
    transport.close()
