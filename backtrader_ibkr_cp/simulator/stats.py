"""Request statistics a test or benchmark reads from the simulator."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping

__all__ = ["SimStats"]


class SimStats:
    """Thread-safe counters. Every property returns a copy taken under the lock.

    - ``requests``: Counter of requests per path (API paths without ``/v1/api``, e.g.
      ``"/iserver/marketdata/snapshot"``; other paths as sent, e.g. ``"/"``), every request
      counted on arrival, whatever its answer.
    - ``rate_limited``: 429 answers sent (pacing, penalty box and injected ``http_429``).
    - ``max_concurrent_history``: most history requests admitted and in flight at once.
    - ``history_requests``: the query parameters of each history request, in arrival order.
    - ``snapshot_conids``: the conids of each snapshot request, in arrival order.
    - ``ws_connections``: WebSocket connections accepted (upgrades answered 101) so far.
    - ``ws_messages``: Counter of WebSocket messages sent, by topic without its target
      (``"smd"`` for ``smd+265598``; ``"ech"`` for the ``ech+hb`` echo); messages a silenced
      socket swallowed are not counted.
    - ``ws_swallowed``: WebSocket messages a silenced socket swallowed instead of sending.
    - ``violations``: ``(path, limit broken)`` of each request that broke a pacing limit and
      opened the penalty box (the 429s of the penalty box itself and injected ones are not).

    :meth:`wait_for` blocks until the counters satisfy a condition (a test waiting for a
    request to arrive); every ``record_*`` method wakes it.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition(threading.RLock())
        self._requests: Counter[str] = Counter()
        self._rate_limited = 0
        self._max_concurrent_history = 0
        self._history_requests: list[dict[str, str]] = []
        self._snapshot_conids: list[list[int]] = []
        self._ws_connections = 0
        self._ws_messages: Counter[str] = Counter()
        self._ws_swallowed = 0
        self._violations: list[tuple[str, str]] = []

    @property
    def requests(self) -> Counter[str]:
        with self._lock:
            return Counter(self._requests)

    @property
    def rate_limited(self) -> int:
        with self._lock:
            return self._rate_limited

    @property
    def max_concurrent_history(self) -> int:
        with self._lock:
            return self._max_concurrent_history

    @property
    def history_requests(self) -> list[dict[str, str]]:
        with self._lock:
            return [dict(params) for params in self._history_requests]

    @property
    def snapshot_conids(self) -> list[list[int]]:
        with self._lock:
            return [list(conids) for conids in self._snapshot_conids]

    @property
    def ws_connections(self) -> int:
        with self._lock:
            return self._ws_connections

    @property
    def ws_messages(self) -> Counter[str]:
        with self._lock:
            return Counter(self._ws_messages)

    @property
    def ws_swallowed(self) -> int:
        with self._lock:
            return self._ws_swallowed

    @property
    def violations(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._violations)

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            self._requests.clear()
            self._rate_limited = 0
            self._max_concurrent_history = 0
            self._history_requests.clear()
            self._snapshot_conids.clear()
            self._ws_connections = 0
            self._ws_messages.clear()
            self._ws_swallowed = 0
            self._violations.clear()
            self._lock.notify_all()

    def wait_for(self, condition: Callable[[SimStats], bool], timeout: float) -> bool:
        """Block until ``condition(stats)`` is true, checked now and after every change, or
        ``timeout`` real seconds passed; returns its last value. E.g. wait until a request
        has arrived: ``sim.stats.wait_for(lambda s: s.requests[path] >= 1, timeout=10)``."""
        with self._lock:
            return self._lock.wait_for(lambda: condition(self), timeout)

    # -- recording (called by the gateway) ---------------------------------------------------

    def record_request(self, path: str) -> None:
        with self._lock:
            self._requests[path] += 1
            self._lock.notify_all()

    def record_rate_limited(self) -> None:
        with self._lock:
            self._rate_limited += 1
            self._lock.notify_all()

    def record_violation(self, path: str, limit: str) -> None:
        with self._lock:
            self._violations.append((path, limit))
            self._lock.notify_all()

    def record_history_peak(self, in_flight: int) -> None:
        with self._lock:
            self._max_concurrent_history = max(self._max_concurrent_history, in_flight)
            self._lock.notify_all()

    def record_history(self, params: Mapping[str, str]) -> None:
        with self._lock:
            self._history_requests.append(dict(params))
            self._lock.notify_all()

    def record_snapshot(self, conids: list[int]) -> None:
        with self._lock:
            self._snapshot_conids.append(list(conids))
            self._lock.notify_all()

    def record_ws_connection(self) -> None:
        with self._lock:
            self._ws_connections += 1
            self._lock.notify_all()

    def record_ws_message(self, topic: str) -> None:
        with self._lock:
            self._ws_messages[topic] += 1
            self._lock.notify_all()

    def record_ws_swallowed(self) -> None:
        with self._lock:
            self._ws_swallowed += 1
            self._lock.notify_all()

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"SimStats(requests={sum(self._requests.values())}, "
                f"rate_limited={self._rate_limited}, "
                f"max_concurrent_history={self._max_concurrent_history}, "
                f"violations={self._violations})"
            )
