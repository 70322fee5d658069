"""Fixtures for the cassette tests: a frozen-clock simulator and a closed loopback port."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from urllib3.exceptions import InsecureRequestWarning

from backtrader_ibkr_cp.simulator import GatewaySimulator

#: Simulated "now": a Wednesday after the close, so whole sessions are complete.
SIM_NOW = datetime(2024, 3, 6, 22, 0, tzinfo=timezone.utc)


@pytest.fixture
def sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(seed=7, speed=0.0, start=SIM_NOW) as simulator:
        yield simulator


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def quiet_tls() -> Iterator[None]:
    """Plain ``requests`` calls with verify=False to the loopback simulator."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRequestWarning)
        yield
