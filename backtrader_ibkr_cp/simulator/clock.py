"""The simulated market clock: runs ``speed`` times faster than real time, can be moved.

Only market time (bars, snapshots, ``Date`` headers) follows this clock. Session idle timeouts
and pacing windows count real seconds on :func:`time.monotonic`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from .calendar import UTC, as_utc

__all__ = ["SimClock"]


class SimClock:
    """Thread-safe clock: ``now() = start + (monotonic() - t0) * speed``.

    ``speed`` >= 0 (0 freezes the clock; 60 makes a real second a simulated minute).
    ``start`` is the simulated time at construction (tz-aware; naive means UTC; None = real now).
    """

    def __init__(
        self,
        speed: float = 1.0,
        start: datetime | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed >= 0:
            raise ValueError(f"speed must be >= 0 (0 freezes the clock), got {speed!r}")
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._speed = float(speed)
        self._origin = as_utc(start) if start is not None else datetime.now(UTC)
        self._t0 = monotonic()

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._speed

    def now(self) -> datetime:
        """The simulated time, UTC-aware, microsecond resolution."""
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> datetime:
        elapsed = (self._monotonic() - self._t0) * self._speed
        return self._origin + timedelta(seconds=elapsed)

    def set_time(self, value: datetime) -> None:
        """Jump to ``value`` (naive means UTC); the clock keeps running at its speed."""
        with self._lock:
            self._origin = as_utc(value)
            self._t0 = self._monotonic()

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on without moving the current time."""
        if not speed >= 0:
            raise ValueError(f"speed must be >= 0 (0 freezes the clock), got {speed!r}")
        with self._lock:
            self._origin = self._now_locked()
            self._t0 = self._monotonic()
            self._speed = float(speed)

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds`` simulated seconds; returns the new time."""
        with self._lock:
            self._origin = self._now_locked() + timedelta(seconds=seconds)
            self._t0 = self._monotonic()
            return self._origin
