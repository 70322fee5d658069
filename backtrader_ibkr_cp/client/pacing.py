"""Client-side pacing: send no faster than the gateway allows, so it never answers 429.

IBKR puts a caller that breaks its pacing into a *penalty box* for 10-15 minutes (every request
answers 429 until it ends), so the limits are kept proactively here rather than discovered.
The documented limits (``/work/shared/reference/ibkr-cp-api.md`` section 3; IBKR Web API v1.0
documentation, "Pacing Limitations", and the Web API documentation of 2024):

- 10 requests per second in total for a user of the Client Portal Gateway;
- ``/iserver/marketdata/snapshot``: 10 requests per second;
- ``/iserver/marketdata/history``: 5 concurrent requests (ibind caps its pool at 4 because the
  gateway "sometimes throttles above 4", so the default here is 4);
- ``/tickle``: 1 request per second;
- ``/sso/validate``: 1 request per minute.

Rates are enforced with sliding windows, and the server counts *arrival* times, which the
client cannot see: a request arrives somewhere between the moment it is let through and the
moment its answer comes back (a new connection's TLS handshake alone can take a few hundred
milliseconds on a busy machine). So a request occupies its place in every window that applies
to it from the moment it is let through until a full window after its answer arrived, and each
window is ``margin`` seconds (default 0.1 s) longer than the server's: however late the server
saw it, the server's window is clear of it before the next request can take its place.

Threading model: one :class:`Pacer` is shared by every thread that sends through a
:class:`~backtrader_ibkr_cp.client.transport.Transport`; :meth:`Pacer.slot` blocks on a
:class:`threading.Condition` (no busy waiting) until every limit that applies to the request
allows it.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import ConfigError, MarketError

__all__ = [
    "DEFAULT_HISTORY_CONCURRENCY",
    "IBKR_HISTORY_CONCURRENCY",
    "IBKR_SNAPSHOT_PER_SECOND",
    "IBKR_SSO_VALIDATE_PER_MINUTE",
    "IBKR_TICKLE_PER_SECOND",
    "IBKR_TOTAL_PER_SECOND",
    "KINDS",
    "Pacer",
    "PacingCancelled",
    "PacingLimits",
    "request_kind",
]

#: Requests per second in total through the Client Portal Gateway (IBKR Web API docs, 2024:
#: "Users making requests via the CP Gateway tool are restricted to 10 requests per second").
IBKR_TOTAL_PER_SECOND = 10.0
#: ``GET /iserver/marketdata/snapshot`` requests per second (IBKR pacing table).
IBKR_SNAPSHOT_PER_SECOND = 10.0
#: Concurrent ``GET /iserver/marketdata/history`` requests IBKR allows (IBKR pacing table).
IBKR_HISTORY_CONCURRENCY = 5
#: The default history concurrency: one below IBKR's limit, which the gateway sometimes
#: enforces early (ibind, ``marketdata_mixin``: "sometime throttles above 4").
DEFAULT_HISTORY_CONCURRENCY = 4
#: ``/tickle`` requests per second (IBKR pacing table).
IBKR_TICKLE_PER_SECOND = 1.0
#: ``GET /sso/validate`` requests per minute (IBKR pacing table).
IBKR_SSO_VALIDATE_PER_MINUTE = 1.0
#: The original design's conservative preset: 60 requests per minute in total.
CONSERVATIVE_PER_MINUTE = 60.0
#: Seconds added to every window to absorb arrival-time jitter (1.1 s for a 1 s limit).
DEFAULT_MARGIN = 0.1

#: Request kinds the pacer tells apart (see :func:`request_kind`).
KINDS = ("history", "snapshot", "tickle", "sso_validate", "other")

_KIND_BY_SUFFIX = (
    ("/iserver/marketdata/history", "history"),
    ("/iserver/marketdata/snapshot", "snapshot"),
    ("/tickle", "tickle"),
    ("/sso/validate", "sso_validate"),
)


class PacingCancelled(MarketError):
    """A caller waiting in :meth:`Pacer.slot` was cancelled (its client is closing)."""


def request_kind(path: str) -> str:
    """The pacing kind of an API path (with or without the ``/v1/api`` prefix or a query).

    ``"/iserver/marketdata/history"`` -> ``"history"``, ``".../snapshot"`` -> ``"snapshot"``,
    ``"/tickle"`` -> ``"tickle"``, ``"/sso/validate"`` -> ``"sso_validate"``, anything else
    -> ``"other"`` (only the total limit applies to it).
    """
    bare = path.split("?", 1)[0].rstrip("/")
    for suffix, kind in _KIND_BY_SUFFIX:
        if bare.endswith(suffix):
            return kind
    return "other"


def _positive(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"PacingLimits.{name} must be a positive number, got {value!r}")


class _Use:
    """One request's place in a window: held until ``until`` (clock seconds; infinite while
    the request is in flight)."""

    __slots__ = ("until",)

    def __init__(self) -> None:
        self.until = math.inf


@dataclass(frozen=True)
class _Window:
    """At most ``count`` sends within any ``seconds`` (margin included)."""

    name: str
    count: int
    seconds: float


def _window(name: str, rate: float, period: float, margin: float) -> _Window:
    """``rate`` requests per ``period`` seconds as a (count, window) pair, e.g. 10/s ->
    10 per 1.1 s, 2.5/s -> 2 per 0.9 s, 1/min -> 1 per 60.1 s."""
    per_second = rate / period
    count = max(1, math.floor(rate + 1e-9))
    return _Window(name, count, count / per_second + margin)


@dataclass(frozen=True)
class PacingLimits:
    """The limits a :class:`Pacer` keeps; defaults are IBKR's documented gateway limits.

    Rates are requests per second (``sso_validate_per_minute`` per minute) and may be
    fractional (``total_per_second=0.5`` = one request every 2 s). ``history_concurrency`` is
    the number of history requests in flight at once, 1..5 (IBKR's cap is 5; default 4).
    ``margin`` is the seconds added to every sliding window (default 0.1 s; 0 = exactly the
    server's windows, which loopback jitter can break).
    """

    total_per_second: float = IBKR_TOTAL_PER_SECOND
    snapshot_per_second: float = IBKR_SNAPSHOT_PER_SECOND
    history_concurrency: int = DEFAULT_HISTORY_CONCURRENCY
    tickle_per_second: float = IBKR_TICKLE_PER_SECOND
    sso_validate_per_minute: float = IBKR_SSO_VALIDATE_PER_MINUTE
    margin: float = DEFAULT_MARGIN

    def __post_init__(self) -> None:
        for name in (
            "total_per_second",
            "snapshot_per_second",
            "tickle_per_second",
            "sso_validate_per_minute",
        ):
            _positive(name, getattr(self, name))
        concurrency = self.history_concurrency
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not 1 <= concurrency <= IBKR_HISTORY_CONCURRENCY
        ):
            raise ConfigError(
                f"PacingLimits.history_concurrency must be 1, 2, 3, 4 or 5, got {concurrency!r} "
                f"(IBKR allows {IBKR_HISTORY_CONCURRENCY} concurrent history requests; "
                f"{DEFAULT_HISTORY_CONCURRENCY} is the safe default)"
            )
        margin = self.margin
        if (
            isinstance(margin, bool)
            or not isinstance(margin, (int, float))
            or not math.isfinite(margin)
            or margin < 0
        ):
            raise ConfigError(f"PacingLimits.margin must be >= 0 seconds, got {margin!r}")

    @classmethod
    def conservative(cls) -> PacingLimits:
        """60 requests per minute in total (one per second), the original design's preset;
        the per-endpoint limits stay IBKR's."""
        return cls(total_per_second=CONSERVATIVE_PER_MINUTE / 60.0)

    def windows(self, kind: str) -> tuple[_Window, ...]:
        """The sliding windows that apply to a request of ``kind`` (see :data:`KINDS`)."""
        total = _window("total", self.total_per_second, 1.0, self.margin)
        if kind == "snapshot":
            return total, _window("snapshot", self.snapshot_per_second, 1.0, self.margin)
        if kind == "tickle":
            return total, _window("tickle", self.tickle_per_second, 1.0, self.margin)
        if kind == "sso_validate":
            return total, _window("sso_validate", self.sso_validate_per_minute, 60.0, self.margin)
        return (total,)


class Pacer:
    """Blocks each request until IBKR's limits allow it; shared by every thread of a client.

    ``clock`` returns seconds (monotonic); ``sleep`` is used for time-based waits when given
    (tests pass a fake that advances the fake clock), otherwise waits are timed
    :meth:`threading.Condition.wait` calls. Waiting for a history concurrency slot always uses
    the condition (it ends when another request finishes).

    Observable state: :attr:`throttled_since` (clock value since which requests are being held
    back, None when nothing is), :attr:`waiting` (callers blocked right now),
    :meth:`in_flight` (requests of a kind between send and answer), :attr:`sent` (requests
    let through, per kind) and :attr:`penalty_remaining` (seconds left of a penalty).
    """

    def __init__(
        self,
        limits: PacingLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.limits = limits if limits is not None else PacingLimits()
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._windows = {kind: self.limits.windows(kind) for kind in KINDS}
        self._uses: dict[str, list[_Use]] = {
            window.name: [] for windows in self._windows.values() for window in windows
        }
        self._in_flight: Counter[str] = Counter()
        self._sent: Counter[str] = Counter()
        self._waiting = 0
        self._throttled_since: float | None = None
        self._penalty_until: float | None = None

    # -- observable state ----------------------------------------------------------------

    @property
    def throttled_since(self) -> float | None:
        """Clock value since which requests have been held back, or None."""
        with self._cond:
            self._settle_throttle(self._clock())
            return self._throttled_since

    @property
    def waiting(self) -> int:
        """Number of callers blocked in :meth:`slot` right now."""
        with self._cond:
            return self._waiting

    @property
    def sent(self) -> dict[str, int]:
        """Requests let through so far, per kind (a copy)."""
        with self._cond:
            return dict(self._sent)

    @property
    def penalty_remaining(self) -> float:
        """Seconds until a :meth:`penalize` ends (0.0 when none is active)."""
        with self._cond:
            if self._penalty_until is None:
                return 0.0
            return max(0.0, self._penalty_until - self._clock())

    def in_flight(self, kind: str) -> int:
        """Requests of ``kind`` (``"history"``, ``"snapshot"``, ...) sent and not yet answered."""
        with self._cond:
            return self._in_flight[kind]

    def wait_time(self, path: str) -> float:
        """Seconds a request to ``path`` would wait now (0.0: it may go; ``math.inf``: it waits
        for a request in flight to finish). Does not reserve anything."""
        with self._cond:
            delay = self._delay(request_kind(path), self._clock())
            return math.inf if delay is None else delay

    # -- control ---------------------------------------------------------------------------

    @contextmanager
    def slot(self, path: str, *, cancel: threading.Event | None = None) -> Iterator[None]:
        """Block until a request to ``path`` may be sent, record it as sent, and (for history)
        hold a concurrency slot until the block exits. Send the request inside the block and
        leave it when the answer (or the failure) is in.

        When ``cancel`` is set while waiting (and :meth:`interrupt` is called), raises
        :class:`PacingCancelled` without sending.
        """
        kind = request_kind(path)
        with self._cond:
            uses = self._acquire(kind, cancel)
        try:
            yield
        finally:
            with self._cond:
                now = self._clock()
                for window, use in zip(self._windows[kind], uses, strict=True):
                    use.until = now + window.seconds
                self._in_flight[kind] -= 1
                self._cond.notify_all()

    @classmethod
    def shared(cls, key: str, limits: PacingLimits) -> Pacer:
        """The process-wide Pacer for gateway ``key`` (its normalised API root) and ``limits``.

        IBKR counts requests per gateway (per IP), not per client object, so every client of
        one gateway in this process must draw from one budget: two ``GatewayClient`` objects
        (a store and a CLI call, say) would otherwise each send 10/s and together provoke a
        429 and a 10-minute penalty. Kept while any client holds it.
        """
        with _SHARED_LOCK:
            pacer = _SHARED.get((key, limits))
            if pacer is None:
                pacer = cls(limits)
                _SHARED[(key, limits)] = pacer
            return pacer

    def interrupt(self) -> None:
        """Wake every waiting caller so it re-checks its ``cancel`` event."""
        with self._cond:
            self._cond.notify_all()

    def penalize(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` from now (after the gateway answered 429).

        A shorter penalty never shortens one already in force.
        """
        with self._cond:
            now = self._clock()
            until = now + max(0.0, seconds)
            self._settle_throttle(now)
            if self._penalty_until is None or until > self._penalty_until:
                self._penalty_until = until
            if self._throttled_since is None:
                self._throttled_since = now
            self._cond.notify_all()

    # -- internals (call with the lock held) ------------------------------------------------

    def _settle_throttle(self, now: float) -> None:
        """Forget :attr:`throttled_since` once nobody waits and no penalty is in force."""
        penalized = self._penalty_until is not None and now < self._penalty_until
        if self._waiting == 0 and not penalized:
            self._throttled_since = None

    def _delay(self, kind: str, now: float) -> float | None:
        """Seconds until ``kind`` may go (0.0 = now), or None when it must wait for a request
        in flight to finish (a history concurrency slot, or a window full of requests that are
        still unanswered)."""
        delay = 0.0
        if self._penalty_until is not None and now < self._penalty_until:
            delay = self._penalty_until - now
        blocked = False
        for window in self._windows[kind]:
            uses = self._uses[window.name]
            uses[:] = [use for use in uses if use.until > now]
            excess = len(uses) - window.count
            if excess >= 0:
                free_at = sorted(use.until for use in uses)[excess]
                if math.isinf(free_at):
                    blocked = True
                else:
                    delay = max(delay, free_at - now)
        if kind == "history" and self._in_flight["history"] >= self.limits.history_concurrency:
            blocked = True
        if blocked and delay == 0.0:
            return None
        return delay

    def _acquire(self, kind: str, cancel: threading.Event | None) -> list[_Use]:
        blocked = False
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    raise PacingCancelled("the request was cancelled while waiting to be sent")
                now = self._clock()
                delay = self._delay(kind, now)
                if delay == 0.0:
                    break
                if not blocked:
                    self._settle_throttle(now)
                    blocked = True
                    self._waiting += 1
                    if self._throttled_since is None:
                        self._throttled_since = now
                self._wait(delay)
            uses = []
            for window in self._windows[kind]:
                use = _Use()
                self._uses[window.name].append(use)
                uses.append(use)
            self._sent[kind] += 1
            self._in_flight[kind] += 1
            return uses
        finally:
            if blocked:
                self._waiting -= 1

    def _wait(self, delay: float | None) -> None:
        if delay is None:
            self._cond.wait()
        elif self._sleep is None:
            self._cond.wait(delay)
        else:
            self._cond.release()
            try:
                self._sleep(delay)
            finally:
                self._cond.acquire()


_SHARED_LOCK = threading.Lock()
_SHARED: weakref.WeakValueDictionary[tuple[str, PacingLimits], Pacer] = (
    weakref.WeakValueDictionary()
)
