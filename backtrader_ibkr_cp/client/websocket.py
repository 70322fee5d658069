"""The gateway's WebSocket as a market-data source, and its order and trade topics.

:class:`GatewaySocket` keeps one WebSocket to ``<api root>/ws`` open for the whole client: it
gets the session token from ``POST /tickle`` (through the client's transport: pacing, TLS,
typed errors), connects with the session cookie and the client's TLS policy
(:mod:`.ws_connect`), subscribes ``smd`` for every subscribed conid and ``sor``/``str`` while
someone listens, and keeps the socket healthy (:mod:`.ws_schedule`): an echo (``ech+hb``) every
``heartbeat_interval`` seconds, a ``tic`` every ``tic_interval`` seconds, a cut and a reconnect
when nothing at all arrives for ``silence_timeout`` seconds, a re-subscription of everything
every ``refresh_interval`` seconds (IBKR ends WebSocket market data after about 15 minutes)
and after every reconnect or return of the brokerage session, and reconnects with back-off
(``backoff``) whenever the socket is lost.

It plugs in where :class:`~backtrader_ibkr_cp.live.poller.SnapshotPoller` does (the live
runner's ``MarketSource``): :meth:`GatewaySocket.subscribe` / :meth:`~GatewaySocket.unsubscribe`
take listeners with ``on_snapshot(snapshot)`` and ``on_error(error)``. Each ``smd`` message is
merged into the conid's last state and handed over as a full
:class:`~backtrader_ibkr_cp.models.Snapshot`, read by the snapshot endpoint's own parser, so a
listener sees exactly what the poller would give it. ``on_error`` receives a
``GatewayConnectionError`` or ``RequestTimeout`` when the socket is lost or an attempt fails, an
``AuthenticationError`` when the gateway says the brokerage session is gone (``sts``, or a
refused log-in), a ``DataUnavailable`` for a conid the gateway refuses and a
``WebSocketUnavailable`` when the gateway serves no WebSocket.

Order and trade messages go to their own listeners (:data:`~.ws_events.OrderListener`,
:data:`~.ws_events.TradeListener`): one call per ``sor`` message with its order objects, one
per ``str`` message with its executions, at least once. Connection changes go to state
listeners as :class:`~.ws_events.SocketEvent` (connecting, connected, lost, reconnecting,
unsupported, closed); ``unsupported`` ends the socket, so the owner can fall back to polling.

Threading model: two threads, started by the first subscription (or :meth:`start`). The
reader thread owns the connection: it connects, reads every message (one
:class:`~.ws_link.Link` per connection), calls the listeners (market, order, trade and state
listeners run on it and must return quickly) and reconnects. The keeper thread sends the
echoes, ``tic`` and subscription changes, refreshes the subscriptions and cuts a silent
socket. Both wait through the injected clock (a ``FakeClock``
drives every interval in tests) and end when the cancel token is cancelled; no lock is held
while sending or waiting. :meth:`close` cancels, closes the socket (a close frame, at most
``close_timeout`` seconds), joins both threads and reports ``closed``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence

from websockets.sync.client import ClientConnection

from ..errors import (
    Cancelled,
    ConfigError,
    GatewayConnectionError,
    MarketError,
    TransportClosed,
    WebSocketUnavailable,
)
from ..models.snapshot import DEFAULT_FIELDS
from ..timing import Backoff, CancelToken, Clock, Signal
from .retry import RetryPolicy
from .ws_connect import WS_ENDPOINT, open_websocket
from .ws_events import (
    MarketListener,
    OrderListener,
    SocketApi,
    SocketEvent,
    SocketState,
    StateListener,
    TradeListener,
)
from .ws_link import Link, cut
from .ws_listeners import Listeners
from .ws_messages import session_cookie, session_token
from .ws_schedule import KeepAlive

__all__ = ["DEFAULT_REFRESH", "GatewaySocket"]

log = logging.getLogger(__name__)

#: Seconds between re-subscriptions: IBKR ends WebSocket market data after about 15 minutes.
DEFAULT_REFRESH = 300.0


def _positive(name: str, value: float | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        hint = " (None: off)" if optional else ""
        raise ConfigError(f"{name} must be a positive number of seconds{hint}, got {value!r}")


class GatewaySocket:
    """One WebSocket to the gateway (see the module docstring for the threading model).

    Args:
        api: the client's :class:`~.api.ApiClient` (its transport's TLS policy and clock;
            ``POST /tickle`` through it for the session token).
        fields: the ``smd`` field codes (default: the poller's, so snapshots match).
        heartbeat_interval: seconds between ``ech+hb`` echoes (IBKR: at least one a minute).
        tic_interval: seconds between ``tic`` messages, which keep the brokerage session
            alive (IBKR: at least one a minute).
        silence_timeout: seconds without any message (data, heartbeat, echo) after which the
            socket is taken for dead, cut and reopened; None: never. Keep it above the
            gateway's heartbeat (about 10 s) and ``heartbeat_interval``.
        refresh_interval: seconds between re-subscriptions of everything (IBKR ends market
            data after about 15 minutes); None: never.
        backoff: waits between reconnection attempts (``attempts=-1``: forever; default 0.5 s
            doubling to 30 s).
        open_timeout: seconds for each of the TCP connect, TLS and WebSocket handshakes.
        close_timeout: seconds :meth:`close` waits for the gateway's close frame.
        cookie_form: ``"json"`` (``api={"session":"..."}``, ibind's form, known to work with
            the gateway) or ``"plain"`` (``api=<session>``, IBKR's documented form).
        trade_days: days of executions a ``str`` subscription replays first (1-7).
        clock: time and waits (a ``FakeClock`` in tests); default: the transport's clock.
        cancel: the owner's token (the socket stops when it is cancelled).
        thread_name: prefix of the two threads' names.
    """

    def __init__(
        self,
        api: SocketApi,
        *,
        fields: Sequence[str] = DEFAULT_FIELDS,
        heartbeat_interval: float = 20.0,
        tic_interval: float = 60.0,
        silence_timeout: float | None = 35.0,
        refresh_interval: float | None = DEFAULT_REFRESH,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
        close_timeout: float = 1.0,
        cookie_form: str = "json",
        trade_days: int = 1,
        clock: Clock | None = None,
        cancel: CancelToken | None = None,
        thread_name: str = "ibkr-cp-websocket",
    ) -> None:
        _positive("heartbeat_interval", heartbeat_interval)
        _positive("tic_interval", tic_interval)
        _positive("silence_timeout", silence_timeout, optional=True)
        _positive("refresh_interval", refresh_interval, optional=True)
        _positive("open_timeout", open_timeout)
        _positive("close_timeout", close_timeout)
        codes = [str(code) for code in fields]
        if not 0 < len(codes) <= 50 or not all(code.isdigit() for code in codes):
            raise ConfigError(f"smd fields must be 1 to 50 numeric codes, e.g. 31, got {codes!r}")
        if cookie_form not in ("json", "plain"):
            raise ConfigError(f"cookie_form {cookie_form!r} is not known; use 'json' or 'plain'")
        if isinstance(trade_days, bool) or not isinstance(trade_days, int):
            raise ConfigError(f"trade_days must be an int from 1 to 7, got {trade_days!r}")
        if not 1 <= trade_days <= 7:
            raise ConfigError(f"trade_days must be from 1 to 7, got {trade_days}")
        self.api = api
        self.transport = api.transport
        self.fields = tuple(codes)
        self.heartbeat_interval = float(heartbeat_interval)
        self.tic_interval = float(tic_interval)
        self.silence_timeout = silence_timeout
        self.refresh_interval = refresh_interval
        self.backoff = backoff if backoff is not None else Backoff(initial=0.5, maximum=30.0)
        self.open_timeout = float(open_timeout)
        self.close_timeout = float(close_timeout)
        self.cookie_form = cookie_form
        self._clock = clock if clock is not None else self.transport.clock
        self._parent = cancel
        self._thread_name = thread_name
        self._listeners = Listeners(self.fields, trade_days)
        self._lock = threading.Lock()
        self._wake = Signal()
        self._pending: list[str] = []
        self._token: CancelToken | None = None
        self._threads: list[threading.Thread] = []
        self._closed_reported = True
        self._session: str | None = None  # the tickle's token (a secret: never logged)
        self._link: Link | None = None  # the open connection, guarded by _lock
        #: Connections that were logged in, in total.
        self.connections = 0

    # -- subscriptions (any thread) --------------------------------------------------------

    def _queue(self, command: str | None, *, start: bool = False) -> None:
        if command is not None:
            with self._lock:
                self._pending.append(command)
        if start:
            self.start()
        self._wake.set()

    def subscribe(self, conid: int, listener: MarketListener) -> None:
        """Deliver ``conid``'s snapshots to ``listener`` (the gateway answers the ``smd`` with
        the full state, then sends changes); starts the socket if needed."""
        self._queue(self._listeners.add_market(int(conid), listener), start=True)

    def unsubscribe(self, conid: int, listener: MarketListener | None = None) -> None:
        """Stop delivering ``conid`` to ``listener`` (to every listener when None); the last
        one out sends ``umd``."""
        self._queue(self._listeners.remove_market(int(conid), listener))

    def add_order_listener(self, listener: OrderListener) -> None:
        """Call ``listener(orders)`` for every ``sor`` message; the first one subscribes."""
        self._queue(self._listeners.add_orders(listener), start=True)

    def remove_order_listener(self, listener: OrderListener) -> None:
        """Stop calling ``listener``; the last one out sends ``uor``."""
        self._queue(self._listeners.remove_orders(listener))

    def add_trade_listener(self, listener: TradeListener) -> None:
        """Call ``listener(trades)`` for every ``str`` message (the last ``trade_days`` days
        first, then new executions); the first one subscribes."""
        self._queue(self._listeners.add_trades(listener), start=True)

    def remove_trade_listener(self, listener: TradeListener) -> None:
        """Stop calling ``listener``; the last one out sends ``utr``."""
        self._queue(self._listeners.remove_trades(listener))

    def add_state_listener(self, listener: StateListener) -> None:
        """Call ``listener(event)`` for every :class:`~.ws_events.SocketEvent` from now on."""
        self._listeners.add_watcher(listener)

    def remove_state_listener(self, listener: StateListener) -> None:
        self._listeners.remove_watcher(listener)

    @property
    def conids(self) -> list[int]:
        """The subscribed conids, in subscription order."""
        return self._listeners.conids

    @property
    def state(self) -> SocketState:
        """The latest :class:`~.ws_events.SocketState` (``CLOSED`` before :meth:`start`)."""
        return self._listeners.state

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader and keeper threads (idempotent; restartable after close)."""
        with self._lock:
            if self._token is not None and not self._token.cancelled:
                return
            token = self._parent.child() if self._parent is not None else CancelToken()
            self._token = token
            self._closed_reported = False
            self._threads = [
                threading.Thread(
                    target=loop, args=(token,), name=f"{self._thread_name}-{role}", daemon=True
                )
                for loop, role in ((self._read_loop, "reader"), (self._keep_loop, "keeper"))
            ]
            threads = list(self._threads)
        token.on_cancel(self._close_connection)
        for thread in threads:
            thread.start()

    def close(self, timeout: float | None = 10.0) -> None:
        """Cancel, close the socket (a close frame; at most ``close_timeout`` s), join both
        threads (at most ``timeout`` s each: a tickle or handshake in flight ends at its own
        timeout first) and report ``closed``. Subscriptions are kept for :meth:`start`."""
        with self._lock:
            token, threads = self._token, list(self._threads)
            report, self._closed_reported = not self._closed_reported, True
        if token is None:
            return
        token.cancel("the WebSocket was closed")
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
                if thread.is_alive():
                    log.warning("WebSocket thread %s still runs after %s s", thread.name, timeout)
        if report:
            self._listeners.emit(SocketEvent(SocketState.CLOSED))

    def join(self, timeout: float | None = None) -> bool:
        """Wait (at most ``timeout`` real seconds each) for both threads to end, as they do
        by themselves after ``unsupported`` or when the back-off gives up; True when they
        have. :meth:`close` is still needed to report ``closed``."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        return not any(thread.is_alive() for thread in threads)

    def __enter__(self) -> GatewaySocket:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _close_connection(self) -> None:
        """The token's cancel callback: close the open socket, which ends the reader's loop."""
        with self._lock:
            link = self._link
        self._wake.set()
        if link is not None:
            try:
                link.connection.close()
            except Exception:
                cut(link.connection)

    # -- the reader thread -----------------------------------------------------------------

    def _read_loop(self, token: CancelToken) -> None:
        failures = 0
        fresh_session = True
        state = SocketState.CONNECTING
        while not token.cancelled:
            self._listeners.emit(SocketEvent(state, attempt=failures))
            state = SocketState.RECONNECTING
            try:
                connection = self._open(fresh_session, token)
            except WebSocketUnavailable as exc:
                log.warning("%s", exc)
                self._listeners.emit(SocketEvent(SocketState.UNSUPPORTED, exc))
                self._listeners.market_error(None, exc)
                token.cancel("the gateway serves no WebSocket")
                return
            except TransportClosed as exc:
                self._listeners.emit(SocketEvent(SocketState.LOST, exc, failures + 1))
                token.cancel("the client was closed")
                return
            except Cancelled:
                return
            except MarketError as exc:
                failures += 1
                fresh_session = True
                if not self._lost(exc, failures, token):
                    return
                continue
            except Exception as exc:  # a bug below us must not end live data
                failures += 1
                if not self._lost(_unexpected("opening", exc), failures, token):
                    return
                continue
            try:
                error, greeted = self._serve(connection, token)
            except Exception as exc:  # a bug below us must not end live data
                error, greeted = _unexpected("reading", exc), False
            if token.cancelled:
                return
            failures = 1 if greeted else failures + 1
            fresh_session = not greeted  # a refused log-in may mean a new session token
            if not self._lost(error, failures, token):
                return

    def _open(self, fresh_session: bool, token: CancelToken) -> ClientConnection:
        if fresh_session or self._session is None:
            # No retries here: the socket's own back-off decides when to try again.
            answer = self.transport.request("POST", "/tickle", retry=RetryPolicy.no_retries())
            self._session = session_token(answer)
        token.raise_if_cancelled("opening the WebSocket")
        # The upgrade is a request to the gateway like any other: it takes a pacing slot, so
        # the socket never pushes the client over IBKR's 10 requests/s.
        with self.transport.pacer.slot(WS_ENDPOINT, cancel=token):
            return open_websocket(
                self.transport.tls,
                session_cookie(self._session, self.cookie_form),
                timeout=self.open_timeout,
                close_timeout=self.close_timeout,
            )

    def _lost(self, error: MarketError, failures: int, token: CancelToken) -> bool:
        """Report the loss, tell the market listeners, wait the back-off; False when the
        back-off allows no more attempts."""
        delay = self.backoff.delay(failures) if self.backoff.allows(failures) else None
        self._listeners.emit(SocketEvent(SocketState.LOST, error, failures, delay))
        self._listeners.market_error(None, error)
        if delay is None:
            log.warning("WebSocket gave up after %s failed attempts: %s", failures, error)
            token.cancel("the WebSocket gave up reconnecting")
            return False
        log.info("WebSocket lost (%s); next attempt in %.1f s", error, delay)
        self._clock.wait(delay, token)
        return not token.cancelled

    def _serve(self, connection: ClientConnection, token: CancelToken) -> tuple[MarketError, bool]:
        """Read ``connection`` until it ends: ``(why it ended, whether it was logged in)``."""
        assert self._session is not None
        with connection:
            self._listeners.forget_states()  # a new connection starts every conid afresh
            timers = KeepAlive(
                self.heartbeat_interval,
                self.tic_interval,
                self.silence_timeout,
                self.refresh_interval,
                self._clock.now(),
            )
            link = Link(
                connection,
                self._listeners,
                timers,
                self._session,
                self._clock,
                self._logged_in,
                self._take,
                self._wake.set,
            )
            with self._lock:
                self._link = link
            self._wake.set()
            if token.cancelled:  # close() ran before the link was published
                connection.close()
            try:
                return link.read()
            finally:
                with self._lock:
                    self._link = None
                self._wake.set()

    def _logged_in(self) -> None:
        with self._lock:
            self.connections += 1

    def _take(self, link: Link, everything: bool) -> list[str]:
        """The subscription commands to send on ``link`` now (the keeper thread): every
        subscription when ``everything`` (the changes queued so far are in it: a change is
        registered before it is queued), else the queued changes; nothing when ``link`` is
        no longer the open connection (the next one is sent everything)."""
        with self._lock:
            if link is not self._link:
                return []
            pending, self._pending = self._pending, []
            return self._listeners.commands() if everything else pending

    # -- the keeper thread -----------------------------------------------------------------

    def _keep_loop(self, token: CancelToken) -> None:
        clock = self._clock
        while not token.cancelled:
            self._wake.clear()
            with self._lock:
                link = self._link
                if link is None:
                    self._pending.clear()  # the next connection subscribes everything
            next_at = link.keep(clock.now()) if link else math.inf
            clock.wait(max(0.0, next_at - clock.now()), self._wake, token)

    def __repr__(self) -> str:
        return (
            f"GatewaySocket({self.transport.tls.login_url}, {self.state.value}, "
            f"{len(self.conids)} conids)"
        )


def _unexpected(doing: str, exc: Exception) -> MarketError:
    log.error("%s the WebSocket failed unexpectedly", doing.capitalize(), exc_info=exc)
    return GatewayConnectionError(
        f"{doing} the WebSocket failed unexpectedly ({type(exc).__name__}: {exc}); it is "
        "reopened; please report this",
        endpoint=WS_ENDPOINT,
    )
