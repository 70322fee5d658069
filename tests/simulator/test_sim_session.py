"""Session endpoints over HTTPS: auth status, tickle, 401s, expiry, competing, reauth, logout."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema

from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.timing import FakeClock
from tests.support.instants import TUESDAY_MORNING

SCHEMAS = json.loads((Path(__file__).parent / "fixtures" / "ibkr_openapi_schemas.json").read_text())


def _status(client: Any) -> dict[str, Any]:
    body: dict[str, Any] = client.post("/iserver/auth/status").json()
    return body


def _assert_401(response: Any) -> None:
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("text/plain")


def test_auth_status_shape_schema_and_cookie(client: Any) -> None:
    response = client.post("/iserver/auth/status")
    body = response.json()
    jsonschema.validate(body, {"$defs": SCHEMAS["$defs"], "$ref": "#/$defs/brokerageSessionStatus"})
    assert (body["authenticated"], body["competing"], body["connected"]) == (True, False, True)
    assert set(body["serverInfo"]) == {"serverName", "serverVersion"}
    assert "x-sess-uuid=" in response.headers["Set-Cookie"]
    assert client.get("/iserver/auth/status").json()["authenticated"] is True
    assert response.headers["Date"] == "Tue, 05 Mar 2024 15:00:30 GMT"  # the gateway's clock


def test_tickle_answers_session_and_auth_status(client: Any) -> None:
    response = client.post("/tickle")
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["session"])
    assert body["collission"] is False and body["hmds"] == {"error": "no bridge"}
    assert body["iserver"]["authStatus"]["authenticated"] is True
    assert "Set-Cookie" in response.headers


def test_without_brokerage_session_iserver_answers_401(client_for: Any) -> None:
    with GatewaySimulator(speed=0, start=TUESDAY_MORNING, authenticated=False) as sim:
        client = client_for(sim)
        assert _status(client)["connected"] is True
        assert _status(client)["authenticated"] is False
        _assert_401(client.get("/iserver/accounts"))
        _assert_401(client.history(bar="1min", period="1h"))
        assert client.get("/trsrv/stocks", params={"symbols": "AAPL"}).status_code == 200
        opened = client.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
        assert opened.json()["authenticated"] is True
        assert client.get("/iserver/accounts").status_code == 200
        assert sim.authenticated


def test_idle_timeout_drops_the_brokerage_session(client_for: Any, fake_clock: FakeClock) -> None:
    """The idle timeout counts on the simulator's real clock: here a fake one."""
    with GatewaySimulator(
        speed=0, start=TUESDAY_MORNING, session_timeout=0.5, monotonic=fake_clock.now
    ) as sim:
        client = client_for(sim)
        for _ in range(4):  # requests keep the session alive past the timeout
            fake_clock.advance(0.4)
            assert client.get("/iserver/accounts").status_code == 200
        fake_clock.advance(0.5)
        assert sim.authenticated  # not more than the timeout yet
        fake_clock.advance(0.01)
        assert not sim.authenticated
        assert _status(client)["authenticated"] is False
        _assert_401(client.get("/iserver/accounts"))
        client.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
        assert client.get("/iserver/accounts").status_code == 200


def test_expired_session_reauthenticates(client: Any, sim: GatewaySimulator) -> None:
    sim.expire_session()
    _assert_401(client.get("/iserver/accounts"))
    assert client.get("/iserver/reauthenticate").json() == {"message": "triggered"}
    assert _status(client)["authenticated"] is True
    assert client.get("/iserver/accounts").status_code == 200


def test_competing_session_needs_ssodh_init_with_compete(
    client: Any, sim: GatewaySimulator
) -> None:
    sim.compete()
    status = _status(client)
    assert (status["authenticated"], status["competing"]) == (False, True)
    _assert_401(client.get("/iserver/accounts"))
    client.post("/iserver/reauthenticate")
    assert _status(client)["competing"] is True
    client.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": False})
    assert _status(client)["competing"] is True
    opened = client.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
    assert (opened.json()["authenticated"], opened.json()["competing"]) == (True, False)


def test_logout_ends_everything_until_ssodh_init(client: Any) -> None:
    assert client.post("/logout").json() == {"status": True}
    status = _status(client)
    assert (status["connected"], status["authenticated"]) == (False, False)
    _assert_401(client.post("/tickle"))
    _assert_401(client.get("/trsrv/stocks", params={"symbols": "AAPL"}))
    client.get("/iserver/reauthenticate")
    assert _status(client)["authenticated"] is False
    client.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
    assert _status(client)["authenticated"] is True


def test_reopening_resets_accounts_first_and_preflight(client: Any) -> None:
    client.get("/iserver/accounts")
    client.snapshot("265598", "31")
    assert "31" in client.snapshot("265598", "31").json()[0]
    client.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
    assert client.snapshot("265598", "31").status_code == 400
    client.get("/iserver/accounts")
    assert set(client.snapshot("265598", "31").json()[0]) == {"conid", "conidEx"}


def test_ssodh_init_needs_publish(client: Any) -> None:
    response = client.post("/iserver/auth/ssodh/init", json={"publish": False})
    assert response.status_code == 500


def test_sso_validate_and_other_session_endpoints(client: Any) -> None:
    body = client.get("/sso/validate").json()
    assert body["RESULT"] is True and body["LOGIN_TYPE"] == 2
    assert client.get("/logout").status_code == 405
    assert client.get("/iserver/nothing/here").status_code == 404
