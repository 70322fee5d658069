"""Fixtures for the client tests: the gateway simulator with a client over it and a scripted
loopback HTTP server (``closed_port``, ``sim_factory`` and ``fake_clock`` are in
``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.transport import Transport
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.client.scripted_server import Scripted
from tests.support.instants import TUESDAY_MIDDAY
from tests.support.policies import FAST_RETRY


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    with Scripted() as server:
        yield server


@pytest.fixture
def sim(sim_factory: Callable[..., GatewaySimulator]) -> GatewaySimulator:
    """A simulator frozen on Tuesday 13:00 New York (seed 0)."""
    return sim_factory(seed=0, start=TUESDAY_MIDDAY)


@pytest.fixture
def transport(sim: GatewaySimulator) -> Iterator[Transport]:
    with Transport(sim.url, retry=FAST_RETRY, timeout=(5.0, 5.0)) as t:
        yield t


@pytest.fixture
def api(transport: Transport) -> ApiClient:
    return ApiClient(transport)
