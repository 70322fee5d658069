"""Fixtures for the live layer: a simulator on a weekday mid-session and an ApiClient."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from backtrader_ibkr_cp.client import ApiClient, Transport
from backtrader_ibkr_cp.simulator import GatewaySimulator

#: Tuesday 2024-03-05 10:00:30 New York (EST): regular hours.
TUESDAY_MORNING = datetime(2024, 3, 5, 15, 0, 30, tzinfo=timezone.utc)


@pytest.fixture
def sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(seed=3, speed=60, start=TUESDAY_MORNING, penalty_seconds=5) as simulator:
        yield simulator


@pytest.fixture
def api(sim: GatewaySimulator) -> Iterator[ApiClient]:
    transport = Transport(sim.url, timeout=5.0)
    yield ApiClient(transport)
    transport.close()
