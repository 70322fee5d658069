"""Keeping the brokerage session alive, and reopening it once when it is lost.

IBKR's gateway drops an idle session after about 5-6 minutes (tickle about once a minute),
resets it daily, and loses it to any other login of the same user (``competing``). While the
gateway itself is still logged in (``connected``), ``POST /iserver/auth/ssodh/init`` with
``{"publish": true, "compete": true}`` reopens the brokerage session; when it is not, only a
person can log in again on the gateway's page.

- :class:`AuthRecovery` is the one place that reopens the session. The
  :class:`~.api.ApiClient` calls :meth:`AuthRecovery.recover` when an ``/iserver`` call fails
  with AuthenticationError, then retries the call once. Concurrent failures from several
  threads reopen the session once: each caller passes the recovery *generation* it saw before
  its request, and a caller whose generation is already stale just retries.
- :class:`SessionKeeper` runs the keep-alive thread: a ``POST /tickle`` every
  ``tickle_interval`` seconds, recovery when a tickle reports the session unauthenticated,
  ``"keepalive_failed"`` events (never a crash) when a tickle fails.
- :class:`SessionChecks` counts the client's questions about the session (auth status,
  ``ssodh/init``, tickle) and remembers the last one that found it usable, so that a report
  of a lost session that waited in a queue can be judged: when a check that began after the
  report found the session usable, the loss it reports is over.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Protocol

from ..errors import AuthenticationError, ConfigError, MarketError
from ..models.session import AuthStatus, TickleResult
from ..timing import SYSTEM_CLOCK, Cancelled, Clock, Signal
from .transport import ClientEvent, Transport

__all__ = ["AuthRecovery", "SessionApi", "SessionChecks", "SessionKeeper"]

log = logging.getLogger(__name__)


class SessionApi(Protocol):
    """What the session layer needs of :class:`~.api.ApiClient` (which owns an
    :class:`AuthRecovery` and passes itself in)."""

    @property
    def transport(self) -> Transport: ...

    @property
    def recovery(self) -> AuthRecovery: ...

    def auth_status(self) -> AuthStatus: ...

    def init_brokerage_session(self, compete: bool = True) -> AuthStatus: ...

    def tickle(self) -> TickleResult: ...


class SessionChecks:
    """Which checks of the session found it usable (thread-safe).

    Each check (a request whose answer says whether the session is usable) takes a number
    from :meth:`begin` *before* it is sent, and reports :meth:`usable` with that number when
    the answer says the session is usable. :meth:`mark` is the number of the last check begun;
    :meth:`usable_since` tells whether a check begun after a mark found the session usable.
    A check begun before the mark proves nothing about a loss seen at the mark, even when it
    answered after it: the session may have been lost while that answer was on its way.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._begun = 0
        self._usable = 0

    def begin(self) -> int:
        """Number a check about to be sent."""
        with self._lock:
            self._begun += 1
            return self._begun

    def usable(self, check: int) -> None:
        """Check ``check`` found the session usable."""
        with self._lock:
            self._usable = max(self._usable, check)

    def mark(self) -> int:
        """Now, in checks: take it when a loss of the session is reported."""
        with self._lock:
            return self._begun

    def usable_since(self, mark: int) -> bool:
        """True when a check begun after ``mark`` found the session usable."""
        with self._lock:
            return self._usable > mark


class AuthRecovery:
    """Reopens the brokerage session, once for any number of threads that lost it together.

    Args:
        api: the client whose session this is (its session calls are never recovered).
        settle_timeout: seconds to wait, after ``ssodh/init``, for the auth status to say
            authenticated (the gateway needs a moment).
        poll_interval: seconds between auth-status checks meanwhile.
        clock: time and waits (a fake one in tests).
        cancel: ends every wait (the client is closing).

    ``reopen`` (default True) may be set to False for diagnostics that must not act: a
    missing or competing session is then reported (AuthenticationError) and ``ssodh/init``
    is never sent, so another login (TWS, the mobile app) keeps its session.
    """

    def __init__(
        self,
        api: SessionApi,
        *,
        settle_timeout: float = 5.0,
        poll_interval: float = 0.25,
        clock: Clock = SYSTEM_CLOCK,
        cancel: Signal | None = None,
    ) -> None:
        if settle_timeout < 0 or poll_interval <= 0:
            raise ConfigError(
                f"settle_timeout must be >= 0 and poll_interval > 0 seconds, got "
                f"{settle_timeout!r} and {poll_interval!r}"
            )
        self._api = api
        self.settle_timeout = settle_timeout
        self.poll_interval = poll_interval
        self._clock = clock
        self._cancel = cancel
        self._lock = threading.Lock()
        self._generation = 0
        self._recovering: Signal | None = None
        self._last_failure: AuthenticationError | None = None
        #: Which checks of the session found it usable (the ApiClient's session calls).
        self.checks = SessionChecks()
        self.recoveries = 0
        self.reopen = True

    @property
    def generation(self) -> int:
        """Increases with every recovery attempt; read it before a request, pass it to
        :meth:`recover` after that request failed."""
        return self._generation

    def login_error(self, *, endpoint: str | None = None, detail: str = "") -> AuthenticationError:
        """The error that tells a person to log in on the gateway's page."""
        url = self._api.transport.login_url
        said = f" (gateway: {detail})" if detail else ""
        return AuthenticationError(
            f"Session not authenticated: log in at {url} (the gateway's login page) and "
            f"retry{said}",
            endpoint=endpoint,
            status=401,
            gateway_message=detail or None,
        )

    def not_reopened(self, status: AuthStatus) -> AuthenticationError:
        """The error for a session that ``reopen=False`` leaves as it is (competing, or
        connected but not open), saying how to open it."""
        if status.competing:
            what = (
                "another login (TWS, IBKR Mobile, a browser or another gateway) holds the "
                "brokerage session (competing); it was left alone. Log out of the other one, "
                "or run a command that uses the gateway (e.g. `ibkr-cp bars ...`, a backtest): "
                "it takes the session over"
            )
        else:
            what = (
                "the gateway is logged in but its brokerage session is not open; a command "
                "that uses the gateway (e.g. `ibkr-cp bars ...`, a backtest) opens it"
            )
        return AuthenticationError(
            f"Session not usable: {what}",
            endpoint="/iserver/auth/status",
            status=401,
            gateway_message=status.message or status.fail or None,
        )

    def ensure_authenticated(self, *, even_disconnected: bool = False) -> AuthStatus:
        """Make the brokerage session usable, or raise AuthenticationError saying where to log in.

        Authenticated and not competing: returned as is. Connected (the gateway is logged in)
        but not authenticated, or competing: ``ssodh/init`` with ``compete: true``, then the
        auth status is polled for up to ``settle_timeout`` seconds. Not connected: a person
        must log in, unless ``even_disconnected`` (a reconnection the user asked for): then
        ``ssodh/init`` is tried once all the same (the gateway may only have lost its link to
        IBKR's backend); if it does not connect the session, a person must log in.
        """
        try:
            status = self._api.auth_status()
        except AuthenticationError as exc:
            raise self.login_error(endpoint=exc.endpoint, detail=exc.gateway_message or "") from exc
        if status.authenticated and not status.competing:
            return status
        if not status.connected and not status.competing and not even_disconnected:
            raise self.login_error(
                endpoint="/iserver/auth/status", detail=status.message or status.fail
            )
        if not self.reopen:
            raise self.not_reopened(status)
        try:
            status = self._api.init_brokerage_session(compete=True)
        except AuthenticationError as exc:
            raise self.login_error(endpoint=exc.endpoint, detail=exc.gateway_message or "") from exc
        deadline = self._clock.now() + self.settle_timeout
        while not (status.authenticated and not status.competing):
            if self._clock.now() >= deadline:
                raise self.login_error(
                    endpoint="/iserver/auth/ssodh/init", detail=status.message or status.fail
                )
            self._wait(self.poll_interval)
            status = self._api.auth_status()
        return status

    def _wait(self, seconds: float, *signals: Signal) -> None:
        cancel = self._cancel
        if self._clock.wait(seconds, cancel, *signals) and cancel is not None and cancel.is_set():
            raise Cancelled("reopening the brokerage session was cancelled: the client closed")

    def recover(self, seen_generation: int, error: MarketError | None = None) -> None:
        """Reopen the session after ``error`` unless another thread already did since
        ``seen_generation``. Raises AuthenticationError when it cannot (a person must log
        in); the other threads that lost the session with it wait for that one attempt (no
        lock is held while it runs) and get the same answer."""
        with self._lock:
            mine = self._generation == seen_generation
            if mine:
                self._generation += 1
                self._recovering = Signal()
            running = self._recovering
        if not mine:
            if running is not None:
                self._wait(math.inf, running)
            with self._lock:
                failure = self._last_failure
            if failure is not None:
                raise AuthenticationError(
                    failure.message,
                    endpoint=failure.endpoint,
                    status=failure.status,
                    gateway_message=failure.gateway_message,
                ) from failure
            return
        assert running is not None
        try:
            self._reopen(error)
        finally:
            with self._lock:
                self._recovering = None
            running.set()

    def _reopen(self, error: MarketError | None) -> None:
        transport = self._api.transport
        reason = str(error) if error is not None else "the gateway reports no session"
        transport.emit(
            ClientEvent(
                "session_lost",
                f"brokerage session lost ({reason}); reopening it",
                {"endpoint": getattr(error, "endpoint", None)},
            )
        )
        try:
            status = self.ensure_authenticated()
        except AuthenticationError as exc:
            with self._lock:
                self._last_failure = exc
            log.warning("%s", exc)
            raise
        with self._lock:
            self._last_failure = None
            self.recoveries += 1
            generation = self._generation
        log.info("brokerage session reopened (%s)", status.message or "authenticated")
        transport.emit(
            ClientEvent(
                "reauthenticated",
                "brokerage session reopened",
                {"generation": generation, "competing": status.competing},
            )
        )


class SessionKeeper:
    """The keep-alive thread for one :class:`~.api.ApiClient`.

    :meth:`start` runs a daemon thread that tickles every ``tickle_interval`` seconds (IBKR:
    about once a minute; the session drops after ~5 idle minutes), waiting on the clock so
    :meth:`close` ends the wait at once; :meth:`close` signals, then joins (the owner closes
    the transport in between, which ends a tickle in flight). Calling :meth:`start` twice is
    harmless, and :meth:`start` after :meth:`close` starts a new thread.

    Args:
        api: the client to keep alive.
        tickle_interval: seconds between tickles (> 0).
        clock: time and waits (a fake one in tests); also stamps :attr:`last_tickle`.
    """

    def __init__(
        self,
        api: SessionApi,
        tickle_interval: float = 60.0,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not tickle_interval > 0:
            raise ConfigError(
                f"tickle_interval must be > 0 seconds (IBKR: about 60), got {tickle_interval!r}"
            )
        self._api = api
        self.tickle_interval = float(tickle_interval)
        self._clock = clock
        self._stop = Signal()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.tickles = 0
        self.failures = 0
        self.last_tickle: float | None = None
        self.last_result: TickleResult | None = None

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def ensure_authenticated(self, *, even_disconnected: bool = False) -> AuthStatus:
        """See :meth:`AuthRecovery.ensure_authenticated`."""
        return self._api.recovery.ensure_authenticated(even_disconnected=even_disconnected)

    def start(self) -> None:
        """Start the keep-alive thread (no-op when it already runs)."""
        with self._lock:
            if self.running:
                return
            stop = self._stop = Signal()
            self._thread = threading.Thread(
                target=self._run, args=(stop,), name="ibkr-cp-keepalive", daemon=True
            )
            self._thread.start()

    def signal(self) -> None:
        """Ask the thread to stop (returns at once; :meth:`close` also joins)."""
        self._stop.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for it to end. Safe to call
        twice, and before :meth:`start`."""
        with self._lock:
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> SessionKeeper:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, stop: Signal) -> None:
        while not self._clock.wait(self.tickle_interval, stop):
            self.tickle_once()

    def tickle_once(self) -> TickleResult | None:
        """One keep-alive step: tickle, and reopen the session if the tickle says it is gone.

        Never raises: failures become ``"keepalive_failed"`` events. Returns the tickle's
        result, or None when the tickle failed.
        """
        recovery = self._api.recovery
        seen = recovery.generation
        try:
            result = self._api.tickle()
        except AuthenticationError as exc:
            self._recover(seen, exc)  # a "keepalive_failed" event only if that fails too
            return None
        except Exception as exc:
            self._failed(exc)
            return None
        self.tickles += 1
        self.last_tickle = self._clock.now()
        self.last_result = result
        if not result.authenticated or result.competing:
            state = "competing" if result.competing else "not authenticated"
            self._recover(
                seen,
                AuthenticationError(
                    f"/tickle: the brokerage session is {state}", endpoint="/tickle"
                ),
            )
        return result

    def _recover(self, seen: int, error: AuthenticationError) -> None:
        try:
            self._api.recovery.recover(seen, error)
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if not isinstance(exc, MarketError):
            log.error("keep-alive failed unexpectedly", exc_info=exc)
        else:
            log.warning("keep-alive failed: %s", exc)
        try:
            self._api.transport.emit(
                ClientEvent(
                    "keepalive_failed",
                    f"keep-alive failed: {exc}",
                    {"error": type(exc).__name__},
                )
            )
        except Exception:  # pragma: no cover - emit() already guards listeners
            log.exception("keep-alive event failed")
