"""Fixtures for the cassette tests: a frozen-clock simulator and plain ``requests`` calls
without TLS warnings (``closed_port`` is in ``tests/conftest.py``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import pytest
from urllib3.exceptions import InsecureRequestWarning

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.support.instants import WEDNESDAY_EVENING


@pytest.fixture
def sim(sim_factory: Callable[..., GatewaySimulator]) -> GatewaySimulator:
    """Frozen on a Wednesday after the close (seed 7), so whole sessions are complete."""
    return sim_factory(seed=7, speed=0.0, start=WEDNESDAY_EVENING)


@pytest.fixture
def quiet_tls() -> Iterator[None]:
    """Plain ``requests`` calls with verify=False to the loopback simulator."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRequestWarning)
        yield
