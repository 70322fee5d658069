"""Pacing over HTTPS: IBKR's limits answer 429 with Retry-After and start the penalty box."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any

from backtrader_ibkr_cp.simulator import GatewaySimulator, SimLimits

UTC = timezone.utc
START = datetime(2024, 3, 5, 15, 0, 30, tzinfo=UTC)
RELAXED = 1000  # effectively no limit for the counters a test is not about


def _assert_429(response: Any) -> None:
    assert response.status_code == 429
    assert response.json() == {"error": "Too many requests"}
    assert int(response.headers["Retry-After"]) >= 1


def test_eleventh_request_in_a_second_starts_the_penalty_box(client_for: Any) -> None:
    with GatewaySimulator(speed=0, start=START, penalty_seconds=0.5) as sim:
        client = client_for(sim)
        statuses = [client.post("/iserver/auth/status").status_code for _ in range(10)]
        assert statuses == [200] * 10
        _assert_429(client.post("/iserver/auth/status"))
        # In the penalty box every request answers 429, whatever its endpoint.
        _assert_429(client.get("/iserver/accounts"))
        assert sim.penalty_remaining > 0
        assert sim.stats.rate_limited == 2
        time.sleep(0.6)
        assert client.post("/iserver/auth/status").status_code == 200


def test_snapshot_rate_limit(client_for: Any) -> None:
    limits = SimLimits(total_per_second=RELAXED)
    with GatewaySimulator(speed=0, start=START, penalty_seconds=60, limits=limits) as sim:
        client = client_for(sim)
        client.get("/iserver/accounts")
        assert all(client.snapshot("265598", "31").ok for _ in range(10))
        _assert_429(client.snapshot("265598", "31"))
        assert client.get("/iserver/accounts").status_code == 429
        sim.clear_penalty()
        assert client.get("/iserver/accounts").status_code == 200


def test_sixth_concurrent_history_request_is_refused(client_for: Any) -> None:
    limits = SimLimits(total_per_second=RELAXED)
    with GatewaySimulator(
        speed=0, start=START, penalty_seconds=60, latency=0.6, limits=limits
    ) as sim:
        statuses: list[int] = []
        barrier = threading.Barrier(6)

        def fetch() -> None:
            client = client_for(sim)
            client.get("/iserver/auth/status")  # open the TLS connection first
            barrier.wait()
            statuses.append(client.history(bar="1min", period="1h").status_code)

        threads = [threading.Thread(target=fetch) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200] * 5 + [429]
        assert sim.stats.max_concurrent_history == 5
        assert sim.stats.rate_limited == 1


def test_tickle_and_sso_validate_limits(client_for: Any) -> None:
    limits = SimLimits(total_per_second=RELAXED)
    with GatewaySimulator(speed=0, start=START, penalty_seconds=0.2, limits=limits) as sim:
        client = client_for(sim)
        assert client.post("/tickle").status_code == 200
        _assert_429(client.post("/tickle"))
        time.sleep(1.05)  # the penalty is over and the 1 s tickle window has passed
        assert client.post("/tickle").status_code == 200
        assert client.get("/sso/validate").status_code == 200
        time.sleep(0.25)
        _assert_429(client.get("/sso/validate"))
