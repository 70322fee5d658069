"""Time, waits and back-off: every wait and retry in the package goes through this module.

Three pieces, all small and injectable:

- :class:`Clock` gives monotonic seconds (:meth:`Clock.now`) and waits that end early when a
  :class:`Signal` is set (:meth:`Clock.wait`). :data:`SYSTEM_CLOCK` is the real one;
  :class:`FakeClock` is moved by hand (or jumps by itself, ``autojump=True``) so loops that wait
  are tested without waiting.
- :class:`Signal` is a flag a waiting thread can be woken by (new work arrived);
  :class:`CancelToken` is a signal that stays set once cancelled and cancels its children:
  one per client and per store, a child per stream or worker. ``close()``/``stop()`` cancel the
  token first, so every wait in flight ends at once, then close, then join.
- :class:`Backoff` is an immutable back-off schedule (initial, factor, cap, jitter, attempts)
  beside :class:`~backtrader_ibkr_cp.client.retry.RetryPolicy`, which decides *whether* an HTTP
  failure is retried; a loop asks the policy and waits ``clock.wait(delay, token)``.

No client, store, feed, broker or simulator-server code calls ``time.sleep``; no lock is held
while waiting. (The only sleeps are in the real-gateway launcher, a developer tool: its
start-up probe and its foreground loop in ``python -m ...simulator.realgateway run``.)
"""

from __future__ import annotations

import math
import random as _random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import Cancelled, ConfigError

__all__ = [
    "SYSTEM_CLOCK",
    "Backoff",
    "CancelToken",
    "Cancelled",
    "Clock",
    "FakeClock",
    "Signal",
    "SystemClock",
]


class Signal:
    """A flag that wakes every :meth:`Clock.wait` watching it. ``set()`` is sticky until
    ``clear()``; waiters registered at the time of ``set()`` are woken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._waiters: set[threading.Event] = set()

    def set(self) -> None:
        with self._lock:
            self._set = True
            waiters = list(self._waiters)
        for waiter in waiters:
            waiter.set()

    def clear(self) -> None:
        with self._lock:
            self._set = False

    def is_set(self) -> bool:
        return self._set

    def _watch(self, waiter: threading.Event) -> bool:
        """Register ``waiter``; True when the signal is already set (nothing registered)."""
        with self._lock:
            if self._set:
                return True
            self._waiters.add(waiter)
            return False

    def _unwatch(self, waiter: threading.Event) -> None:
        with self._lock:
            self._waiters.discard(waiter)


class CancelToken(Signal):
    """A :class:`Signal` that, once cancelled, stays cancelled and cancels its children.

    ``reason`` says why (shown in :class:`Cancelled` errors); callbacks registered with
    :meth:`on_cancel` run once, on the cancelling thread (a callback registered after the
    cancellation runs at once)."""

    def __init__(self, parent: CancelToken | None = None) -> None:
        super().__init__()
        self.reason = ""
        self._callbacks: list[Callable[[], None]] = []
        if parent is not None:
            parent.on_cancel(lambda: self.cancel(parent.reason))

    @property
    def cancelled(self) -> bool:
        return self.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        """Cancel (idempotent): wake every wait on this token and its children."""
        with self._lock:
            if self._set:
                return
            self.reason = reason
            callbacks, self._callbacks = self._callbacks, []
        self.set()
        for callback in callbacks:
            callback()

    def clear(self) -> None:
        raise TypeError("a CancelToken cannot be un-cancelled; make a new one")

    def child(self) -> CancelToken:
        """A token cancelled with this one (and cancellable on its own)."""
        return CancelToken(self)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self._set:
                self._callbacks.append(callback)
                return
        callback()

    def raise_if_cancelled(self, what: str = "the operation") -> None:
        if self._set:
            raise Cancelled(f"{what} was cancelled ({self.reason})")


class Clock:
    """Monotonic seconds and cancellable waits. The base class is the real clock."""

    def now(self) -> float:
        """Monotonic seconds (only differences mean something)."""
        return time.monotonic()

    def wait(self, seconds: float, *signals: Signal | None) -> bool:
        """Wait up to ``seconds`` (``math.inf``: until a signal), ending early when any of
        ``signals`` is set. Returns True when a signal is set (woken or cancelled), False when
        the time passed. ``None`` entries are ignored, so an optional token can be passed."""
        watched = [s for s in signals if s is not None]
        if any(s.is_set() for s in watched):
            return True
        if seconds <= 0:
            return False
        waiter = threading.Event()
        try:
            if any(s._watch(waiter) for s in watched):
                return True
            self._block(waiter, seconds)
        finally:
            for s in watched:
                s._unwatch(waiter)
        return any(s.is_set() for s in watched)

    def _block(self, waiter: threading.Event, seconds: float) -> None:
        waiter.wait(None if math.isinf(seconds) else seconds)


class SystemClock(Clock):
    """The real clock (``time.monotonic`` and ``threading.Event`` waits)."""


#: The clock everything uses unless a test injects another one.
SYSTEM_CLOCK: Clock = SystemClock()


class FakeClock(Clock):
    """A clock moved by :meth:`advance` (tests). Waits block until time is advanced past
    their deadline or a signal wakes them.

    With ``autojump=True`` a wait that nothing else could end (no other thread is running
    the clock) jumps time to its deadline at once, so retry and back-off loops run instantly
    while :attr:`waits` records every wait asked for (seconds)."""

    def __init__(self, start: float = 1000.0, *, autojump: bool = False) -> None:
        self._now = float(start)
        self._cond = threading.Condition()
        self._deadlines: dict[threading.Event, float] = {}
        self.autojump = autojump
        #: Every positive wait asked for, in seconds, in order.
        self.waits: list[float] = []

    def now(self) -> float:
        with self._cond:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward ``seconds`` and wake the waits that are due; returns the new
        time."""
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._cond:
            self._now += seconds
            self._wake_due()
            return self._now

    def sleepers(self) -> int:
        """Waits in progress (to let a test advance only once a thread is waiting)."""
        with self._cond:
            return len(self._deadlines)

    def wait_for_sleepers(self, count: int = 1, timeout: float = 5.0) -> None:
        """Block (in real time, at most ``timeout`` s) until ``count`` waits are in progress."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._deadlines) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {count} waiter(s) on the fake clock after {timeout} s")
                self._cond.wait(left)

    def _wake_due(self) -> None:
        for waiter, deadline in list(self._deadlines.items()):
            if deadline <= self._now:
                del self._deadlines[waiter]  # no longer a sleeper, even before it wakes up
                waiter.set()

    def _block(self, waiter: threading.Event, seconds: float) -> None:
        with self._cond:
            self.waits.append(seconds)
            deadline = self._now + seconds
            if self.autojump and not math.isinf(seconds):
                self._now = max(self._now, deadline)
                self._wake_due()
                return
            self._deadlines[waiter] = deadline
            self._cond.notify_all()
        try:
            waiter.wait()
        finally:
            with self._cond:
                self._deadlines.pop(waiter, None)


def _finite(name: str, value: float, *, minimum: float = 0.0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise ConfigError(f"Backoff.{name} must be a number >= {minimum:g}, got {value!r}")


@dataclass(frozen=True)
class Backoff:
    """How long to wait before attempt ``n`` of something that keeps failing. Immutable.

    Args:
        initial: seconds before the first retry.
        factor: each further retry waits ``factor`` times longer.
        maximum: the longest wait, seconds.
        jitter: a random fraction (0..``jitter``) of the delay is added, so processes that
            failed together do not retry together.
        attempts: retries allowed after the first failure (-1: forever).
        random: returns a float in [0, 1) (inject a constant in tests).
    """

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.1
    attempts: int = -1
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        _finite("initial", self.initial)
        _finite("factor", self.factor, minimum=1.0)
        _finite("maximum", self.maximum)
        _finite("jitter", self.jitter)
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigError(
                f"Backoff.attempts must be an int (-1: forever), got {self.attempts!r}"
            )
        if self.attempts < -1:
            raise ConfigError(f"Backoff.attempts must be -1 (forever) or >= 0, got {self.attempts}")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the first retry)."""
        base = min(self.maximum, self.initial * self.factor ** max(0, retry - 1))
        return min(self.maximum, base * (1.0 + self.jitter * self.random()))

    def allows(self, retry: int) -> bool:
        """True when retry number ``retry`` (1-based) may still be made."""
        return self.attempts < 0 or retry <= self.attempts
