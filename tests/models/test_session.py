"""Auth status and tickle parsing; the tickle's session token must never be kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backtrader_ibkr_cp.errors import ApiError, AuthenticationError, DataIntegrityError, MarketError
from backtrader_ibkr_cp.models.session import (
    AuthStatus,
    TickleResult,
    parse_auth_status,
    parse_tickle,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize("name", ["auth_status.json", "auth_status_ibkr_spec_example.json"])
def test_authenticated(name: str) -> None:
    status = parse_auth_status(load(name))
    assert status.authenticated and status.connected and not status.competing
    assert status.healthy
    assert status.server_version.startswith("Build 10.25.0")
    assert "MAC" not in repr(status) and ":" not in status.server_name


def test_logged_out_example_omits_message_and_fail() -> None:
    status = parse_auth_status(load("auth_status_unauthenticated_ibkr_doc.json"))
    assert status == AuthStatus(authenticated=False, competing=False, connected=False)
    assert not status.healthy


@pytest.mark.parametrize(
    ("flags", "healthy"),
    [((True, False, True), True), ((True, True, True), False), ((True, False, False), False),
     ((False, False, True), False)],
)  # fmt: skip
def test_healthy(flags: tuple[bool, bool, bool], healthy: bool) -> None:
    authenticated, competing, connected = flags
    assert AuthStatus(authenticated, competing, connected).healthy is healthy


def test_tickle_drops_the_session_token() -> None:
    body = load("tickle_ibkr_spec_example.json")
    result = parse_tickle(body)
    assert result == TickleResult(True, False, True, session_expires_ms=460311)
    assert result.sso_expires_ms == 460311
    assert body["session"] not in repr(result)
    assert not hasattr(result, "session")
    assert result.healthy


def test_tickle_without_brokerage_session() -> None:
    result = parse_tickle({"session": "abc", "ssoExpires": 0, "iserver": {}})
    assert result == TickleResult(False, False, False, session_expires_ms=0)


def test_tickle_failure_body() -> None:
    with pytest.raises(ApiError, match="failed to process request") as info:
        parse_tickle(load("tickle_fail_ibkr_spec_example.json"))
    assert info.value.gateway_message == "failed to process request"


def test_no_session_is_an_authentication_error() -> None:
    with pytest.raises(AuthenticationError, match="https://localhost:5000"):
        parse_auth_status({"error": "no session"})


@pytest.mark.parametrize("body", [[], "x", None, {"authenticated": "yes"}])
def test_malformed(body: object) -> None:
    with pytest.raises(DataIntegrityError):
        parse_auth_status(body)


@given(
    st.dictionaries(
        st.sampled_from(["authenticated", "iserver", "ssoExpires", "error"]),
        st.none()
        | st.booleans()
        | st.floats()
        | st.text(max_size=3)
        | st.dictionaries(
            st.just("authStatus"),
            st.dictionaries(st.sampled_from(["authenticated", "competing"]), st.booleans()),
        ),
    )
)
def test_fuzz_tickle(body: dict[str, Any]) -> None:
    try:
        result = parse_tickle(body)
    except MarketError:
        return
    assert result.session_expires_ms is None or isinstance(result.session_expires_ms, int)
