"""Pacing over HTTPS: IBKR's limits answer 429 with Retry-After and start the penalty box.

The simulator counts its pacing windows and penalty box on ``monotonic``: here a fake clock
the test moves, so "ten requests in one second" and "the penalty is over" are exact.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator, SimLimits, server
from backtrader_ibkr_cp.timing import FakeClock
from tests.support.instants import TUESDAY_MORNING

RELAXED = 1000  # effectively no limit for the counters a test is not about
HISTORY_PATH = "/iserver/marketdata/history"
#: Real seconds a test waits for something it started before it fails.
SETTLE = 10.0


def _assert_429(response: Any) -> None:
    assert response.status_code == 429
    assert response.json() == {"error": "Too many requests"}
    assert int(response.headers["Retry-After"]) >= 1


def test_eleventh_request_in_a_second_starts_the_penalty_box(
    client_for: Any, fake_clock: FakeClock
) -> None:
    with GatewaySimulator(
        speed=0, start=TUESDAY_MORNING, penalty_seconds=0.5, monotonic=fake_clock.now
    ) as sim:
        client = client_for(sim)
        statuses = [client.post("/iserver/auth/status").status_code for _ in range(10)]
        assert statuses == [200] * 10
        _assert_429(client.post("/iserver/auth/status"))
        # In the penalty box every request answers 429, whatever its endpoint.
        _assert_429(client.get("/iserver/accounts"))
        assert sim.penalty_remaining == 0.5
        assert sim.stats.rate_limited == 2
        fake_clock.advance(0.4)
        _assert_429(client.get("/iserver/accounts"))  # still in the box
        assert sim.penalty_remaining == pytest.approx(0.1)
        fake_clock.advance(0.6)  # the box is over, the ten left the one-second window
        assert sim.penalty_remaining == 0
        assert client.post("/iserver/auth/status").status_code == 200


def test_snapshot_rate_limit(client_for: Any, fake_clock: FakeClock) -> None:
    limits = SimLimits(total_per_second=RELAXED)
    with GatewaySimulator(
        speed=0,
        start=TUESDAY_MORNING,
        penalty_seconds=60,
        limits=limits,
        monotonic=fake_clock.now,
    ) as sim:
        client = client_for(sim)
        client.get("/iserver/accounts")
        assert all(client.snapshot("265598", "31").ok for _ in range(10))
        _assert_429(client.snapshot("265598", "31"))
        assert client.get("/iserver/accounts").status_code == 429
        sim.clear_penalty()
        assert client.get("/iserver/accounts").status_code == 200


def test_sixth_concurrent_history_request_is_refused(client_for: Any) -> None:
    """Five history answers held at a gate are five requests in flight: the sixth is refused
    at once (429), and the five are answered once the gate opens."""
    limits = SimLimits(total_per_second=RELAXED)
    with GatewaySimulator(speed=0, start=TUESDAY_MORNING, penalty_seconds=60, limits=limits) as sim:
        clients = [client_for(sim) for _ in range(6)]
        statuses: list[int] = []

        def fetch(index: int) -> None:
            statuses.append(clients[index].history(bar="1min", period="1h").status_code)

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(5)]
        with sim.gate(HISTORY_PATH) as gate:
            for thread in threads:
                thread.start()
            assert gate.wait_held(5, SETTLE)
            _assert_429(clients[5].history(bar="1min", period="1h"))  # not held: refused
            assert gate.held == 5 and statuses == []
        for thread in threads:
            thread.join(SETTLE)
        assert statuses == [200] * 5
        assert sim.stats.max_concurrent_history == 5
        assert sim.stats.rate_limited == 1


def test_a_history_answer_the_client_has_is_no_longer_in_flight(
    client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug: the slot of a history request was freed after its answer was written, so a
    client that had all five answers and sent its next request at once could find the five
    still counted (the handler threads not yet scheduled) and got a 429 and ten minutes of
    penalty box for a paced request. Here every handler thread stalls right after writing."""
    stalled = threading.Event()
    resume = threading.Event()
    original = server._Handler._send

    def send_then_stall(handler: Any, response: Any) -> None:
        original(handler, response)
        if handler.path.startswith("/v1/api" + HISTORY_PATH):
            stalled.set()
            resume.wait(SETTLE)

    monkeypatch.setattr(server._Handler, "_send", send_then_stall)
    limits = SimLimits(total_per_second=RELAXED)
    with GatewaySimulator(speed=0, start=TUESDAY_MORNING, penalty_seconds=60, limits=limits) as sim:
        try:
            clients = [client_for(sim) for _ in range(6)]
            answers = [c.history(bar="1min", period="1h").status_code for c in clients[:5]]
            assert answers == [200] * 5 and stalled.is_set()
            assert clients[5].history(bar="1min", period="1h").status_code == 200
            assert sim.stats.rate_limited == 0
        finally:
            resume.set()


def test_tickle_and_sso_validate_limits(client_for: Any, fake_clock: FakeClock) -> None:
    limits = SimLimits(total_per_second=RELAXED)
    with GatewaySimulator(
        speed=0,
        start=TUESDAY_MORNING,
        penalty_seconds=0.2,
        limits=limits,
        monotonic=fake_clock.now,
    ) as sim:
        client = client_for(sim)
        assert client.post("/tickle").status_code == 200
        _assert_429(client.post("/tickle"))
        fake_clock.advance(1.05)  # the penalty is over and the 1 s tickle window has passed
        assert client.post("/tickle").status_code == 200
        assert client.get("/sso/validate").status_code == 200
        fake_clock.advance(0.25)
        _assert_429(client.get("/sso/validate"))
        fake_clock.advance(60.0)  # one per minute
        assert client.get("/sso/validate").status_code == 200
