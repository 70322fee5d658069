"""The client against a real, logged-in Client Portal Gateway.

Runs only when ``RUN_IBKR_INTEGRATION_TESTS=1`` and ``IBKR_GATEWAY_URL`` (e.g.
``https://localhost:5000``) are set; ``IBKR_GATEWAY_VERIFY`` may carry a ``verify=`` value
(``sha256:...`` or a CA bundle path). It reads market data only: no orders, no account data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.session import SessionKeeper
from backtrader_ibkr_cp.client.transport import Transport
from backtrader_ibkr_cp.errors import DataUnavailable

URL = os.environ.get("IBKR_GATEWAY_URL", "")
ENABLED = os.environ.get("RUN_IBKR_INTEGRATION_TESTS") == "1" and bool(URL)

pytestmark = pytest.mark.skipif(
    not ENABLED,
    reason="set RUN_IBKR_INTEGRATION_TESTS=1 and IBKR_GATEWAY_URL to test a real gateway",
)

AAPL = 265598


@pytest.fixture(scope="module")
def api() -> Iterator[ApiClient]:
    verify = os.environ.get("IBKR_GATEWAY_VERIFY") or None
    transport = Transport(URL, verify=verify, timeout=(5.0, 30.0))
    client = ApiClient(transport)
    SessionKeeper(client).ensure_authenticated()
    yield client
    transport.close()


def test_auth_status(api: ApiClient) -> None:
    status = api.auth_status()
    assert status.authenticated and status.connected


def test_tickle(api: ApiClient) -> None:
    assert api.tickle().authenticated


def test_secdef_search_finds_aapl_on_nasdaq(api: ApiClient) -> None:
    contracts = api.secdef_search("AAPL")
    assert any(c.contract_id == AAPL for c in contracts)


def test_history_daily_bars(api: ApiClient) -> None:
    response = api.history(AAPL, "1d", "1w")
    assert response.bars
    assert all(b.timestamp.tzinfo is not None for b in response.bars)


def test_history_with_start_time(api: ApiClient) -> None:
    end = datetime.now(timezone.utc) - timedelta(days=7)
    try:
        response = api.history(AAPL, "1h", "2d", start_time=end)
    except DataUnavailable:
        pytest.skip("the gateway has no bars for that window")
    assert all(b.timestamp < end for b in response.bars)


def test_snapshot_past_the_preflight(api: ApiClient) -> None:
    try:
        (snap,) = api.snapshot_ready([AAPL], timeout=10.0)
    except DataUnavailable as exc:
        pytest.skip(f"no market data subscription: {exc}")
    assert snap.conid == AAPL


def test_server_time_is_near_the_local_clock(api: ApiClient) -> None:
    assert abs(api.server_time() - datetime.now(timezone.utc)) < timedelta(minutes=5)
