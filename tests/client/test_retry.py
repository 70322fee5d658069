"""RetryPolicy: every cause, back-off, Retry-After, exhaustion. Pure: nothing sleeps."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from backtrader_ibkr_cp.client.retry import RetryPolicy, parse_retry_after, retry_cause
from backtrader_ibkr_cp.client.tls import TlsError
from backtrader_ibkr_cp.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    DataIntegrityError,
    DataUnavailable,
    GatewayConnectionError,
    MarketError,
    NetworkError,
    RateLimitExceeded,
    RequestTimeout,
)

EP = "/iserver/marketdata/history"


def policy(**kwargs: object) -> RetryPolicy:
    return RetryPolicy(random=lambda: 0.5, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (GatewayConnectionError("refused", endpoint=EP), "network"),
        (NetworkError("odd", endpoint=EP), "network"),
        (RequestTimeout("slow", endpoint=EP, timeout=1.0), "timeout"),
        (ApiError("boom", endpoint=EP, status=500), "server"),
        (ApiError("busy", endpoint=EP, status=503), "server"),
        (DataIntegrityError("truncated", endpoint=EP), "malformed"),
        (RateLimitExceeded("slow down", endpoint=EP, retry_after=1.0), "rate_limit"),
        (ApiError("bad", endpoint=EP, status=400), None),
        (ApiError("gone", endpoint=EP, status=404), None),
        (AuthenticationError("401", endpoint=EP, status=401), None),
        (DataUnavailable("No data.", endpoint=EP, status=200), None),
        (TlsError("bad cert", endpoint=EP), None),
        (ConfigError("bad arg"), None),
    ],
)
def test_causes(error: MarketError, cause: str | None) -> None:
    assert retry_cause(error) == cause
    if cause is None:
        with pytest.raises(type(error)) as raised:
            RetryPolicy().increment(error)
        assert raised.value is error
    else:
        assert RetryPolicy().increment(error).attempts == 1


def test_backoff_doubles_from_100_ms_with_jitter() -> None:
    err = ApiError("busy", endpoint=EP, status=503)
    p = policy(total=5)
    waits = []
    for _ in range(4):
        p = p.increment(err)
        waits.append(p.sleep_seconds(err))
    assert waits == pytest.approx([0.15, 0.25, 0.45, 0.85])


def test_backoff_is_capped() -> None:
    err = GatewayConnectionError("reset", endpoint=EP)
    p = policy(total=20, backoff_max=1.0)
    for _ in range(10):
        p = p.increment(err)
    assert p.sleep_seconds(err) == 1.0


def test_jitter_uses_the_injected_random() -> None:
    err = GatewayConnectionError("reset", endpoint=EP)
    low = RetryPolicy(random=lambda: 0.0).increment(err).sleep_seconds(err)
    high = RetryPolicy(random=lambda: 0.999).increment(err).sleep_seconds(err)
    assert low == pytest.approx(0.1)
    assert high == pytest.approx(0.1999)


def test_exhaustion_raises_the_original_error_with_its_cause() -> None:
    root = OSError("connection reset by peer")
    err = GatewayConnectionError("reset", endpoint=EP)
    err.__cause__ = root
    p = RetryPolicy()
    for _ in range(3):
        p = p.increment(err)
    with pytest.raises(GatewayConnectionError) as raised:
        p.increment(err)
    assert raised.value is err
    assert raised.value.__cause__ is root
    assert raised.value.context["attempts"] == 4


def test_transient_causes_share_the_total() -> None:
    p = RetryPolicy(total=2)
    p = p.increment(GatewayConnectionError("reset", endpoint=EP))
    p = p.increment(ApiError("busy", endpoint=EP, status=503))
    with pytest.raises(DataIntegrityError):
        p.increment(DataIntegrityError("truncated", endpoint=EP))
    assert [a.cause for a in p.history] == ["network", "server"]
    assert p.history[1].status == 503 and p.history[1].endpoint == EP


def test_rate_limit_honours_retry_after_then_gives_up() -> None:
    err = RateLimitExceeded("429", endpoint=EP, retry_after=1.0)
    p = RetryPolicy().increment(err)
    assert p.sleep_seconds(err) == 1.0
    with pytest.raises(RateLimitExceeded):
        p.increment(err)


def test_rate_limit_without_retry_after_waits_out_the_penalty_box() -> None:
    err = RateLimitExceeded("429", endpoint=EP, retry_after=None)
    p = RetryPolicy()
    assert p.increment(err).sleep_seconds(err) == 600.0
    assert RetryPolicy(rate_limit_wait=900.0).increment(err).sleep_seconds(err) == 900.0


def test_retry_after_is_capped() -> None:
    err = RateLimitExceeded("429", endpoint=EP, retry_after=5000.0)
    assert RetryPolicy().increment(err).sleep_seconds(err) == 900.0
    assert RetryPolicy(max_retry_after=30.0).increment(err).sleep_seconds(err) == 30.0


def test_rate_limit_retries_are_counted_apart_from_total() -> None:
    p = RetryPolicy(total=1, rate_limit_retries=2)
    p = p.increment(RateLimitExceeded("429", endpoint=EP))
    p = p.increment(RateLimitExceeded("429", endpoint=EP))
    p = p.increment(GatewayConnectionError("reset", endpoint=EP))
    assert p.attempts == 3


def test_no_retries() -> None:
    p = RetryPolicy.no_retries()
    for err in (
        GatewayConnectionError("x", endpoint=EP),
        RateLimitExceeded("x", endpoint=EP),
        ApiError("x", endpoint=EP, status=500),
    ):
        with pytest.raises(MarketError):
            p.increment(err)


def test_without_a_cause() -> None:
    p = RetryPolicy().without("server")
    with pytest.raises(ApiError):
        p.increment(ApiError("unknown", endpoint=EP, status=500))
    assert p.increment(GatewayConnectionError("x", endpoint=EP)).attempts == 1


def test_policy_is_immutable() -> None:
    p = RetryPolicy()
    q = p.increment(GatewayConnectionError("x", endpoint=EP))
    assert p.attempts == 0 and q.attempts == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.total = 5  # type: ignore[misc]


def test_sleep_for_a_non_retryable_error_is_zero() -> None:
    assert RetryPolicy().sleep_seconds(ApiError("bad", endpoint=EP, status=400)) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"total": -1},
        {"total": 1.5},
        {"backoff_factor": -0.1},
        {"rate_limit_wait": float("nan")},
        {"retry_on": frozenset({"bogus"})},
    ],
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="RetryPolicy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


NOW = datetime(2015, 10, 21, 7, 27, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("1", 1.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("inf", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds
