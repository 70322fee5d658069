"""Every injectable fault, observed over real HTTP(S)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import requests

from backtrader_ibkr_cp.simulator import FAULT_KINDS, GatewaySimulator
from tests.support.instants import TUESDAY_MORNING

HISTORY = {"bar": "1min", "period": "30min"}
HISTORY_PATH = "/iserver/marketdata/history"
#: (connect, read) seconds: a client that gives up on an answer after half a second.
IMPATIENT = (10.0, 0.5)
#: Real seconds a test waits for something it started before it fails.
SETTLE = 10.0


def _t(body: dict[str, Any]) -> list[int]:
    return [bar["t"] for bar in body["data"]]


def test_latency_fault_delays_one_answer(client: Any, sim: GatewaySimulator) -> None:
    """A minute's latency: a client that waits half a second for the answer gives up; the
    fault is used up by that one request, and the next is answered normally."""
    assert client.post("/iserver/auth/status").status_code == 200  # the connection is open
    sim.inject("latency", seconds=60.0)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.history(**HISTORY, timeout=IMPATIENT)
    assert sim.pending_faults == 0 and sim.stats.requests[HISTORY_PATH] == 1
    assert client.history(**HISTORY).status_code == 200


@pytest.mark.parametrize(("kind", "status"), [("http_500", 500), ("http_503", 503)])
def test_server_errors(client: Any, sim: GatewaySimulator, kind: str, status: int) -> None:
    sim.inject(kind, count=2)
    assert [client.history(**HISTORY).status_code for _ in range(3)] == [status, status, 200]


def test_injected_429_has_retry_after_and_no_penalty(client: Any, sim: GatewaySimulator) -> None:
    sim.inject("http_429")
    response = client.history(**HISTORY)
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert sim.stats.rate_limited == 1
    assert client.history(**HISTORY).status_code == 200
    assert sim.penalty_remaining == 0


@pytest.mark.parametrize("tls", [True, False])
def test_reset_aborts_the_connection(client_for: Any, tls: bool) -> None:
    with GatewaySimulator(speed=0, start=TUESDAY_MORNING, tls=tls) as sim:
        client = client_for(sim)
        sim.inject("reset")
        with pytest.raises(requests.exceptions.ConnectionError):
            client.history(**HISTORY)
        assert client.history(**HISTORY).status_code == 200


def test_timeout_holds_without_answer_and_stop_cuts_it(client_for: Any) -> None:
    sim = GatewaySimulator(speed=0, start=TUESDAY_MORNING).start()
    port = sim.port
    client = client_for(sim)
    sim.inject("timeout", count=2)  # held 30 s by default
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.history(**HISTORY, timeout=IMPATIENT)
    errors: list[BaseException] = []

    def held() -> None:
        try:
            client_for(sim).history(**HISTORY, timeout=20)
        except requests.exceptions.RequestException as error:
            errors.append(error)

    thread = threading.Thread(target=held)
    thread.start()
    assert sim.stats.wait_for(lambda stats: stats.requests[HISTORY_PATH] == 2, SETTLE)
    sim.stop()  # cuts the held connection: the client does not wait for its 20 s timeout
    thread.join(SETTLE)
    assert not thread.is_alive()
    assert isinstance(errors[0], requests.exceptions.ConnectionError)
    assert not [t for t in threading.enumerate() if f"ibkr-sim-{port}" in t.name]


def test_held_requests_do_not_occupy_history_slots(client: Any, sim: GatewaySimulator) -> None:
    sim.inject("timeout", count=5)
    for _ in range(5):
        with pytest.raises(requests.exceptions.ReadTimeout):
            client.history(**HISTORY, timeout=IMPATIENT)
    assert client.history(**HISTORY).status_code == 200
    assert sim.stats.rate_limited == 0


def test_timeout_fault_with_seconds_closes_after_them(client: Any, sim: GatewaySimulator) -> None:
    sim.inject("timeout", seconds=0.2)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.history(**HISTORY, timeout=5)
    assert client.history(**HISTORY).status_code == 200


def test_malformed_body_is_truncated_json(client: Any, sim: GatewaySimulator) -> None:
    sim.inject("malformed")
    response = client.history(**HISTORY)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_no_data_only_hits_history(client: Any, sim: GatewaySimulator) -> None:
    client.get("/iserver/accounts")
    sim.inject("no_data")
    assert client.snapshot("265598", "31").status_code == 200
    assert client.history(**HISTORY).json() == {"error": "No data."}
    assert "data" in client.history(**HISTORY).json()


def test_bar_faults(client: Any, sim: GatewaySimulator) -> None:
    clean = client.history(**HISTORY).json()
    sim.inject("invalid_bar")
    broken = client.history(**HISTORY).json()["data"]
    assert sum(1 for bar in broken if bar["h"] < bar["l"]) == 1

    sim.inject("duplicate_bars")
    doubled = client.history(**HISTORY).json()
    assert len(doubled["data"]) > len(clean["data"]) == len(set(_t(doubled)))
    assert sorted(set(_t(doubled))) == _t(clean) and _t(doubled) == sorted(_t(doubled))

    sim.inject("out_of_order")
    shuffled = client.history(**HISTORY).json()
    assert _t(shuffled) != _t(clean) and sorted(_t(shuffled)) == _t(clean)


def test_competing_fault_takes_the_session(client: Any, sim: GatewaySimulator) -> None:
    sim.inject("competing")
    assert client.history(**HISTORY).status_code == 401
    status = client.post("/iserver/auth/status").json()
    assert (status["competing"], status["authenticated"]) == (True, False)
    client.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
    assert client.history(**HISTORY).status_code == 200


def test_daily_reset_fault_drops_the_session(client: Any, sim: GatewaySimulator) -> None:
    sim.inject("daily_reset")
    response = client.history(**HISTORY)
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("text/plain")
    status = client.post("/iserver/auth/status").json()
    assert (status["competing"], status["authenticated"]) == (False, False)
    client.post("/iserver/reauthenticate")
    assert client.history(**HISTORY).status_code == 200


def test_faults_spare_tickle_unless_named_and_paths_narrow(
    client: Any, sim: GatewaySimulator
) -> None:
    sim.inject("http_500")
    assert client.post("/tickle").status_code == 200
    assert client.history(**HISTORY).status_code == 500
    sim.inject("http_503", path="/iserver/marketdata/snapshot")
    assert client.history(**HISTORY).status_code == 200
    client.get("/iserver/accounts")
    assert client.snapshot("265598", "31").status_code == 503
    sim.inject("http_500", path="/v1/api/iserver/secdef")
    assert client.get("/iserver/secdef/search", params={"symbol": "AAPL"}).status_code == 500
    sim.inject("http_503", count=5)
    sim.clear_faults()
    assert sim.pending_faults == 0
    assert client.history(**HISTORY).status_code == 200


def test_tickle_fault_when_its_path_is_named(client_for: Any) -> None:
    with GatewaySimulator(speed=0, start=TUESDAY_MORNING) as sim:
        sim.inject("http_503", path="/tickle")
        assert client_for(sim).post("/tickle").status_code == 503


def test_fault_arguments_are_checked(sim: GatewaySimulator) -> None:
    assert len(FAULT_KINDS) == 14
    with pytest.raises(ValueError, match="use one of"):
        sim.inject("gremlins")
    with pytest.raises(ValueError, match="count"):
        sim.inject("http_500", count=0)
    with pytest.raises(ValueError, match="only affects"):
        sim.inject("no_data", path="/iserver/marketdata/snapshot")
