"""OHLCV bars and their validation. Pure: no I/O.

A :class:`Bar` is stamped at its *start* (IBKR's ``t``), tz-aware UTC. Prices are real prices;
``volume`` is in shares (see ``models.history`` for IBKR's lots-of-100 history volume).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import DataIntegrityError

__all__ = ["Bar", "BarValidator", "InvalidBar"]

log = logging.getLogger(__name__)

_INF = math.inf


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLCV bar. ``timestamp`` is the bar's start, tz-aware UTC."""

    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float

    def problems(self) -> list[str]:
        """What is wrong with this bar, in words; empty when it is valid."""
        if (
            self.timestamp.tzinfo is timezone.utc
            and 0.0 <= self.low <= self.open <= self.high < _INF
            and self.low <= self.close <= self.high
            and 0.0 <= self.volume < _INF
            and self.timestamp.timestamp() > 0
        ):
            return []  # the common case, checked in one expression (NaN fails every compare)
        found: list[str] = []
        if self.timestamp.tzinfo is None or self.timestamp.utcoffset() != timezone.utc.utcoffset(
            None
        ):
            found.append("timestamp is not tz-aware UTC")
        elif self.timestamp.timestamp() <= 0:
            found.append("timestamp is not positive")
        values = (self.open, self.high, self.low, self.close, self.volume)
        if not all(math.isfinite(v) for v in values):
            found.append("a value is not a finite number")
            return found
        if self.volume < 0:
            found.append(f"volume {self.volume} is negative")
        if self.high < self.low:
            found.append(f"high {self.high} is below low {self.low}")
        if not self.low <= self.open <= self.high:
            found.append(f"open {self.open} is outside [low {self.low}, high {self.high}]")
        if not self.low <= self.close <= self.high:
            found.append(f"close {self.close} is outside [low {self.low}, high {self.high}]")
        if min(self.open, self.high, self.low, self.close) < 0:
            found.append("a price is negative")
        return found

    def is_valid(self) -> bool:
        return not self.problems()

    def validate(self) -> Bar:
        """Return self, or raise DataIntegrityError naming the bar and what is wrong."""
        found = self.problems()
        if found:
            raise DataIntegrityError(f"invalid bar {self.describe()}: {'; '.join(found)}")
        return self

    def describe(self) -> str:
        return (
            f"{self.timestamp.isoformat()} o={self.open} h={self.high} l={self.low} "
            f"c={self.close} v={self.volume}"
        )


@dataclass(frozen=True, slots=True)
class InvalidBar:
    """A bar the validator rejected, and why (``reason`` in words)."""

    bar: Bar
    reason: str


@dataclass
class BarValidator:
    """Validates a series of bars: each bar, then chronological order.

    Returned series are sorted by timestamp with one bar per timestamp. Out-of-order bars are
    put in place and exact repeats dropped silently (both are counted in ``reordered`` and
    ``repeated``). A bar that breaks the OHLCV rules, or a second *different* bar for a
    timestamp already seen, is invalid: ``strict=True`` raises :class:`DataIntegrityError`
    naming it; the default drops it, logs it at WARNING, counts it in ``dropped`` and passes
    an :class:`InvalidBar` to ``on_invalid``.
    """

    strict: bool = False
    on_invalid: Callable[[InvalidBar], None] | None = None
    dropped: int = field(default=0, init=False)
    repeated: int = field(default=0, init=False)
    reordered: int = field(default=0, init=False)

    def reject(self, bar: Bar, reason: str) -> None:
        """Count, log and report ``bar`` as invalid (or raise in strict mode)."""
        if self.strict:
            raise DataIntegrityError(f"invalid bar {bar.describe()}: {reason}")
        self.dropped += 1
        log.warning("dropped bar %s: %s", bar.describe(), reason)
        if self.on_invalid is not None:
            self.on_invalid(InvalidBar(bar, reason))

    def validate(self, bars: Iterable[Bar], *, after: datetime | None = None) -> list[Bar]:
        """Valid bars sorted by timestamp, one per timestamp, all strictly later than ``after``.

        Bars at or before ``after`` (already delivered) are skipped silently.
        """
        by_time: dict[datetime, Bar] = {}
        previous: datetime | None = None
        for bar in bars:
            found = bar.problems()
            if found:
                self.reject(bar, "; ".join(found))
                continue
            if after is not None and bar.timestamp <= after:
                continue
            seen = by_time.get(bar.timestamp)
            if seen is not None:
                if seen != bar:
                    self.reject(
                        bar, f"conflicts with the bar already seen for {bar.timestamp.isoformat()}"
                    )
                else:
                    self.repeated += 1
                continue
            if previous is not None and bar.timestamp < previous:
                self.reordered += 1
            previous = bar.timestamp
            by_time[bar.timestamp] = bar
        return [by_time[t] for t in sorted(by_time)]
