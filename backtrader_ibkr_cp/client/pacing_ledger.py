"""The pacing budget every process on this machine shares with one gateway: the rules.

IBKR counts requests per gateway (per user and IP), not per process: two backtests, or three
``ibkr-cp`` commands run back to back, each pacing itself, together exceed 10 requests/s and
earn a 10-15 minute penalty box. So the facts a :class:`~.pacing.Pacer` decides on live in a
ledger every process can read and change (stored by :mod:`.pacing_store`):

- one entry per request let through: its kind, the process (pid) that sent it, when it was sent
  and when its answer came (``done``; None while in flight), how long the gateway may still be
  working on it after that (``linger``: a request whose answer timed out), and how long it is
  remembered after that (``hold``: the longest window its sender applies to it);
- the penalty after a 429: until when, since when, and which process got it.

Each process applies its own limits to the requests of every process: a request may go when
every window that counts it holds fewer than ``count`` entries (an in-flight entry counts until
it is answered, a finished one for the window's length after its answer and linger) and, for
history, when fewer history requests than the concurrency cap are busy anywhere (in flight, or
finished less than their linger ago).

:class:`PacingLedger` keeps no time of its own: every call is given ``now``, wall-clock seconds
(``time.time()``, the one clock every process can compare), or the function that reads it.
Give the function: it is read once the transaction holds the store's lock, so every time
written is at or after every time already in the ledger. A time read *before* waiting for the
lock is stale by the wait, and the clamp below moved the entries other threads had finished
meanwhile back to it, shortening their windows by the wait (enough, on a busy machine, for
the gateway to count 11 requests in one second). Clock jumps are bounded: a time in the
future (the clock went back) is clamped to now, so no wait is ever longer than the longest
window or :data:`PENALTY_CAP`.

A process killed while a request is in flight cannot release its entry: an in-flight entry of a
process that is no longer alive is released at the next look, and any in-flight entry is
released after ``in_flight_expiry`` seconds (:data:`IN_FLIGHT_EXPIRY`) whatever its process. A
released entry keeps its place in the rate windows for one more window (its request may have
reached the gateway) but frees its history concurrency slot at once.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from .pacing_store import (
    STATE_VERSION,
    LedgerStore,
    MemoryStore,
    gateway_key,
    open_store,
    pid_alive,
)

__all__ = [
    "IN_FLIGHT_EXPIRY",
    "PENALTY_CAP",
    "Entry",
    "LedgerState",
    "Now",
    "PacingLedger",
    "Verdict",
    "Window",
]

log = logging.getLogger(__name__)

#: Seconds after which an in-flight entry is released even if its process still runs (a hung
#: request, a reused pid, a process in another pid namespace). Longer than any request the
#: client lets run (its read timeout bounds each wait for data).
IN_FLIGHT_EXPIRY = 120.0
#: The longest penalty kept, in seconds (IBKR's penalty box lasts 10-15 minutes).
PENALTY_CAP = 900.0

#: Wall-clock seconds, or the function that reads them (read under the store's lock).
Now = float | Callable[[], float]


def _read(now: Now) -> float:
    return now() if callable(now) else now


@dataclasses.dataclass(frozen=True)
class Window:
    """At most ``count`` requests within any ``seconds`` (margin included). ``name`` is
    ``"total"`` (every request counts) or the request kind it counts (``"snapshot"``...)."""

    name: str
    count: int
    seconds: float

    def counts(self, kind: str) -> bool:
        return self.name == "total" or self.name == kind


@dataclasses.dataclass
class Entry:
    """One request let through. Times are wall-clock seconds; ``done`` None while in flight;
    ``linger`` seconds after ``done`` the gateway may still be working on it (its answer timed
    out: it keeps its history slot, and its place in the windows starts after that); ``hold``
    seconds it is remembered after ``done + linger``."""

    ticket: str
    pid: int
    kind: str
    sent: float
    done: float | None
    hold: float
    linger: float = 0.0

    @property
    def finished(self) -> float:
        """When the gateway is done with it at the latest (inf while in flight)."""
        return math.inf if self.done is None else self.done + self.linger

    def busy(self, now: float) -> bool:
        """In flight, or still lingering at ``now``."""
        return self.finished > now

    def to_json(self) -> list[Any]:
        return [self.ticket, self.pid, self.kind, self.sent, self.done, self.hold, self.linger]

    @classmethod
    def from_json(cls, row: Any) -> Entry | None:
        try:
            ticket, pid, kind, sent, done, hold, *rest = row
            linger = float(rest[0]) if rest else 0.0  # a row of an earlier version has none
            return cls(
                str(ticket),
                int(pid),
                str(kind),
                float(sent),
                None if done is None else float(done),
                float(hold),
                max(0.0, min(linger, IN_FLIGHT_EXPIRY)),
            )
        except (TypeError, ValueError):
            return None


@dataclasses.dataclass(frozen=True)
class LedgerState:
    """What a ledger holds at ``now`` (for observers and tests): the entries, the penalty
    (wall-clock ``penalty_until``/``penalty_since``, None when none is in force, and the pid
    ``penalty_pid`` whose 429 started it), and the in-flight requests per kind."""

    now: float
    entries: tuple[Entry, ...]
    penalty_until: float | None
    penalty_since: float | None
    penalty_pid: int | None

    def in_flight(self, kind: str | None = None) -> int:
        """Requests of ``kind`` (every kind when None) sent and not yet answered."""
        return sum(1 for e in self.entries if e.done is None and kind in (None, e.kind))

    def in_flight_pids(self, kind: str | None = None) -> Counter[int]:
        """In-flight requests of ``kind`` per process."""
        return Counter(e.pid for e in self.entries if e.done is None and kind in (None, e.kind))

    @property
    def penalty_remaining(self) -> float:
        return 0.0 if self.penalty_until is None else max(0.0, self.penalty_until - self.now)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The answer to "may a request go now?".

    ``delay`` 0.0 means it may go; ``ticket`` is then set when the request was recorded in
    flight (give it back to :meth:`PacingLedger.release`). Otherwise ``delay`` is the seconds
    until a place frees (``math.inf``: it waits for a request in flight to be answered),
    ``penalty`` the seconds left of a penalty (part of ``delay``), ``foreign`` True when an
    in-flight request of another ledger (process) holds it back, so no in-process notification
    will come (poll), and ``expires_in`` the seconds until the oldest in-flight request holding
    it back is released by expiry (``math.inf``: none).
    """

    ticket: str | None
    delay: float = 0.0
    penalty: float = 0.0
    foreign: bool = False
    expires_in: float = math.inf


# -- the ledger -----------------------------------------------------------------------------


class PacingLedger:
    """The rules over a store's state: prune, admit, release, penalize. Thread-safe and
    process-safe as its store is; never waits (the :class:`~.pacing.Pacer` does).

    Args:
        store: a :class:`FileStore` (shared by every process) or :class:`MemoryStore`.
        in_flight_expiry: seconds after which an in-flight entry is released whatever its
            process (:data:`IN_FLIGHT_EXPIRY`).
        alive: tells whether a pid runs (:func:`pid_alive`; inject in tests).
        pid: this process's id (default ``os.getpid()``, asked at each call so a forked child
            is itself).
    """

    def __init__(
        self,
        store: LedgerStore | None = None,
        *,
        in_flight_expiry: float = IN_FLIGHT_EXPIRY,
        alive: Callable[[int], bool] = pid_alive,
        pid: int | None = None,
    ) -> None:
        if not (in_flight_expiry > 0 and math.isfinite(in_flight_expiry)):
            raise ConfigError(
                f"in_flight_expiry must be a number of seconds > 0, got {in_flight_expiry!r}"
            )
        self.store: LedgerStore = store if store is not None else MemoryStore()
        self.in_flight_expiry = float(in_flight_expiry)
        self._alive = alive
        self._pid = pid
        #: Tickets this ledger object issued (in-flight ones), to tell its own entries from
        #: those of other processes (or other ledger objects of this process).
        self._mine: set[str] = set()
        self._mine_lock = threading.Lock()

    @classmethod
    def for_gateway(
        cls,
        url_or_key: str,
        directory: str | os.PathLike[str] | None = None,
        *,
        in_flight_expiry: float = IN_FLIGHT_EXPIRY,
    ) -> PacingLedger:
        """The ledger every process shares for a gateway (``https://localhost:5000`` or a
        :func:`~.pacing_store.gateway_key`), in ``directory`` (default
        :func:`~.pacing_store.pacing_dir`). Falls back to a per-process ledger, with a logged
        warning, where ``flock`` is unavailable or the folder cannot be created."""
        key = gateway_key(url_or_key) if "/" in url_or_key or ":" in url_or_key else url_or_key
        return cls(open_store(key, directory), in_flight_expiry=in_flight_expiry)

    @property
    def shared(self) -> bool:
        """True when other processes see this ledger."""
        return self.store.shared

    @property
    def pid(self) -> int:
        return self._pid if self._pid is not None else os.getpid()

    # -- operations (one transaction each) -----------------------------------------------

    def admit(
        self,
        kind: str,
        windows: Sequence[Window],
        history_concurrency: int,
        now: Now,
        *,
        reserve: bool = True,
    ) -> Verdict:
        """Admit a request of ``kind`` now if every window (and, for history, the concurrency
        cap) allows it, and record it in flight (with ``reserve=False`` only tell)."""
        pid = self.pid
        with self.store.transaction() as raw:
            now = _read(now)
            state = self._prune(raw, now)
            verdict = self._judge(state, kind, windows, history_concurrency, now)
            if verdict is None:
                verdict = Verdict(None)
                if reserve:
                    ticket = f"{pid}-{secrets.token_hex(6)}"
                    hold = max((w.seconds for w in windows), default=0.0)
                    state.entries.append(Entry(ticket, pid, kind, now, None, hold))
                    with self._mine_lock:
                        self._mine.add(ticket)
                    verdict = Verdict(ticket)
            state.save(raw)
        return verdict

    def release(self, ticket: str, now: Now, linger: float = 0.0) -> None:
        """The request of ``ticket`` was answered (or failed) at ``now``: it frees its history
        slot and keeps its place in the windows for ``hold`` seconds more. ``linger``: seconds
        the gateway may still be working on it (its answer timed out); it keeps its history
        slot that long, and its place in the windows that much longer."""
        with self._mine_lock:
            self._mine.discard(ticket)
        linger = max(0.0, min(float(linger), IN_FLIGHT_EXPIRY))
        with self.store.transaction() as raw:
            now = _read(now)
            state = self._prune(raw, now)
            for entry in state.entries:
                if entry.ticket == ticket and entry.done is None:
                    entry.done = now
                    entry.linger = linger
            state.save(raw)

    def penalize(self, until: float, now: Now) -> float:
        """Hold every request of every process back until ``until`` (wall clock; at most
        :data:`PENALTY_CAP` from now). A later penalty is never shortened. Returns the end of
        the penalty in force."""
        with self.store.transaction() as raw:
            now = _read(now)
            until = min(until, now + PENALTY_CAP)
            state = self._prune(raw, now)
            if state.penalty_until is None or until > state.penalty_until:
                if state.penalty_until is None:
                    state.penalty_since = now
                state.penalty_until = until
                state.penalty_pid = self.pid
            state.save(raw)
            return state.penalty_until if state.penalty_until is not None else until

    def state(self, now: Now) -> LedgerState:
        """What the ledger holds at ``now`` (after pruning)."""
        with self.store.transaction() as raw:
            now = _read(now)
            state = self._prune(raw, now)
            state.save(raw)
            return LedgerState(
                now,
                tuple(dataclasses.replace(e) for e in state.entries),
                state.penalty_until,
                state.penalty_since,
                state.penalty_pid,
            )

    # -- rules ---------------------------------------------------------------------------

    def _prune(self, raw: dict[str, Any], now: float) -> _State:
        """Load the state, clamp times in the future (the clock went back) to ``now``, release
        in-flight entries of dead processes and expired ones, drop entries past their hold,
        and end a penalty that is over."""
        state = _State.load(raw)
        me = self.pid
        verdicts: dict[int, bool] = {}
        kept: list[Entry] = []
        for entry in state.entries:
            entry.sent = min(entry.sent, now)
            if entry.done is None:
                if now - entry.sent >= self.in_flight_expiry:
                    log.warning(
                        "shared pacing: a %s request of process %d has been in flight for "
                        "%.0f s; releasing its slot",
                        entry.kind,
                        entry.pid,
                        now - entry.sent,
                    )
                    entry.done = now
                elif entry.pid != me:
                    if entry.pid not in verdicts:
                        verdicts[entry.pid] = self._alive(entry.pid)
                    if not verdicts[entry.pid]:
                        log.info(
                            "shared pacing: process %d ended with a %s request in flight; "
                            "releasing its slot",
                            entry.pid,
                            entry.kind,
                        )
                        entry.done = now
            else:
                entry.done = min(entry.done, now)
                if entry.finished + entry.hold <= now:
                    continue
            kept.append(entry)
        state.entries = kept
        if state.penalty_until is not None:
            if state.penalty_until <= now:
                state.penalty_until = state.penalty_since = state.penalty_pid = None
            else:
                state.penalty_until = min(state.penalty_until, now + PENALTY_CAP)
                if state.penalty_since is not None:
                    state.penalty_since = min(state.penalty_since, now)
        return state

    def _judge(
        self,
        state: _State,
        kind: str,
        windows: Sequence[Window],
        history_concurrency: int,
        now: float,
    ) -> Verdict | None:
        """None when a request of ``kind`` may go now, else why not."""
        with self._mine_lock:
            mine = set(self._mine)
        delay = 0.0
        penalty = 0.0
        if state.penalty_until is not None and now < state.penalty_until:
            penalty = state.penalty_until - now
            delay = penalty
        blocking: list[Entry] = []
        for window in windows:
            counted = [
                e
                for e in state.entries
                if window.counts(e.kind) and e.finished + window.seconds > now
            ]
            excess = len(counted) - window.count
            if excess < 0:
                continue
            frees = sorted(counted, key=lambda e: e.finished + window.seconds)
            first_free = frees[excess]
            if first_free.done is None:
                blocking.extend(e for e in counted if e.done is None)
            else:
                delay = max(delay, first_free.finished + window.seconds - now)
        if kind == "history":
            busy = [e for e in state.entries if e.kind == "history" and e.busy(now)]
            excess = len(busy) - history_concurrency
            if excess >= 0:
                first_free = sorted(busy, key=lambda e: e.finished)[excess]
                if first_free.done is None:
                    blocking.extend(e for e in busy if e.done is None)
                else:
                    delay = max(delay, first_free.finished - now)
        if delay <= 0.0 and not blocking:
            return None
        foreign = any(e.ticket not in mine for e in blocking)
        expires_in = min((e.sent + self.in_flight_expiry - now for e in blocking), default=math.inf)
        if delay <= 0.0:
            delay = math.inf
        return Verdict(None, delay, penalty, foreign, max(0.0, expires_in))


class _State:
    """The decoded state of a store (see the module docstring)."""

    __slots__ = ("entries", "penalty_pid", "penalty_since", "penalty_until")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.penalty_until: float | None = None
        self.penalty_since: float | None = None
        self.penalty_pid: int | None = None

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> _State:
        state = cls()
        rows = raw.get("entries")
        if isinstance(rows, list):
            state.entries = [e for e in (Entry.from_json(r) for r in rows) if e is not None]
        penalty = raw.get("penalty")
        if isinstance(penalty, list) and len(penalty) == 3:
            try:
                state.penalty_until = float(penalty[0])
                state.penalty_since = float(penalty[1])
                state.penalty_pid = int(penalty[2])
            except (TypeError, ValueError):
                state.penalty_until = state.penalty_since = state.penalty_pid = None
        return state

    def save(self, raw: dict[str, Any]) -> None:
        raw.clear()
        raw["v"] = STATE_VERSION
        raw["entries"] = [e.to_json() for e in self.entries]
        if self.penalty_until is not None:
            since = self.penalty_since if self.penalty_since is not None else self.penalty_until
            raw["penalty"] = [self.penalty_until, since, self.penalty_pid or 0]
