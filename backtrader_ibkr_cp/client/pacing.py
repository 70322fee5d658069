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

**A request whose answer timed out** may still be running at the gateway, which counts it (a
history request keeps one of its five slots until it is done). So it keeps its history slot for
one more read timeout after the client gave up (:class:`SlotHold`), and its place in the rate
windows a window after that: a client whose history answers all timed out at once (a long
pause of the process, a slow gateway) does not send its retries into slots the gateway still
counts.

**One budget per gateway for every process.** IBKR counts requests per gateway, not per
process, so :meth:`Pacer.shared` (what ``GatewayClient`` uses) keeps its windows, history slots
and penalty in a :class:`~.pacing_ledger.PacingLedger` on disk that every process using the
same gateway (host and port) reads and changes under a file lock: three ``ibkr-cp`` commands
run back to back, or four backtests started together, draw from one budget. A process killed
mid-request frees its slots once it is dead (or after a bounded expiry). A private
``Pacer(limits)`` keeps the same state in memory (a cassette replay, a test).

**After a 429** (:meth:`Pacer.penalize`) every process holds back until the penalty ends, then
each waiting caller resumes after a random jitter (0 to ``penalty_jitter`` seconds), so callers
released together do not arrive together. A caller that would not retry a 429 anyway (a command
line: ``wait_out_penalty=False``) does not wait out the penalty either: it fails at once with
:class:`~backtrader_ibkr_cp.errors.RateLimitExceeded`, whether it was queued or arrives later.

Threading model: one :class:`Pacer` is shared by every thread that sends through a
:class:`~backtrader_ibkr_cp.client.transport.Transport` (and, via :meth:`Pacer.shared`, by every
client of a gateway in the process). :meth:`Pacer.slot` decides under the ledger's lock (one
short read-modify-write, never held while waiting) and waits outside it with
:meth:`~backtrader_ibkr_cp.timing.Clock.wait`: a release or a penalty in this process wakes the
waiters at once; what only another process can free (its in-flight requests) is polled every
``poll_interval`` seconds. No wait outlasts the longest window or penalty, and every wait ends
when the caller's cancel signal is set.
"""

from __future__ import annotations

import math
import os
import random as _random
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from ..errors import PacingCancelled, RateLimitExceeded
from ..timing import SYSTEM_CLOCK, Clock, Signal
from .pacing_ledger import PENALTY_CAP, LedgerState, PacingLedger, Verdict
from .pacing_limits import (
    CONSERVATIVE_PER_MINUTE,
    DEFAULT_HISTORY_CONCURRENCY,
    DEFAULT_MARGIN,
    IBKR_HISTORY_CONCURRENCY,
    IBKR_SNAPSHOT_PER_SECOND,
    IBKR_SSO_VALIDATE_PER_MINUTE,
    IBKR_TICKLE_PER_SECOND,
    IBKR_TOTAL_PER_SECOND,
    KINDS,
    UNPACED_RATE,
    PacingLimits,
    request_kind,
)
from .pacing_store import gateway_key, pacing_dir

__all__ = [
    "CONSERVATIVE_PER_MINUTE",
    "DEFAULT_HISTORY_CONCURRENCY",
    "DEFAULT_MARGIN",
    "DEFAULT_PENALTY_JITTER",
    "DEFAULT_POLL_INTERVAL",
    "IBKR_HISTORY_CONCURRENCY",
    "IBKR_SNAPSHOT_PER_SECOND",
    "IBKR_SSO_VALIDATE_PER_MINUTE",
    "IBKR_TICKLE_PER_SECOND",
    "IBKR_TOTAL_PER_SECOND",
    "KINDS",
    "UNPACED_RATE",
    "Pacer",
    "PacingCancelled",
    "PacingLimits",
    "SlotHold",
    "request_kind",
    "wall_clock",
]

#: Seconds between two looks at the shared ledger while only another process can free the
#: place a caller waits for (each look is one short read-modify-write under the file lock).
DEFAULT_POLL_INTERVAL = 0.05
#: The most seconds a caller waits after a penalty ends, drawn at random per caller, so
#: callers (threads, processes) released together do not arrive at the gateway together.
DEFAULT_PENALTY_JITTER = 2.0
#: The shortest wait, seconds (a wait of a rounding error would spin).
_MIN_WAIT = 0.001
#: The longest wait for an in-flight request of this pacer before looking again, seconds
#: (its release wakes the waiters at once; this only bounds a wake-up that never came).
_RECHECK = 1.0


class SlotHold:
    """What :meth:`Pacer.slot` gives the block: ``keep(seconds)`` keeps the request's place
    for ``seconds`` after the block exits (its history concurrency slot, and its place in the
    rate windows that much longer). For a request whose answer timed out: the gateway may
    still be working on it, and IBKR counts it until it is done. Without this, a client whose
    history answers all timed out at once (a pause of the process, a slow gateway) would send
    its retries into slots the gateway still counts, and get a 429 and the penalty box."""

    __slots__ = ("linger",)

    def __init__(self) -> None:
        self.linger = 0.0

    def keep(self, seconds: float) -> None:
        """Keep the place ``seconds`` after the block exits (the longest asked wins)."""
        self.linger = max(self.linger, float(seconds))


class _Flag(Protocol):
    """A cancel flag :meth:`Pacer.slot` accepts: a :class:`~backtrader_ibkr_cp.timing.Signal`
    (or CancelToken), which ends the wait at once, or anything with ``is_set()`` (a
    ``threading.Event``), which is checked whenever the wait ends (see :meth:`Pacer.interrupt`)."""

    def is_set(self) -> bool: ...


def wall_clock(clock: Clock) -> Callable[[], float]:
    """The timestamps every process can compare, for ``clock``: ``time.time`` when ``clock``
    is the real (monotonic) clock, else ``clock.now`` (a fake clock is its own wall clock, so
    tests move both together)."""
    return time.time if type(clock).now is Clock.now else clock.now


class Pacer:
    """Holds each request back until the gateway's limits allow it; shared by every thread of
    a client, and through :meth:`shared` by every client and process of a gateway.

    Args:
        limits: the :class:`PacingLimits` (default: IBKR's documented limits).
        clock: the :class:`~backtrader_ibkr_cp.timing.Clock` every wait goes through.
        ledger: where the windows, history slots and penalty live (default: a private
            in-memory ledger; :meth:`shared` passes the gateway's shared one).
        wall: wall-clock seconds for the ledger's timestamps (default :func:`wall_clock`).
        poll_interval: seconds between looks at the ledger while only another process can
            free the place a caller waits for (randomised by +-50%).
        penalty_jitter: the most seconds (random per caller) added to the end of a penalty.
        random: a float in [0, 1) for the jitters (inject a constant in tests).
        name: the gateway's budget name (:func:`~.pacing_store.gateway_key`), for messages.

    Observable state: :attr:`throttled_since` (wall-clock seconds since which requests have
    been held back, None when none are), :attr:`waiting` (callers of this pacer blocked now),
    :meth:`in_flight` (requests of a kind between send and answer, in every process sharing
    the ledger), :attr:`sent` (requests this pacer let through, per kind),
    :attr:`penalty_remaining` (seconds left of a penalty) and :meth:`state` (the ledger).
    """

    def __init__(
        self,
        limits: PacingLimits | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        ledger: PacingLedger | None = None,
        wall: Callable[[], float] | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        penalty_jitter: float = DEFAULT_PENALTY_JITTER,
        random: Callable[[], float] = _random.random,
        name: str = "",
    ) -> None:
        self.limits = limits if limits is not None else PacingLimits()
        self.ledger = ledger if ledger is not None else PacingLedger()
        self.name = name
        self.poll_interval = float(poll_interval)
        self.penalty_jitter = float(penalty_jitter)
        self._clock = clock
        self._wall = wall if wall is not None else wall_clock(clock)
        self._random = random
        self._lock = threading.Lock()
        self._changed = Signal()
        self._windows = {kind: self.limits.windows(kind) for kind in KINDS}
        self._sent: Counter[str] = Counter()
        self._waiting = 0
        self._throttled_since: float | None = None

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def shared(cls, key: str, limits: PacingLimits | None = None) -> Pacer:
        """The pacer of gateway ``key`` (its URL, e.g. ``https://localhost:5000/v1/api``) in
        this process, drawing on the budget every process shares for that gateway.

        IBKR counts requests per gateway (host and port), not per client object or process,
        so every client of one gateway must draw from one budget: there is one pacer per
        gateway per process, whatever limits its clients were given, and its ledger is shared
        with every other process (see the module docstring). When a client asks for stricter
        limits than the pacer keeps, the pacer keeps the stricter of each
        (:meth:`PacingLimits.stricter`) from then on; looser limits change nothing. Kept while
        any client holds it. The ledger's folder is :func:`~.pacing_store.pacing_dir` at the
        time of the call (a process that points ``$IBKR_CP_PACING_DIR`` elsewhere, as the
        tests do, gets a pacer on the new folder).
        """
        name = gateway_key(key)
        folder = pacing_dir()  # a test that points $IBKR_CP_PACING_DIR elsewhere gets its own
        with _SHARED_LOCK:
            pacer = _SHARED.get((name, folder))
            if pacer is None:
                pacer = cls(limits, ledger=PacingLedger.for_gateway(name, folder), name=name)
                _SHARED[(name, folder)] = pacer
                return pacer
        if limits is not None:
            pacer.tighten(limits)
        return pacer

    @classmethod
    def for_gateway(
        cls, key: str, limits: PacingLimits | None = None, *, shared: bool | None = None
    ) -> Pacer:
        """The pacer a client of gateway ``key`` uses: :meth:`shared` when ``shared`` is True,
        a private ``Pacer(limits)`` when it is False. None (the default) shares unless the
        limits pace nothing (:attr:`PacingLimits.paces` False: a cassette replay, which
        reaches no gateway and must neither wait for nor use up a real gateway's budget)."""
        limits = limits if limits is not None else PacingLimits()
        if shared is None:
            shared = limits.paces
        return cls.shared(key, limits) if shared else cls(limits, name=gateway_key(key))

    def tighten(self, limits: PacingLimits) -> None:
        """Keep the stricter of each of the current limits and ``limits`` from now on."""
        with self._lock:
            merged = self.limits.stricter(limits)
            if merged == self.limits:
                return
            self.limits = merged
            self._windows = {kind: merged.windows(kind) for kind in KINDS}
        self._notify()

    # -- observable state ------------------------------------------------------------------

    @property
    def shared_ledger(self) -> bool:
        """True when other processes draw on this pacer's budget too."""
        return self.ledger.shared

    def state(self) -> LedgerState:
        """The ledger now: every process's entries and the penalty."""
        return self.ledger.state(self._wall)

    @property
    def throttled_since(self) -> float | None:
        """Wall-clock seconds since which requests have been held back (a caller waiting here,
        or a penalty of any process in force), or None."""
        state = self.state()
        with self._lock:
            penalized = state.penalty_until is not None
            if self._waiting == 0 and not penalized:
                self._throttled_since = None
                return None
            since = [t for t in (self._throttled_since, state.penalty_since) if t is not None]
            return min(since) if since else state.now

    @property
    def waiting(self) -> int:
        """Number of callers blocked in :meth:`slot` of this pacer right now."""
        with self._lock:
            return self._waiting

    @property
    def sent(self) -> dict[str, int]:
        """Requests this pacer let through so far, per kind (a copy)."""
        with self._lock:
            return dict(self._sent)

    @property
    def penalty_remaining(self) -> float:
        """Seconds until the penalty in force ends (0.0 when none is)."""
        return self.state().penalty_remaining

    def in_flight(self, kind: str) -> int:
        """Requests of ``kind`` (``"history"``, ...) sent and not yet answered, by every
        process sharing this pacer's ledger."""
        return self.state().in_flight(kind)

    def wait_time(self, path: str) -> float:
        """Seconds a request to ``path`` would wait now (0.0: it may go; ``math.inf``: it waits
        for a request in flight to finish). Reserves nothing."""
        kind = request_kind(path)
        with self._lock:
            windows = self._windows[kind]
            concurrency = self.limits.history_concurrency
        verdict = self.ledger.admit(kind, windows, concurrency, self._wall, reserve=False)
        return verdict.delay

    # -- control -----------------------------------------------------------------------------

    @contextmanager
    def slot(
        self, path: str, *, cancel: _Flag | None = None, wait_out_penalty: bool = True
    ) -> Iterator[SlotHold]:
        """Block until a request to ``path`` may be sent, record it as sent, and hold its place
        (and, for history, a concurrency slot) until the block exits. Send the request inside
        the block and leave it when the answer (or the failure) is in.

        ``cancel``: a :class:`~backtrader_ibkr_cp.timing.Signal`/``CancelToken`` ends the wait
        at once when set; a ``threading.Event`` is checked whenever the wait ends (call
        :meth:`interrupt` after setting it). Either raises :class:`PacingCancelled`, nothing
        sent. ``wait_out_penalty=False`` (a caller that would not retry a 429, such as a
        command line): while a penalty is in force, raise
        :class:`~backtrader_ibkr_cp.errors.RateLimitExceeded` at once instead of waiting,
        nothing sent (``retry_after``: the seconds left).

        The block gets a :class:`SlotHold`: a caller whose answer timed out calls
        ``keep(seconds)``, since the gateway may still be working on the request.
        """
        kind = request_kind(path)
        ticket = self._acquire(kind, path, cancel, wait_out_penalty)
        hold = SlotHold()
        try:
            yield hold
        finally:
            self.ledger.release(ticket, self._wall, linger=hold.linger)
            self._notify()

    def interrupt(self) -> None:
        """Wake every waiting caller so it re-checks its ``cancel`` flag and the limits."""
        self._notify()

    def penalize(self, seconds: float) -> None:
        """Hold every request of every process sharing the ledger back for ``seconds`` from
        now (after the gateway answered 429; at most 900 s). A shorter penalty never shortens
        one already in force. Callers that do not wait out penalties fail at once."""
        now = self._wall()
        self.ledger.penalize(now + min(max(0.0, seconds), PENALTY_CAP), self._wall)
        with self._lock:
            if self._throttled_since is None:
                self._throttled_since = now
        self._notify()

    # -- internals ---------------------------------------------------------------------------

    def _notify(self) -> None:
        """Wake every wait in progress (each waits on the signal current when it looked)."""
        with self._lock:
            changed, self._changed = self._changed, Signal()
        changed.set()

    def _acquire(self, kind: str, path: str, cancel: _Flag | None, wait_out_penalty: bool) -> str:
        waiting = False
        jitter: float | None = None
        cancel_signal = cancel if isinstance(cancel, Signal) else None
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    raise PacingCancelled(
                        f"{path}: the request was cancelled while waiting to be sent"
                    )
                with self._lock:
                    changed = self._changed
                    windows = self._windows[kind]
                    concurrency = self.limits.history_concurrency
                now = self._wall()
                verdict = self.ledger.admit(kind, windows, concurrency, self._wall)
                if verdict.ticket is not None:
                    with self._lock:
                        self._sent[kind] += 1
                    return verdict.ticket
                if verdict.penalty > 0.0:
                    if not wait_out_penalty:
                        raise self._penalty_error(path, verdict.penalty)
                    if jitter is None:
                        jitter = self._random() * self.penalty_jitter
                if not waiting:
                    waiting = True
                    with self._lock:
                        self._waiting += 1
                        if self._throttled_since is None:
                            self._throttled_since = now
                seconds = self._wait_seconds(verdict, jitter or 0.0)
                self._clock.wait(seconds, changed, cancel_signal)
        finally:
            if waiting:
                with self._lock:
                    self._waiting -= 1

    def _wait_seconds(self, verdict: Verdict, jitter: float) -> float:
        """How long to wait on a verdict: the delay (plus the caller's jitter after a penalty);
        for a place only an in-flight request frees, until it expires, looking again every
        poll interval when another process holds it."""
        if math.isinf(verdict.delay):
            if verdict.foreign:
                seconds = min(verdict.expires_in, self.poll_interval * (0.5 + self._random()))
            else:
                seconds = min(verdict.expires_in, _RECHECK)
        else:
            seconds = verdict.delay + (jitter if verdict.penalty > 0.0 else 0.0)
        return min(max(seconds, _MIN_WAIT), PENALTY_CAP + self.penalty_jitter)

    def _penalty_error(self, path: str, remaining: float) -> RateLimitExceeded:
        seconds = max(1, math.ceil(remaining))
        state = self.state()
        pid = state.penalty_pid
        who = (
            "this program"
            if pid in (None, 0, os.getpid())
            else f"another program using it (process {pid})"
        )
        where = f"the gateway ({self.name})" if self.name else "the gateway"
        return RateLimitExceeded(
            f"{path}: not sent: {where} is rate limiting (IBKR's penalty box after an HTTP 429 "
            f"that {who} got) for {seconds} s more; wait {seconds} s before sending again, and "
            "close other programs using this gateway meanwhile",
            endpoint=path,
            status=None,
            retry_after=float(seconds),
            sent=False,
        )

    def __repr__(self) -> str:
        scope = "shared" if self.ledger.shared else "private"
        return f"Pacer({self.name or 'unnamed'}, {scope}, {self.limits})"


_SHARED_LOCK = threading.Lock()
_SHARED: weakref.WeakValueDictionary[tuple[str, Path], Pacer] = weakref.WeakValueDictionary()
