"""Faults injected on demand: the next ``count`` matching requests misbehave.

A fault targets the market-data endpoints (``/iserver/marketdata/history`` and
``/iserver/marketdata/snapshot``) unless given a ``path``, which matches by prefix on the API
path (``"/iserver"`` matches every ``/iserver/...`` endpoint, never ``/tickle``). History-only
kinds (``no_data``, ``invalid_bar``, ``duplicate_bars``, ``out_of_order``) only ever match
history requests. Each matching request takes one use from the oldest pending fault that
matches it; faults of different kinds never stack on one request.

Kinds:

- ``latency``: answer ``seconds`` late (default 1.0), then normally.
- ``http_500`` / ``http_503``: that status with an ``{"error": ...}`` body.
- ``http_429``: 429 with ``Retry-After: 1``, no penalty box (counted in ``rate_limited``).
- ``reset``: abort the TCP connection with an RST, no response.
- ``timeout``: accept but never answer; hold ``seconds`` (default 30) or until stop, then close.
- ``malformed``: 200 ``application/json`` with a truncated body.
- ``no_data``: history answers ``{"error": "No data."}``.
- ``invalid_bar``: one bar of the history response has high < low.
- ``duplicate_bars``: the history response repeats some bars.
- ``out_of_order``: the history response's bars are shuffled.
- ``competing``: another login takes the brokerage session as the request arrives (it and every
  ``/iserver`` call answer 401 until ``ssodh/init`` with ``compete: true``).
- ``daily_reset``: the brokerage session drops as at IBKR's nightly reset (401 until reopened).
- ``answer_lost``: the request is carried out (a POST to the orders endpoint places its order,
  a DELETE cancels), then the connection is reset without an answer. Works on every path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["FAULT_KINDS", "Fault", "FaultQueue"]

FAULT_KINDS = frozenset(
    {
        "latency",
        "http_500",
        "http_503",
        "http_429",
        "reset",
        "timeout",
        "malformed",
        "no_data",
        "invalid_bar",
        "duplicate_bars",
        "out_of_order",
        "competing",
        "daily_reset",
        "answer_lost",
    }
)
HISTORY_ONLY = frozenset({"no_data", "invalid_bar", "duplicate_bars", "out_of_order"})
HISTORY_PATH = "/iserver/marketdata/history"
MARKET_DATA_PATHS = (HISTORY_PATH, "/iserver/marketdata/snapshot")
_DEFAULT_SECONDS = {"latency": 1.0, "timeout": 30.0}
_API_PREFIX = "/v1/api"


@dataclass(frozen=True)
class Fault:
    """One use of an injected fault: ``kind`` and its ``seconds`` (latency and timeout)."""

    kind: str
    seconds: float


@dataclass
class _Pending:
    kind: str
    remaining: int
    path: str | None
    seconds: float

    def matches(self, path: str) -> bool:
        if self.kind in HISTORY_ONLY and path != HISTORY_PATH:
            return False
        if self.path is None:
            return path in MARKET_DATA_PATHS
        return path.startswith(self.path)


class FaultQueue:
    """Thread-safe list of pending faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []

    def inject(
        self, kind: str, count: int = 1, *, path: str | None = None, seconds: float | None = None
    ) -> None:
        """Make the next ``count`` requests matching ``path`` fail with ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(
                f"fault kind {kind!r} is not known; use one of {', '.join(sorted(FAULT_KINDS))}"
            )
        if count < 1:
            raise ValueError(f"fault count must be >= 1, got {count}")
        if seconds is not None and seconds < 0:
            raise ValueError(f"fault seconds must be >= 0, got {seconds}")
        if path is not None:
            if path.startswith(_API_PREFIX):
                path = path[len(_API_PREFIX) :]
            if not path.startswith("/"):
                path = "/" + path
            if kind in HISTORY_ONLY and not HISTORY_PATH.startswith(path):
                raise ValueError(
                    f"fault {kind!r} only affects {HISTORY_PATH}; path {path!r} never matches it"
                )
        duration = seconds if seconds is not None else _DEFAULT_SECONDS.get(kind, 0.0)
        with self._lock:
            self._pending.append(_Pending(kind, count, path, duration))

    def take(self, path: str) -> Fault | None:
        """Consume one use of the oldest fault matching API ``path``, if any."""
        with self._lock:
            for pending in self._pending:
                if pending.matches(path):
                    pending.remaining -= 1
                    if pending.remaining == 0:
                        self._pending.remove(pending)
                    return Fault(pending.kind, pending.seconds)
        return None

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._pending.clear()

    @property
    def pending(self) -> int:
        """Uses left over all pending faults."""
        with self._lock:
            return sum(p.remaining for p in self._pending)
