"""Secrets never reach a cassette: cookies, session tokens, account ids, user identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from backtrader_ibkr_cp.cassettes import ACCOUNT_PLACEHOLDER, Cassette, Scrubber
from backtrader_ibkr_cp.client.responses import scrub as client_scrub
from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.wire import ACCOUNT_ID as ACCOUNT


def test_recording_the_session_endpoints_leaves_no_secret_in_the_file(
    sim: GatewaySimulator, tmp_path: Path, quiet_tls: None
) -> None:
    path = tmp_path / "session.json"
    api = sim.api_url
    with Cassette(path, record_mode="once"):
        http = requests.Session()
        tickle = http.post(api + "/tickle", json={}, verify=False)
        status = http.post(api + "/iserver/auth/status", json={}, verify=False)
        accounts = http.get(api + "/iserver/accounts", verify=False)
        sso = http.get(api + "/sso/validate", verify=False)
        account_id = accounts.json()["accounts"][0]
        http.get(f"{api}/portfolio/{account_id}/positions/0", verify=False)
        http.post(api + "/iserver/marketdata/unsubscribe", json={"acct": account_id}, verify=False)
    raw = path.read_text()

    session_token = tickle.json()["session"]
    cookie_values = [c.value for c in http.cookies]
    assert status.ok and sso.ok
    assert len(session_token) == 32 and session_token not in raw
    assert cookie_values and all(value not in raw for value in cookie_values)
    assert "set-cookie" not in raw.lower() and '"cookie"' not in raw.lower()
    assert ACCOUNT.match(account_id) and ACCOUNT.search(raw) is None
    assert f"/portfolio/{ACCOUNT_PLACEHOLDER}/positions/0" in raw
    assert sso.json()["USER_NAME"] not in raw
    assert f":{sim.port}" not in raw  # the origin is neutral: no trace of the recording port


def test_replayed_bodies_carry_placeholders_and_still_parse(
    sim: GatewaySimulator, tmp_path: Path, quiet_tls: None
) -> None:
    path = tmp_path / "accounts.json"
    with Cassette(path, record_mode="once"):
        requests.get(sim.api_url + "/iserver/accounts", verify=False)
    with Cassette(path):
        body = requests.get("https://localhost:5000/v1/api/iserver/accounts").json()
    assert body["accounts"] == [ACCOUNT_PLACEHOLDER]
    assert body["selectedAccount"] == ACCOUNT_PLACEHOLDER


def _response(body: bytes, headers: dict[str, list[str]] | None = None) -> dict[str, object]:
    return {
        "status": {"code": 200, "message": "OK"},
        "headers": headers or {"Content-Type": ["application/json"]},
        "body": {"string": body},
    }


def test_scrubber_learns_cookie_values_and_removes_them_everywhere() -> None:
    scrubber = Scrubber()
    first = scrubber.response(
        _response(
            b'{"ok": true}',
            {"Set-Cookie": ["JSESSIONID=abcdef0123456789XYZ; Path=/"], "Server": ["x"]},
        )
    )
    later = scrubber.response(_response(b'{"echo": "token abcdef0123456789XYZ seen"}'))
    assert set(first["headers"]) == {"Content-Length"}  # type: ignore[arg-type]
    assert b"abcdef0123456789XYZ" not in later["body"]["string"]  # type: ignore[index]


def test_scrubber_replaces_nested_account_ids_and_identity_keys_keeping_types() -> None:
    body = (
        b'{"acctProps": {"U1234567": {"x": 1}}, "list": ["DU7654321", "AAPL"], '
        b'"userId": 42, "USER_NAME": "trader", "session": "0123456789abcdef", "conid": 265598}'
    )
    out = Scrubber().response(_response(body))["body"]["string"]  # type: ignore[index]
    text = out.decode()
    assert ACCOUNT.search(text) is None
    assert '"userId":0' in text and '"USER_NAME":"REDACTED"' in text
    assert '"session":"REDACTED"' in text and '"conid":265598' in text
    again = Scrubber().response(_response(out))["body"]["string"]  # type: ignore[index]
    assert again == out  # idempotent


def test_scrubber_keeps_non_json_bodies_but_masks_account_ids() -> None:
    out = Scrubber().response(_response(b"account U1234567 not allowed", {}))
    assert out["body"]["string"] == f"account {ACCOUNT_PLACEHOLDER} not allowed".encode()  # type: ignore[index]


@pytest.mark.parametrize(
    "account", ["U1234567", "DU1234567", "F1234567", "DF1234567", "I1234567", "DI1234567",
                "DUO873728", "DUO873728C"],
)  # fmt: skip
def test_every_kind_of_account_id_is_scrubbed_from_paths_and_bodies(account: str) -> None:
    """Bug: the cassette scrubber knew U/DU ids only; an advisor's /iserver/accounts body was
    written to disk as {"accounts":["DF1234567",...],"selectedAccount":"DF1234567"}."""
    body = json.dumps({"accounts": [account], "selectedAccount": account}).encode()
    out = Scrubber().response(_response(body))["body"]["string"]  # type: ignore[index]
    assert account.encode() not in out
    assert client_scrub(f"order for {account} rejected") == "order for <account> rejected"
