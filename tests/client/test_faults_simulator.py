"""Every fault the simulator injects, through the real transport over HTTPS."""

from __future__ import annotations

import pytest

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.pacing import Pacer
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
from backtrader_ibkr_cp.timing import FakeClock
from tests.support.policies import FAST_RETRY

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
    sim: GatewaySimulator, fake_clock: FakeClock
) -> None:
    """The retry waits the answer's Retry-After (1 s) on the client's clock, and the pacer
    holds every request until then: both on one fake clock that jumps to the end of each
    wait, so the waits are exact and nothing else waited."""
    fake_clock.autojump = True
    events: list[ClientEvent] = []
    pacer = Pacer(clock=fake_clock, random=lambda: 0.0)
    with Transport(sim.url, retry=FAST_RETRY, pacer=pacer, clock=fake_clock) as transport:
        transport.add_listener(events.append)
        api = ApiClient(transport)
        sim.inject("http_429")
        assert history(api, sim) > 0
        assert pacer.penalty_remaining == 0.0  # the penalty is over: the retry waited it out
    assert fake_clock.waits == [1.0]  # Retry-After: 1
    (limited,) = [e for e in events if e.kind == "rate_limited"]
    assert limited.details["retry_after"] == 1.0
    assert limited.details["penalty_seconds"] == 1.0
    (retry,) = [e for e in events if e.kind == "retry"]
    assert retry.details["sleep_seconds"] == 1.0
    assert sim.stats.requests[HISTORY] == 2


def test_429_twice_raises_rate_limit_exceeded(api: ApiClient, sim: GatewaySimulator) -> None:
    sim.inject("http_429", 2)
    with pytest.raises(RateLimitExceeded) as raised:
        history(api, sim)
    assert raised.value.retry_after == 1.0
    assert "penalty" in str(raised.value) or "lower the request rate" in str(raised.value)
    assert api.transport.pacer.throttled_since is not None


def test_timeout_fault_is_a_request_timeout_from_the_configured_timeout(
    sim: GatewaySimulator,
) -> None:
    """The simulator holds the request for a minute without answering: only the client's
    0.4 s read timeout can end it as a RequestTimeout (the hold's end would be a dropped
    connection)."""
    sim.inject("timeout", seconds=60.0)
    transport = Transport(sim.url, timeout=(2.0, 0.4), retry=RetryPolicy.no_retries())
    with transport, pytest.raises(RequestTimeout) as raised:
        ApiClient(transport).history(sim.conid("AAPL"), "5min", "1h")
    assert raised.value.timeout == 0.4
    assert sim.stats.requests[HISTORY] == 1


def test_timeout_then_success(sim: GatewaySimulator) -> None:
    sim.inject("timeout", seconds=60.0)
    with Transport(sim.url, timeout=(2.0, 0.3), retry=FAST_RETRY) as transport:
        assert ApiClient(transport).history(sim.conid("AAPL"), "5min", "1h").bars
    assert sim.stats.requests[HISTORY] == 2


def test_latency_fault_is_just_slow(api: ApiClient, sim: GatewaySimulator) -> None:
    """A late answer (0.3 s, within the 5 s read timeout) is a normal answer: the request
    that took the latency fault is the only one sent, and nothing is retried."""
    events: list[ClientEvent] = []
    api.transport.add_listener(events.append)
    sim.inject("latency", seconds=0.3)
    assert history(api, sim) > 0
    assert sim.pending_faults == 0  # the history request was the one held back
    assert sim.stats.requests[HISTORY] == 1
    assert not [e for e in events if e.kind == "retry"]


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
