"""One snapshot poll loop per store, shared by every live feed of that store.

Threading model: :class:`SnapshotPoller` owns ONE background thread. Every cycle it sends ONE
``GET /iserver/marketdata/snapshot`` for all subscribed conids (split into requests of at most
100 conids, IBKR's limit) and hands each :class:`Snapshot` to the listeners of its conid, on the
poller thread. Listeners must return quickly (the live stream only puts the snapshot into its
own queue). Requests go through the client's :class:`ApiClient`, hence through its pacer, so
the poller shares IBKR's 10 requests/s with history fetches and the keep-alive.

Errors never kill the thread: a failed request goes to each affected listener's
``on_error(exc)`` and the loop backs off (``interval`` doubling per consecutive failure, capped
at ``max_backoff`` seconds, or longer when a 429 says ``Retry-After``) and tries again.
:meth:`SnapshotPoller.stop` ends and joins the thread.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from ..errors import ConfigError, MarketError, RateLimitExceeded
from ..models import Snapshot
from ..models.snapshot import DEFAULT_FIELDS
from ..timing import SYSTEM_CLOCK, CancelToken, Clock, Signal

__all__ = [
    "MAX_CONIDS_PER_REQUEST",
    "MIN_INTERVAL",
    "SnapshotApi",
    "SnapshotListener",
    "SnapshotPoller",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: IBKR: at most 100 conids per snapshot request.
MAX_CONIDS_PER_REQUEST = 100
#: Seconds before re-polling after a pre-flight answer (new subscriptions get data sooner).
PREFLIGHT_REPOLL = 0.25
#: The shortest cycle, in seconds: at most 5 snapshot requests per second, so at least half of
#: the gateway's 10 requests/s stay free for history, contract look-ups and the keep-alive.
#: (IBKR refreshes snapshot data every 500 ms; polling faster gains little.)
MIN_INTERVAL = 0.2


class SnapshotApi(Protocol):
    """What the poller needs of :class:`~backtrader_ibkr_cp.client.api.ApiClient`."""

    def snapshot(self, conids: Sequence[int], fields: Sequence[str] = ...) -> list[Snapshot]: ...

    def unsubscribe(self, conid: int) -> bool: ...


class SnapshotListener(Protocol):
    """Receives the snapshots of one conid, on the poller thread. Must not block."""

    def on_snapshot(self, snapshot: Snapshot) -> None: ...

    def on_error(self, error: MarketError) -> None: ...


class SnapshotPoller:
    """Polls snapshots for every subscribed conid, one batched request per cycle.

    Args:
        api: the client's ApiClient (its pacer applies).
        interval: seconds between cycle starts (> 0; values below :data:`MIN_INTERVAL` are
            raised to it). The cycle is also never shorter than ``requests per cycle / 5``
            seconds, half of IBKR's snapshot budget.
        fields: snapshot field codes to request (at most 50).
        max_backoff: cap, in seconds, of the wait after consecutive failures.
        thread_name: name of the background thread.
        clock: monotonic time and waits.
        cancel: the owner's token (the poller's thread stops when it is cancelled).
    """

    def __init__(
        self,
        api: SnapshotApi,
        *,
        interval: float = 1.0,
        fields: Sequence[str] = DEFAULT_FIELDS,
        max_backoff: float = 30.0,
        thread_name: str = "ibkr-cp-snapshot-poller",
        clock: Clock = SYSTEM_CLOCK,
        cancel: CancelToken | None = None,
    ) -> None:
        if not (isinstance(interval, (int, float)) and math.isfinite(interval) and interval > 0):
            raise ConfigError(f"poll interval must be a positive number of seconds: {interval!r}")
        if not 0 < len(fields) <= 50:
            raise ConfigError(f"snapshot fields must be 1 to 50 codes, got {len(fields)}")
        self.api = api
        self.interval = max(float(interval), MIN_INTERVAL)
        self.fields = tuple(fields)
        self.max_backoff = max(float(max_backoff), self.interval)
        self._thread_name = thread_name
        self._clock = clock
        self._parent = cancel
        self._lock = threading.Lock()
        self._listeners: dict[int, list[SnapshotListener]] = {}
        self._dropped: list[int] = []
        self._wake = Signal()
        self._token: CancelToken | None = None  # the running thread's
        self._thread: threading.Thread | None = None
        self._failures = 0
        #: Completed poll cycles (a cycle with at least one request).
        self.cycles = 0

    # -- subscriptions --------------------------------------------------------------------

    def subscribe(self, conid: int, listener: SnapshotListener) -> None:
        """Deliver snapshots of ``conid`` to ``listener`` from the next cycle on (which starts
        at once, ending any back-off); starts the thread if needed."""
        with self._lock:
            listeners = self._listeners.setdefault(int(conid), [])
            if listener not in listeners:
                listeners.append(listener)
            if int(conid) in self._dropped:
                self._dropped.remove(int(conid))
        self.start()
        self._wake.set()

    def unsubscribe(self, conid: int, listener: SnapshotListener | None = None) -> None:
        """Stop delivering ``conid`` to ``listener`` (to every listener when None). When no
        listener is left the gateway's stream for the conid is closed on the next cycle."""
        with self._lock:
            listeners = self._listeners.get(int(conid))
            if listeners is None:
                return
            if listener is not None and listener in listeners:
                listeners.remove(listener)
            if listener is None or not listeners:
                del self._listeners[int(conid)]
                self._dropped.append(int(conid))
        self._wake.set()

    @property
    def conids(self) -> list[int]:
        """The subscribed conids, in subscription order."""
        with self._lock:
            return list(self._listeners)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (idempotent; restartable after :meth:`stop`, even
        before the stopped thread has ended: it ends on its own token)."""
        with self._lock:
            running = self._thread is not None and self._thread.is_alive()
            if running and self._token is not None and not self._token.cancelled:
                return
            parent = self._parent
            token = parent.child() if parent is not None else CancelToken()
            self._token = token
            self._thread = threading.Thread(
                target=self._run, args=(token,), name=self._thread_name, daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the thread and wait for it (at most ``timeout`` seconds, 0 = only signal; a
        request in flight finishes first). Subscriptions are kept: :meth:`start` resumes."""
        with self._lock:
            token, thread = self._token, self._thread
        if token is not None:
            token.cancel("the snapshot poller stopped")
        if thread is not None and thread is not threading.current_thread() and timeout != 0:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("snapshot poller did not stop within %s s", timeout)

    # -- the loop -------------------------------------------------------------------------

    def _run(self, token: CancelToken) -> None:
        clock = self._clock
        while not token.cancelled:
            conids = self.conids
            if not conids:
                self._close_dropped(token)
                self._wake.clear()
                if not self.conids:
                    clock.wait(math.inf, self._wake, token)
                continue
            self._wake.clear()
            started = clock.now()
            delay = self._cycle(conids, token)
            self._close_dropped(token)
            floor = math.ceil(len(conids) / MAX_CONIDS_PER_REQUEST) * MIN_INTERVAL
            # A (re)subscription ends a back-off early; the floor still applies.
            delay = max(delay, floor)
            if clock.wait(max(0.0, started + delay - clock.now()), self._wake, token):
                if token.cancelled:
                    return
                self._failures = 0
                clock.wait(max(0.0, started + floor - clock.now()), token)

    def _cycle(self, conids: list[int], token: CancelToken) -> float:
        """Poll every conid once; return the seconds until the next cycle should start."""
        preflight = False
        failure: MarketError | None = None
        for first in range(0, len(conids), MAX_CONIDS_PER_REQUEST):
            if token.cancelled:
                break
            chunk = conids[first : first + MAX_CONIDS_PER_REQUEST]
            try:
                snapshots = self.api.snapshot(chunk, self.fields)
            except MarketError as exc:
                failure = exc
                self._dispatch_error(chunk, exc)
                continue
            except Exception as exc:  # a bug below us must not kill live data
                log.exception("snapshot poll failed unexpectedly")
                failure = MarketError(
                    f"snapshot poll failed unexpectedly ({type(exc).__name__}: {exc}); the "
                    "poller keeps retrying; please report this",
                    endpoint="/iserver/marketdata/snapshot",
                )
                self._dispatch_error(chunk, failure)
                continue
            for snapshot in snapshots:
                preflight = preflight or snapshot.is_preflight
                self._dispatch(snapshot)
        self.cycles += 1
        if failure is None:
            self._failures = 0
            return min(self.interval, PREFLIGHT_REPOLL) if preflight else self.interval
        self._failures += 1
        delay = min(self.interval * 2.0 ** (self._failures - 1), self.max_backoff)
        if isinstance(failure, RateLimitExceeded) and failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        log.info("snapshot poll failed (%s); next attempt in %.1f s", failure, delay)
        return delay

    def _listeners_of(self, conid: int) -> list[SnapshotListener]:
        with self._lock:
            return list(self._listeners.get(conid, ()))

    def _dispatch(self, snapshot: Snapshot) -> None:
        for listener in self._listeners_of(snapshot.conid):
            self._call(listener.on_snapshot, snapshot)

    def _dispatch_error(self, conids: list[int], error: MarketError) -> None:
        for conid in conids:
            for listener in self._listeners_of(conid):
                self._call(listener.on_error, error)

    @staticmethod
    def _call(method: Callable[[_T], None], argument: _T) -> None:
        try:
            method(argument)
        except Exception:
            log.exception("snapshot listener %r failed", method)

    def _close_dropped(self, token: CancelToken) -> None:
        with self._lock:
            dropped, self._dropped = self._dropped, []
        for conid in dropped:
            if token.cancelled:
                return
            try:
                self.api.unsubscribe(conid)
            except MarketError as exc:
                log.info("could not unsubscribe conid %s: %s", conid, exc)
