"""Two clients of the same gateway in one process share one pacer, so together they stay
inside IBKR's limits (a bug: each client had its own, and two quick CLI calls got a 429)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from backtrader_ibkr_cp import GatewayClient
from backtrader_ibkr_cp.client.pacing import PacingLimits
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.simulator import GatewaySimulator

OPEN = datetime(2024, 3, 5, 18, 0, 30, tzinfo=timezone.utc)
HISTORY = "/iserver/marketdata/history"
#: Real seconds a test waits for what it started before it fails.
SETTLE = 60.0


@pytest.fixture
def sim(sim_factory: Callable[..., GatewaySimulator]) -> GatewaySimulator:
    return sim_factory(seed=5, speed=0, start=OPEN, penalty_seconds=1)


def test_clients_of_one_gateway_share_a_pacer_with_the_stricter_limits(
    sim: GatewaySimulator,
) -> None:
    """One pacer per gateway per process, whatever limits its clients were given (it was
    keyed by limits too, so a conservative client got a budget of its own)."""
    a = GatewayClient(sim.url)
    b = GatewayClient(sim.url + "/v1/api")
    c = GatewayClient(sim.url.replace("127.0.0.1", "localhost"), pacing=PacingLimits.conservative())
    try:
        assert a.pacer is b.pacer is c.pacer
        assert a.pacer.limits == PacingLimits.conservative()
        assert a.pacer.shared_ledger
    finally:
        for client in (a, b, c):
            client.close()


def test_clients_with_different_history_concurrency_stay_under_the_gateways_cap() -> None:
    """Two clients of one gateway, asking for 5 and 4 history requests in flight: together
    they keep 4 (with a pacer each they had 9 in flight and the gateway answered 429). The
    simulator holds the history answers at a gate until four are in flight together."""
    start = datetime(2024, 2, 26, tzinfo=timezone.utc)
    end = datetime(2024, 3, 5, tzinfo=timezone.utc)
    no_wait = RetryPolicy(rate_limit_retries=0)
    with GatewaySimulator(seed=5, start=OPEN, penalty_seconds=600) as sim:
        five = GatewayClient(sim.url, pacing=PacingLimits(history_concurrency=5), retry=no_wait)
        four = GatewayClient(sim.url, retry=no_wait)
        try:
            with ThreadPoolExecutor(2) as pool:
                with sim.gate(HISTORY) as gate:
                    runs = [
                        pool.submit(client.fetch_bars, "AAPL", "1min", start, end)
                        for client in (five, four)
                    ]
                    assert gate.wait_held(4, SETTLE)
                assert all(run.result(timeout=SETTLE) for run in runs)
        finally:
            five.close()
            four.close()
        assert sim.stats.rate_limited == 0
        assert sim.stats.max_concurrent_history == 4


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
