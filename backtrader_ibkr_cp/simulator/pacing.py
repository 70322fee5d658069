"""IBKR's pacing limits as the simulator enforces them, and the penalty box.

Limits (reference/ibkr-cp-api.md, section 3; reference/orders/ibkr-cp-orders.md §1): 10
requests/s in total, 10/s for snapshots, at most 5 history requests in flight, ``/tickle`` 1/s,
``/sso/validate`` 1/min, and 1 request per 5 s for each of ``/iserver/account/orders``,
``/iserver/account/trades`` and ``/portfolio/accounts``. Rates are counted over
a sliding window of request *arrival* times on a real (monotonic) clock. A violation answers
429 and puts the caller in the penalty box: every request answers 429 until it ends (IBKR:
10-15 minutes; the simulator's ``penalty_seconds``). Requests answered 429 are not counted.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Admission", "Pacer", "SimLimits"]

HISTORY_PATH = "/iserver/marketdata/history"
SNAPSHOT_PATH = "/iserver/marketdata/snapshot"
TICKLE_PATH = "/tickle"
SSO_VALIDATE_PATH = "/sso/validate"
LIVE_ORDERS_PATH = "/iserver/account/orders"
TRADES_PATH = "/iserver/account/trades"
PORTFOLIO_ACCOUNTS_PATH = "/portfolio/accounts"
#: Paths limited to N requests per 5 seconds: path -> the SimLimits field holding N.
_FIVE_SECOND_LIMITS = {
    LIVE_ORDERS_PATH: "live_orders_per_5s",
    TRADES_PATH: "trades_per_5s",
    PORTFOLIO_ACCOUNTS_PATH: "portfolio_accounts_per_5s",
}


@dataclass(frozen=True)
class SimLimits:
    """Pacing and size limits; defaults are IBKR's documented CP Gateway limits.

    Use a large number to switch a limit off in a test that is not about pacing.
    """

    total_per_second: int = 10
    snapshot_per_second: int = 10
    history_concurrency: int = 5
    tickle_per_second: int = 1
    sso_validate_per_minute: int = 1
    #: Most bars in one history response (IBKR: 1000); the most recent are kept.
    history_max_points: int = 1000
    #: ``GET /iserver/account/orders``, ``/iserver/account/trades``, ``/portfolio/accounts``
    #: requests per 5 seconds (IBKR: 1 each).
    live_orders_per_5s: int = 1
    trades_per_5s: int = 1
    portfolio_accounts_per_5s: int = 1

    def __post_init__(self) -> None:
        for name in (
            "total_per_second",
            "snapshot_per_second",
            "history_concurrency",
            "tickle_per_second",
            "sso_validate_per_minute",
            "history_max_points",
            "live_orders_per_5s",
            "trades_per_5s",
            "portfolio_accounts_per_5s",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"SimLimits.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Admission:
    """The pacer's verdict: ``allowed``, or ``retry_after`` seconds (429) and whether this
    request started the penalty box. ``release`` must be called when an admitted request is
    answered (it frees a history slot)."""

    allowed: bool
    retry_after: int = 0
    violation: str = ""
    release: Callable[[], None] | None = None
    opened_penalty: bool = False


class _Window:
    """Arrivals (time, path) within the last ``span`` seconds."""

    def __init__(self, span: float) -> None:
        self.span = span
        self.arrivals: deque[tuple[float, str]] = deque()

    def count(self, now: float) -> int:
        while self.arrivals and self.arrivals[0][0] <= now - self.span:
            self.arrivals.popleft()
        return len(self.arrivals)

    def add(self, now: float, path: str) -> None:
        self.arrivals.append((now, path))

    def describe(self, now: float) -> str:
        """The arrivals in the window, as ``-0.912 s /path`` (seconds before ``now``)."""
        self.count(now)
        return ", ".join(f"{at - now:+.3f} s {path}" for at, path in self.arrivals)


class Pacer:
    """Thread-safe enforcement of :class:`SimLimits` with a penalty box.

    ``monotonic`` is the real clock in seconds; ``on_history_peak`` is told the number of
    history requests in flight whenever one is admitted.
    """

    def __init__(
        self,
        limits: SimLimits,
        penalty_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
        on_history_peak: Callable[[int], None] | None = None,
    ) -> None:
        if penalty_seconds < 0:
            raise ValueError(f"penalty_seconds must be >= 0, got {penalty_seconds!r}")
        self.limits = limits
        self.penalty_seconds = float(penalty_seconds)
        self._monotonic = monotonic
        self._on_history_peak = on_history_peak
        self._lock = threading.Lock()
        self._total = _Window(1.0)
        self._snapshot = _Window(1.0)
        self._tickle = _Window(1.0)
        self._sso = _Window(60.0)
        self._five_seconds = {path: _Window(5.0) for path in _FIVE_SECOND_LIMITS}
        self._history_in_flight = 0
        self._penalty_until = 0.0

    @property
    def history_in_flight(self) -> int:
        """History requests admitted and not yet answered."""
        with self._lock:
            return self._history_in_flight

    def penalty_remaining(self) -> float:
        """Seconds left in the penalty box (0 when free)."""
        with self._lock:
            return max(0.0, self._penalty_until - self._monotonic())

    def clear_penalty(self) -> None:
        """Let the caller out of the penalty box now."""
        with self._lock:
            self._penalty_until = 0.0

    def _violation(self, now: float, path: str) -> str:
        limits = self.limits
        if self._total.count(now) >= limits.total_per_second:
            return f"more than {limits.total_per_second} requests per second"
        if path == SNAPSHOT_PATH and self._snapshot.count(now) >= limits.snapshot_per_second:
            return f"more than {limits.snapshot_per_second} snapshot requests per second"
        if path == TICKLE_PATH and self._tickle.count(now) >= limits.tickle_per_second:
            return f"more than {limits.tickle_per_second} tickle requests per second"
        if path == SSO_VALIDATE_PATH and self._sso.count(now) >= limits.sso_validate_per_minute:
            return f"more than {limits.sso_validate_per_minute} sso/validate requests per minute"
        if path == HISTORY_PATH and self._history_in_flight >= limits.history_concurrency:
            return f"more than {limits.history_concurrency} history requests in flight"
        if path in _FIVE_SECOND_LIMITS:
            allowed = getattr(limits, _FIVE_SECOND_LIMITS[path])
            if self._five_seconds[path].count(now) >= allowed:
                return f"more than {allowed} {path} requests per 5 seconds"
        return ""

    def admit(self, path: str) -> Admission:
        """Count a request to API ``path`` arriving now; 429 verdict when it breaks a limit."""
        with self._lock:
            now = self._monotonic()
            if now < self._penalty_until:
                return Admission(False, math.ceil(self._penalty_until - now), "penalty box")
            violation = self._violation(now, path)
            if violation:
                self._penalty_until = now + self.penalty_seconds
                retry_after = max(1, math.ceil(self.penalty_seconds))
                arrivals = self._total.describe(now)
                violation += f" (the requests admitted in the last second: {arrivals})"
                return Admission(False, retry_after, violation, opened_penalty=True)
            self._total.add(now, path)
            windows = {SNAPSHOT_PATH: self._snapshot, TICKLE_PATH: self._tickle}
            windows[SSO_VALIDATE_PATH] = self._sso
            windows.update(self._five_seconds)
            if path in windows:
                windows[path].add(now, path)
            if path != HISTORY_PATH:
                return Admission(True)
            self._history_in_flight += 1
            peak = self._history_in_flight
        if self._on_history_peak is not None:
            self._on_history_peak(peak)
        return Admission(True, release=self._release_history)

    def _release_history(self) -> None:
        with self._lock:
            self._history_in_flight -= 1
