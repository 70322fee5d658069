"""The HTTP boundary: one request loop that paces, sends, maps failures once, and retries.

:meth:`Transport.request` asks the :class:`~.pacing.Pacer` for a slot, sends with
``requests``, maps the outcome to this package's error tree exactly once (``raise ... from``
the ``requests`` exception), asks the :class:`~.retry.RetryPolicy` whether to try again and how
long to wait, waits, and repeats. The mapping itself (timeouts, refused connections, TLS,
401, 429, 5xx, HTML pages, malformed bodies, in-band ``{"error": ...}``) is in
:mod:`.responses`. After a 429 the shared pacer is penalized, so no thread sends until the
gateway's penalty is over.

Nothing here logs a query string, and messages never carry cookies, tokens or account ids.

Threading model: a Transport is shared by every thread of a client. ``requests.Session``'s
connection pool is thread-safe; the pacer serializes only the decision to send; listeners are
called on the thread that made the request.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from ..errors import ConfigError, MarketError, RateLimitExceeded, TransportClosed
from ..timing import SYSTEM_CLOCK, CancelToken, Clock
from .pacing import Pacer, PacingCancelled, SlotHold
from .responses import AccountsRequired, Call, answer_timed_out, decode, failure, scrub
from .retry import RetryPolicy, retry_cause
from .tls import TlsPolicy

__all__ = [
    "EVENT_KINDS",
    "AccountsRequired",
    "ClientEvent",
    "Listener",
    "Transport",
    "TransportClosed",
    "scrub",
]

log = logging.getLogger(__name__)

#: The kinds of :class:`ClientEvent`.
EVENT_KINDS = (
    "request",
    "retry",
    "rate_limited",
    "reauthenticated",
    "session_lost",
    "keepalive_failed",
)


class _ScrubbedLog(logging.Filter):
    """Replaces account ids in the records of urllib3's connection log (it logs every
    request line at DEBUG, order paths included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        return True


_URLLIB3_LOG = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, _ScrubbedLog) for f in _URLLIB3_LOG.filters):
    _URLLIB3_LOG.addFilter(_ScrubbedLog())


@dataclass(frozen=True)
class ClientEvent:
    """Something a client did, for metrics and logs; never carries a secret.

    ``kind`` is one of :data:`EVENT_KINDS`: ``"request"`` (details: method, path, status —
    None when no answer came —, seconds), ``"retry"`` (method, path, attempt, cause,
    sleep_seconds, error), ``"rate_limited"`` (path, retry_after, penalty_seconds),
    ``"reauthenticated"``, ``"session_lost"``, ``"keepalive_failed"``.
    """

    kind: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


#: A callable that receives every :class:`ClientEvent`.
Listener = Callable[[ClientEvent], None]
#: Maps a non-``requests`` exception raised while sending to a MarketError (or None).
ErrorMapper = Callable[[Exception], "MarketError | None"]


def _timeouts(timeout: object) -> tuple[float, float]:
    values = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    if len(values) != 2 or not all(
        not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v > 0
        for v in values
    ):
        raise ConfigError(
            f"timeout={timeout!r} is invalid; use seconds > 0 (e.g. 10.0) or a "
            "(connect, read) pair (e.g. (3.05, 30.0))"
        )
    return float(values[0]), float(values[1])


class Transport:
    """Sends requests to one gateway with pacing, retries, TLS policy and typed errors.

    Args:
        base_url: the gateway, ``https://localhost:5000`` or ``.../v1/api`` (see
            :func:`~.tls.normalize_base_url`).
        session: a ``requests.Session`` to use (its adapters, headers and cookies are kept;
            it is not closed by :meth:`close`). Default: a new one, closed by :meth:`close`.
        verify: the TLS policy (see :mod:`.tls`): None, True, False, a CA bundle path or
            ``"sha256:<fingerprint>"``.
        timeout: seconds, one float for connect and read, or a ``(connect, read)`` pair. The
            read timeout bounds each wait for data, not the whole answer.
        pacer: the :class:`Pacer` to share (default: one with IBKR's documented limits).
        retry: the default :class:`RetryPolicy` (default ``RetryPolicy()``).
        allow_insecure_http: allow ``http://`` to a non-loopback host.
        on_event: a first listener (see :meth:`add_listener`).
        clock: waits between retries go through it and end when :meth:`close` cancels
            :attr:`cancel_token` (a fake clock in tests).
    """

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        verify: bool | str | None = None,
        timeout: float | tuple[float, float] = 10.0,
        pacer: Pacer | None = None,
        retry: RetryPolicy | None = None,
        allow_insecure_http: bool = False,
        on_event: Listener | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.tls = TlsPolicy.build(verify, base_url, allow_insecure_http)
        self.timeout = _timeouts(timeout)
        self.pacer = pacer if pacer is not None else Pacer()
        self.retry = retry if retry is not None else RetryPolicy()
        self._own_session = session is None
        self._session = session if session is not None else requests.Session()
        self.tls.mount(self._session, own=self._own_session)
        self._clock = clock
        #: Cancelled by :meth:`close`: ends every wait of this client (pacing, retries,
        #: session recovery).
        self.cancel_token = CancelToken()
        self._closed = self.cancel_token
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = (on_event,) if on_event is not None else ()
        self._server_date: tuple[datetime, float] | None = None
        self._error_mappers: tuple[ErrorMapper, ...] = ()

    # -- properties --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API root, ending in ``/v1/api``."""
        return self.tls.base_url

    @property
    def login_url(self) -> str:
        """The gateway's root, where a user logs in (``https://localhost:5000``)."""
        return self.tls.login_url

    @property
    def session(self) -> requests.Session:
        """The ``requests.Session`` in use."""
        return self._session

    @property
    def clock(self) -> Clock:
        """The clock every wait of this transport (and its session recovery) uses."""
        return self._clock

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def server_date(self) -> tuple[datetime, float] | None:
        """The last HTTP ``Date`` header seen (UTC, whole seconds: the gateway's clock was at
        or after it) and the :attr:`clock` time when it arrived; None before any answer."""
        with self._lock:
            return self._server_date

    # -- events ----------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every :class:`ClientEvent`. A listener that raises is
        logged and otherwise ignored."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

    def emit(self, event: ClientEvent) -> None:
        """Send ``event`` to every listener (used by the session layer too)."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.warning(
                    "event listener %r failed on a %r event", listener, event.kind, exc_info=True
                )

    def add_error_mapper(self, mapper: ErrorMapper) -> None:
        """Map exceptions that are not ``requests`` failures (e.g. a cassette that has no
        recording for a request) to a :class:`MarketError`: ``mapper(exc)`` returns the error
        to raise, or None to pass. Unmapped foreign exceptions propagate unchanged."""
        with self._lock:
            self._error_mappers = (*self._error_mappers, mapper)

    def _map_foreign(self, exc: Exception) -> MarketError | None:
        for mapper in self._error_mappers:
            mapped = mapper(exc)
            if mapped is not None:
                return mapped
        return None

    # -- requests --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Send ``method path`` (e.g. ``"GET", "/iserver/accounts"``) and return the decoded
        JSON. A POST without ``json`` sends ``{}`` (the gateway wants a Content-Length).

        ``retry`` overrides this transport's policy for this call. Raises the mapped error
        (see the module docstring) when the policy gives up; TransportClosed after close().
        """
        method = method.upper()
        shown = scrub(path)  # what messages, events and logs say: never an account id
        if not path.startswith("/"):
            raise ConfigError(f"path {path!r} must start with '/', e.g. '/iserver/accounts'")
        if method == "POST" and json is None:
            json = {}
        policy = retry if retry is not None else self.retry
        while True:
            if self._closed.is_set():
                raise TransportClosed(
                    f"{method} {shown}: this client was closed; create a new one",
                    endpoint=shown,
                )
            try:
                return self._send(method, path, params, json, policy)
            except MarketError as error:
                policy = policy.increment(error)
                delay = policy.sleep_seconds(error)
                self._announce_retry(method, shown, error, policy, delay)
                self._wait(delay, error)

    def _announce_retry(
        self, method: str, path: str, error: MarketError, policy: RetryPolicy, delay: float
    ) -> None:
        log.info(
            "%s %s failed (%s); retry %d in %.2f s", method, path, error, policy.attempts, delay
        )
        self.emit(
            ClientEvent(
                "retry",
                f"{method} {path}: retry {policy.attempts} in {delay:.2f} s after: {error}",
                {
                    "method": method,
                    "path": path,
                    "attempt": policy.attempts,
                    "cause": retry_cause(error),
                    "sleep_seconds": delay,
                    "error": type(error).__name__,
                },
            )
        )

    def _wait(self, seconds: float, error: MarketError) -> None:
        if self._clock.wait(seconds, self._closed):
            raise error

    @contextlib.contextmanager
    def _slot(self, method: str, path: str, policy: RetryPolicy) -> Iterator[SlotHold]:
        """The pacer's slot; TransportClosed when close() cancels the wait for it. A policy
        that does not retry a 429 does not wait out a penalty either (RateLimitExceeded)."""
        waits = _waits_out_penalty(policy)
        try:
            with self.pacer.slot(path, cancel=self._closed, wait_out_penalty=waits) as hold:
                yield hold
        except PacingCancelled as exc:
            raise TransportClosed(
                f"{method} {scrub(path)}: this client was closed while the request waited to "
                "be sent",
                endpoint=scrub(path),
            ) from exc

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Any,
        policy: RetryPolicy,
    ) -> Any:
        call = Call(method, path, self.base_url, self.login_url)
        self.tls.before_request()
        with self._slot(method, path, policy) as hold:
            started = time.monotonic()
            try:
                try:
                    response = self._session.request(
                        method,
                        call.url,
                        params=params,
                        json=body,
                        timeout=self.timeout,
                        verify=self.tls.verify,
                        allow_redirects=False,
                        headers={"Accept": "application/json"},
                    )
                finally:
                    self._close_late_pools()
            except requests.exceptions.RequestException as exc:
                self._record(method, call.shown, None, time.monotonic() - started)
                if answer_timed_out(exc):
                    # Sent, and no answer in time: the gateway may still be working on it.
                    hold.keep(self.timeout[1])
                raise failure(exc, call, timeout=self.timeout, tls=self.tls) from exc
            except MarketError:
                raise
            except Exception as exc:
                mapped = self._map_foreign(exc)
                if mapped is None:
                    raise
                self._record(method, call.shown, None, time.monotonic() - started)
                raise mapped from exc
            # still in the slot: a 429 penalizes the pacer before anyone can take the slot
            self._record(method, call.shown, response.status_code, time.monotonic() - started)
            self._note_date(response)
            try:
                return decode(response, call, rate_limit_wait=policy.rate_limit_wait)
            except RateLimitExceeded as error:
                self._penalize(error, call.where, policy)
                raise

    def _close_late_pools(self) -> None:
        """A request that was already past its checks when :meth:`close` ran may have made a
        new connection pool (the session had forgotten the closed ones): close it too, so a
        closed client never leaves a connection open."""
        if self._closed.is_set() and self._own_session:
            _close_pools(self._session)

    def _record(self, method: str, path: str, status: int | None, seconds: float) -> None:
        log.debug("%s %s -> %s in %.3f s", method, path, status or "no answer", seconds)
        self.emit(
            ClientEvent(
                "request",
                f"{method} {path} -> {status or 'no answer'} in {seconds:.3f} s",
                {"method": method, "path": path, "status": status, "seconds": seconds},
            )
        )

    def _note_date(self, response: requests.Response) -> None:
        header = response.headers.get("Date")
        if not header:
            return
        try:
            when = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        with self._lock:
            self._server_date = (when.astimezone(timezone.utc), self._clock.now())

    def _penalize(self, error: RateLimitExceeded, where: str, policy: RetryPolicy) -> None:
        """Hold every request of this pacer back after a 429 (IBKR's penalty box)."""
        after = error.retry_after
        penalty = min(
            after if after is not None else policy.rate_limit_wait, policy.max_retry_after
        )
        self.pacer.penalize(penalty)
        if _waits_out_penalty(policy):
            log.warning("%s: rate limited; holding every request for %g s", where, penalty)
        else:  # the caller gets the error; its other requests fail rather than wait
            log.info("%s: rate limited for %g s; not waiting (no 429 retries)", where, penalty)
        self.emit(
            ClientEvent(
                "rate_limited",
                f"{where}: rate limited by the gateway; holding every request for {penalty:g} s",
                {"path": error.endpoint, "retry_after": after, "penalty_seconds": penalty},
            )
        )

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop: later requests raise TransportClosed, waits between retries end now, and the
        session is closed if this transport created it. Safe to call twice."""
        self._closed.cancel("the client was closed")
        self.pacer.interrupt()
        if self._own_session:
            _close_pools(self._session)
            self._session.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Transport({self.base_url!r})"


def _waits_out_penalty(policy: RetryPolicy) -> bool:
    """True when ``policy`` retries a 429, so its requests wait out a penalty in the pacer;
    False (a command line): they fail with RateLimitExceeded at once instead."""
    return policy.rate_limit_retries > 0 and "rate_limit" in policy.retry_on


def _close_pools(session: requests.Session) -> None:
    """Close every connection pool of ``session``'s adapters now. ``Session.close()`` only
    makes urllib3 forget its pools; a pool still referenced elsewhere (by a kept exception's
    response, a log record) would keep its keep-alive sockets open until garbage collection."""
    for adapter in session.adapters.values():
        manager = getattr(adapter, "poolmanager", None)
        pools = getattr(manager, "pools", None)
        if pools is None:
            continue
        for key in list(pools.keys()):
            pool = pools.get(key)
            if pool is not None:
                pool.close()
