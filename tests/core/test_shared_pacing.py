"""Two clients of the same gateway in one process share one pacer, so together they stay
inside IBKR's limits (a bug: each client had its own, and two quick CLI calls got a 429)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from backtrader_ibkr_cp import GatewayClient
from backtrader_ibkr_cp.client.pacing import PacingLimits
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.simulator import GatewaySimulator

OPEN = datetime(2024, 3, 5, 18, 0, 30, tzinfo=timezone.utc)


@pytest.fixture
def sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(seed=5, speed=0, start=OPEN, penalty_seconds=1) as s:
        yield s


def test_clients_of_one_gateway_share_a_pacer(sim: GatewaySimulator) -> None:
    a = GatewayClient(sim.url)
    b = GatewayClient(sim.url + "/v1/api")
    c = GatewayClient(sim.url, pacing=PacingLimits.conservative())
    try:
        assert a.pacer is b.pacer
        assert c.pacer is not a.pacer
    finally:
        for client in (a, b, c):
            client.close()


def test_many_clients_together_never_provoke_a_429(sim: GatewaySimulator) -> None:
    no_wait = RetryPolicy(rate_limit_retries=0)
    clients = [GatewayClient(sim.url, retry=no_wait) for _ in range(4)]
    try:

        def hammer(client: GatewayClient) -> None:
            for _ in range(6):
                client.api.auth_status()

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(hammer, clients))
    finally:
        for client in clients:
            client.close()
    assert sim.stats.requests["/iserver/auth/status"] == 24
    assert sim.stats.rate_limited == 0
