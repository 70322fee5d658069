"""Fixtures for the ``ibkr-cp`` tests: a frozen-clock simulator and a closed loopback port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator

#: Simulated "now": Wednesday 2024-03-06 after the close.
CLI_NOW = datetime(2024, 3, 6, 22, 0, tzinfo=timezone.utc)


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewaySimulator]:
    monkeypatch.delenv("IBKR_GATEWAY_URL", raising=False)
    with GatewaySimulator(seed=3, speed=0.0, start=CLI_NOW) as simulator:
        yield simulator


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
