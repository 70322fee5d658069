"""Fixtures for the client tests: the gateway simulator with a client over it, a scripted
loopback HTTP server, and a closed port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from scripted_server import Scripted

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.client.transport import Transport
from backtrader_ibkr_cp.simulator import GatewaySimulator


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    with Scripted() as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: A Tuesday, 13:00 New York time: the simulated market is open.
MARKET_OPEN = datetime(2024, 3, 5, 18, 0, tzinfo=timezone.utc)
#: Retries without real back-off waits.
FAST_RETRY = RetryPolicy(backoff_factor=0.01, jitter=0.0)


@pytest.fixture
def sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(seed=0, start=MARKET_OPEN) as simulator:
        yield simulator


@pytest.fixture
def transport(sim: GatewaySimulator) -> Iterator[Transport]:
    with Transport(sim.url, retry=FAST_RETRY, timeout=(5.0, 5.0)) as t:
        yield t


@pytest.fixture
def api(transport: Transport) -> ApiClient:
    return ApiClient(transport)
