"""The retry policy: which failures are worth another attempt, and how long to wait first.

An immutable value object in the manner of urllib3's ``Retry``: the request loop calls
:meth:`RetryPolicy.increment` with each failure and gets back the next policy (or the error
raised again when it is not retryable or the retries are used up), then sleeps
:meth:`RetryPolicy.sleep_seconds` with the *new* policy. The policy never sleeps itself, so it
is tested without waiting.

Causes (see :func:`retry_cause`):

- ``"network"``: refused, reset or closed connections (:class:`GatewayConnectionError`) and
  other :class:`NetworkError`\\ s except TLS verification failures (retrying cannot fix a
  certificate);
- ``"timeout"``: :class:`RequestTimeout`;
- ``"server"``: an :class:`ApiError` with a 5xx status;
- ``"malformed"``: a :class:`DataIntegrityError` (a truncated or non-JSON body);
- ``"rate_limit"``: :class:`RateLimitExceeded` (HTTP 429). IBKR then keeps the caller in a
  penalty box for 10-15 minutes, so the wait is the gateway's ``Retry-After`` (capped by
  ``max_retry_after``) or ``rate_limit_wait`` (600 s) when it sent none.

Never retried here: :class:`AuthenticationError` (the session layer recovers it once),
:class:`DataUnavailable`, :class:`ConfigError` and every other 4xx answer.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from ..errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    DataIntegrityError,
    DataUnavailable,
    MarketError,
    NetworkError,
    RateLimitExceeded,
    RequestTimeout,
)
from .tls import TlsError

__all__ = [
    "CAUSES",
    "TRANSIENT_CAUSES",
    "RetryAttempt",
    "RetryPolicy",
    "parse_retry_after",
    "retry_cause",
]

#: Every cause a policy knows.
CAUSES = frozenset({"network", "timeout", "server", "malformed", "rate_limit"})
#: The causes counted against ``total`` (everything but ``rate_limit``).
TRANSIENT_CAUSES = frozenset({"network", "timeout", "server", "malformed"})


def retry_cause(error: BaseException) -> str | None:
    """The retry cause of ``error`` (one of :data:`CAUSES`), or None when it is never retried."""
    if isinstance(error, RateLimitExceeded):
        return "rate_limit"
    if isinstance(error, (AuthenticationError, DataUnavailable, ConfigError, TlsError)):
        return None
    if isinstance(error, RequestTimeout):
        return "timeout"
    if isinstance(error, NetworkError):
        return "network"
    if isinstance(error, ApiError):
        return "server" if error.status is not None and error.status >= 500 else None
    if isinstance(error, DataIntegrityError):
        return "malformed"
    return None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds (``"120"``) or an
    HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``, relative to ``now``, default the local UTC
    clock). A date in the past gives 0.0; a missing or unreadable value gives None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    reference = now if now is not None else datetime.now(timezone.utc)
    return max(0.0, (when - reference).total_seconds())


@dataclass(frozen=True)
class RetryAttempt:
    """One failed attempt a policy counted: its cause, endpoint, HTTP status (None for network
    failures) and the error's message."""

    cause: str
    endpoint: str | None
    status: int | None
    message: str


def _check(name: str, value: object, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, kind)
        or (isinstance(value, float) and not math.isfinite(value))
        or value < 0
    ):
        what = "a whole number >= 0" if integer else "a number of seconds >= 0"
        raise ConfigError(f"RetryPolicy.{name} must be {what}, got {value!r}")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a failed request. Immutable; see the module docstring.

    Args:
        total: retries for transient causes (network, timeout, server, malformed) together;
            3 means up to 4 attempts. 0 disables them.
        backoff_factor: seconds; the n-th transient retry waits ``backoff_factor * 2**(n-1)``
            (0.1, 0.2, 0.4 s, ...), plus jitter, at most ``backoff_max`` seconds.
        backoff_max: the longest back-off, seconds.
        jitter: up to this many seconds (uniformly random) are added to each back-off.
        rate_limit_retries: retries after a 429 (counted separately from ``total``).
        rate_limit_wait: seconds to wait after a 429 without ``Retry-After`` (IBKR's penalty
            box lasts 10-15 minutes).
        max_retry_after: the cap, in seconds, on a gateway's ``Retry-After``.
        retry_on: the causes retried at all (default every cause in :data:`CAUSES`).
        random: returns a float in [0, 1) for the jitter (inject a constant in tests).
        history: the attempts counted so far, oldest first.
    """

    total: int = 3
    backoff_factor: float = 0.1
    backoff_max: float = 10.0
    jitter: float = 0.1
    rate_limit_retries: int = 1
    rate_limit_wait: float = 600.0
    max_retry_after: float = 900.0
    retry_on: frozenset[str] = CAUSES
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)
    history: tuple[RetryAttempt, ...] = ()

    def __post_init__(self) -> None:
        _check("total", self.total, integer=True)
        _check("rate_limit_retries", self.rate_limit_retries, integer=True)
        for name in (
            "backoff_factor",
            "backoff_max",
            "jitter",
            "rate_limit_wait",
            "max_retry_after",
        ):
            _check(name, getattr(self, name))
        unknown = set(self.retry_on) - CAUSES
        if unknown:
            raise ConfigError(
                f"RetryPolicy.retry_on has unknown causes {sorted(unknown)}; use any of "
                f"{', '.join(sorted(CAUSES))}"
            )
        object.__setattr__(self, "retry_on", frozenset(self.retry_on))

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        """A policy that raises every error at once."""
        return cls(total=0, rate_limit_retries=0)

    def without(self, *causes: str) -> RetryPolicy:
        """This policy with ``causes`` no longer retried (e.g. ``without("server")``)."""
        return replace(self, retry_on=self.retry_on - frozenset(causes))

    @property
    def attempts(self) -> int:
        """Failed attempts counted so far."""
        return len(self.history)

    def _used(self, rate_limit: bool) -> int:
        return sum(1 for a in self.history if (a.cause == "rate_limit") == rate_limit)

    def is_retryable(self, error: BaseException) -> bool:
        """True when :meth:`increment` would return a policy for ``error`` (no raise)."""
        cause = retry_cause(error)
        if cause is None or cause not in self.retry_on:
            return False
        if cause == "rate_limit":
            return self._used(True) < self.rate_limit_retries
        return self._used(False) < self.total

    def increment(self, error: MarketError) -> RetryPolicy:
        """The policy after one more failure with ``error``; raises ``error`` itself (its
        ``__cause__`` intact, ``context["attempts"]`` set) when it is not retryable or the
        retries for its cause are used up."""
        if not self.is_retryable(error):
            error.context.setdefault("attempts", self.attempts + 1)
            raise error
        attempt = RetryAttempt(
            cause=retry_cause(error) or "",
            endpoint=error.endpoint,
            status=getattr(error, "status", None),
            message=str(error),
        )
        return replace(self, history=(*self.history, attempt))

    def sleep_seconds(self, error: BaseException) -> float:
        """Seconds to wait before the next attempt after ``error`` (call it on the policy
        :meth:`increment` returned): ``Retry-After`` or ``rate_limit_wait`` for a 429, else
        ``backoff_factor * 2**(n-1)`` plus jitter for the n-th transient retry; 0.0 for an
        error that is never retried."""
        cause = retry_cause(error)
        if cause is None:
            return 0.0
        if cause == "rate_limit":
            after = getattr(error, "retry_after", None)
            if after is None:
                return self.rate_limit_wait
            return min(max(0.0, float(after)), self.max_retry_after)
        n = max(1, self._used(False))
        backoff = self.backoff_factor * (2.0 ** (n - 1)) + self.random() * self.jitter
        return min(self.backoff_max, backoff)
