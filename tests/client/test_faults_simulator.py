"""Every fault the simulator injects, through the real transport over HTTPS."""

from __future__ import annotations

import time

import pytest

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.client.transport import ClientEvent, Transport
from backtrader_ibkr_cp.errors import (
    ApiError,
    AuthenticationError,
    DataIntegrityError,
    GatewayConnectionError,
    RateLimitExceeded,
    RequestTimeout,
)
from backtrader_ibkr_cp.simulator import GatewaySimulator

HISTORY = "/iserver/marketdata/history"


def history(api: ApiClient, sim: GatewaySimulator) -> int:
    return len(api.history(sim.conid("AAPL"), "5min", "1h").bars)


@pytest.mark.parametrize(
    ("kind", "count"),
    [
        ("http_500", 1),
        ("http_500", 2),
        ("http_503", 2),
        ("reset", 1),
        ("reset", 2),
        ("malformed", 1),
        ("malformed", 2),
    ],
)
def test_transient_faults_are_retried_to_success(
    api: ApiClient, sim: GatewaySimulator, kind: str, count: int
) -> None:
    events: list[ClientEvent] = []
    api.transport.add_listener(events.append)
    sim.inject(kind, count)
    assert history(api, sim) > 0
    assert sim.stats.requests[HISTORY] == count + 1
    assert len([e for e in events if e.kind == "retry"]) == count


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("http_500", ApiError),
        ("http_503", ApiError),
        ("reset", GatewayConnectionError),
        ("malformed", DataIntegrityError),
    ],
)
def test_persistent_faults_raise_after_three_retries(
    api: ApiClient, sim: GatewaySimulator, kind: str, error: type[Exception]
) -> None:
    sim.inject(kind, 10)
    with pytest.raises(error) as raised:
        history(api, sim)
    assert sim.stats.requests[HISTORY] == 4
    assert HISTORY in str(raised.value)


def test_server_error_keeps_the_gateways_words(api: ApiClient, sim: GatewaySimulator) -> None:
    sim.inject("http_503", 10)
    with pytest.raises(ApiError) as raised:
        history(api, sim)
    assert raised.value.status == 503
    assert raised.value.gateway_message
    assert raised.value.gateway_message in str(raised.value)


def test_429_honours_retry_after_and_holds_every_request(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    events: list[ClientEvent] = []
    api.transport.add_listener(events.append)
    sim.inject("http_429")
    started = time.monotonic()
    assert history(api, sim) > 0
    assert time.monotonic() - started >= 1.0  # Retry-After: 1
    (limited,) = [e for e in events if e.kind == "rate_limited"]
    assert limited.details["retry_after"] == 1.0
    assert sim.stats.requests[HISTORY] == 2


def test_429_twice_raises_rate_limit_exceeded(api: ApiClient, sim: GatewaySimulator) -> None:
    sim.inject("http_429", 2)
    with pytest.raises(RateLimitExceeded) as raised:
        history(api, sim)
    assert raised.value.retry_after == 1.0
    assert "penalty" in str(raised.value) or "lower the request rate" in str(raised.value)
    assert api.transport.pacer.throttled_since is not None


def test_timeout_fault_is_a_request_timeout_within_the_configured_timeout(
    sim: GatewaySimulator,
) -> None:
    sim.inject("timeout", seconds=3.0)
    with Transport(sim.url, timeout=(2.0, 0.4), retry=RetryPolicy.no_retries()) as transport:
        started = time.monotonic()
        with pytest.raises(RequestTimeout) as raised:
            ApiClient(transport).history(sim.conid("AAPL"), "5min", "1h")
        assert time.monotonic() - started < 1.5
    assert raised.value.timeout == 0.4


def test_timeout_then_success(sim: GatewaySimulator) -> None:
    sim.inject("timeout", seconds=2.0)
    retry = RetryPolicy(backoff_factor=0.01, jitter=0.0)
    with Transport(sim.url, timeout=(2.0, 0.3), retry=retry) as transport:
        assert ApiClient(transport).history(sim.conid("AAPL"), "5min", "1h").bars


def test_latency_fault_is_just_slow(api: ApiClient, sim: GatewaySimulator) -> None:
    sim.inject("latency", seconds=0.3)
    started = time.monotonic()
    assert history(api, sim) > 0
    assert time.monotonic() - started >= 0.3
    assert sim.stats.requests[HISTORY] == 1


def test_401_is_text_plain_with_the_gateways_text(
    transport: Transport, sim: GatewaySimulator
) -> None:
    sim.expire_session()
    with pytest.raises(AuthenticationError) as raised:
        transport.request("GET", "/iserver/accounts")
    assert raised.value.status == 401
    assert raised.value.gateway_message and raised.value.gateway_message in str(raised.value)
    assert sim.stats.requests["/iserver/accounts"] == 1


def test_404_from_the_gateway(transport: Transport) -> None:
    with pytest.raises(ApiError, match="HTTP 404") as raised:
        transport.request("GET", "/iserver/nosuchendpoint")
    assert raised.value.status == 404


@pytest.mark.parametrize("kind", ["invalid_bar", "duplicate_bars", "out_of_order"])
def test_bad_bars_reach_the_parser_as_data(
    api: ApiClient, sim: GatewaySimulator, kind: str
) -> None:
    """The transport does not judge bars: the validator downstream does."""
    sim.inject(kind)
    assert history(api, sim) >= 12
