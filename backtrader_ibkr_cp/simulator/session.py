"""The gateway's two-tier session: SSO login and brokerage session, and per-session state.

- ``connected``: the SSO login exists (False only after ``/logout``).
- ``authenticated``: the brokerage session is open; ``/iserver/*`` needs it.
- ``competing``: another login took the brokerage session; ``/iserver/*`` answers 401 until
  ``/iserver/auth/ssodh/init`` with ``compete: true``.
- The brokerage session is lost after ``timeout_seconds`` *real* seconds without any request
  (checked when the next request arrives, and by :attr:`SessionState.authenticated`).
- Opening a brokerage session resets the accounts-first requirement of snapshots and every
  conid's pre-flight state, and starts a new :attr:`SessionState.generation` (the trading desk
  drops its per-session state then: suppressed questions, pending replies, primed caches).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

__all__ = ["SessionState"]


class SessionState:
    """Thread-safe session state; ``monotonic`` is the real-time clock (seconds)."""

    def __init__(
        self,
        timeout_seconds: float,
        authenticated: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"session_timeout must be > 0 seconds, got {timeout_seconds!r}")
        self.timeout_seconds = float(timeout_seconds)
        self._monotonic = monotonic
        self._lock = threading.RLock()
        self._connected = True
        self._authenticated = authenticated
        self._competing = False
        self._accounts_queried = False
        self._subscriptions: dict[int, set[str]] = {}
        self._last_activity = monotonic()
        self._generation = 0

    # -- observation -------------------------------------------------------------------------

    def _expire_if_idle(self) -> None:
        if self._monotonic() - self._last_activity > self.timeout_seconds:
            self._authenticated = False

    @property
    def connected(self) -> bool:
        """True while the SSO login exists."""
        with self._lock:
            return self._connected

    @property
    def authenticated(self) -> bool:
        """True while the brokerage session is open (and not idle past the timeout)."""
        with self._lock:
            self._expire_if_idle()
            return self._authenticated and self._connected and not self._competing

    @property
    def competing(self) -> bool:
        """True when another login holds the brokerage session."""
        with self._lock:
            return self._competing

    @property
    def generation(self) -> int:
        """Counts brokerage sessions opened and logouts (per-session state is keyed by it)."""
        with self._lock:
            return self._generation

    def touch(self) -> None:
        """Record a request: first apply the idle timeout, then restart the idle timer."""
        with self._lock:
            self._expire_if_idle()
            self._last_activity = self._monotonic()

    def status(self) -> dict[str, bool]:
        """``{"authenticated", "competing", "connected"}`` as auth status reports them."""
        with self._lock:
            return {
                "authenticated": self.authenticated,
                "competing": self._competing,
                "connected": self._connected,
            }

    # -- transitions -------------------------------------------------------------------------

    def _open(self) -> None:
        self._connected = True
        self._authenticated = True
        self._competing = False
        self._accounts_queried = False
        self._subscriptions.clear()
        self._last_activity = self._monotonic()
        self._generation += 1

    def open_brokerage(self, compete: bool) -> None:
        """``/iserver/auth/ssodh/init``: (re)open the brokerage session (also after logout).

        While another login competes, only ``compete=True`` takes the session back.
        """
        with self._lock:
            self._connected = True
            if self._competing and not compete:
                return
            self._open()

    def reauthenticate(self, force: bool = False) -> None:
        """``/iserver/reauthenticate``: reopen the brokerage session of a logged-in user.

        Does nothing after ``/logout``, or while competing unless ``force``.
        """
        with self._lock:
            if not self._connected or (self._competing and not force):
                return
            self._open()

    def drop_brokerage(self) -> None:
        """The brokerage session ends (idle timeout, nightly reset); the login stays."""
        with self._lock:
            self._authenticated = False

    def take_over(self) -> None:
        """Another login takes the brokerage session (``competing: true``)."""
        with self._lock:
            self._authenticated = False
            self._competing = True

    def logout(self) -> None:
        """``/logout``: end the login and the brokerage session."""
        with self._lock:
            self._connected = False
            self._authenticated = False
            self._competing = False
            self._generation += 1

    # -- per-session market-data state -------------------------------------------------------

    @property
    def accounts_queried(self) -> bool:
        """True once ``/iserver/accounts`` was called in this brokerage session."""
        with self._lock:
            return self._accounts_queried

    def mark_accounts_queried(self) -> None:
        """Record a ``/iserver/accounts`` call."""
        with self._lock:
            self._accounts_queried = True

    def subscribe(self, conid: int, fields: Iterable[str]) -> tuple[bool, frozenset[str]]:
        """Add ``fields`` to ``conid``'s stream.

        Returns ``(new, fields)``: ``new`` is True when the stream did not exist (this request
        is the pre-flight), ``fields`` every field requested for the conid so far.
        """
        with self._lock:
            new = conid not in self._subscriptions
            current = self._subscriptions.setdefault(conid, set())
            current.update(fields)
            return new, frozenset(current)

    def unsubscribe(self, conid: int) -> bool:
        """Close ``conid``'s stream; False when there was none."""
        with self._lock:
            return self._subscriptions.pop(conid, None) is not None

    def unsubscribe_all(self) -> None:
        """Close every stream."""
        with self._lock:
            self._subscriptions.clear()
