"""One open WebSocket connection to the gateway: its log-in, its messages and its upkeep.

A :class:`Link` lives from a successful handshake to the end of that connection. The socket's
reader thread runs :meth:`Link.read` (every message: log-in, ``sts``, market data, orders,
trades, errors) until the connection ends, and learns why it ended and whether it was ever
logged in. The keeper thread calls :meth:`Link.keep`, which sends what is due (queued
subscription changes, the echo, ``tic``, a refresh of every subscription) or cuts the
connection when it went silent (:mod:`.ws_schedule` keeps the times), and says when to come
back. Listeners are called through :class:`~.ws_listeners.Listeners` on the reader thread.

Subscription commands are sent by the keeper alone. When the connection is logged in, or
the gateway says a new brokerage session began (which starts without subscriptions), the
reader only asks for every subscription to be sent again; the keeper sends them, then the
changes queued after. With two senders, a change queued before the log-in could reach the
gateway after the full set (an ``umd`` after the ``smd`` that follows it), and the conid
would be left unsubscribed while the client believes it is.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from ..errors import (
    AuthenticationError,
    DataIntegrityError,
    DataUnavailable,
    GatewayConnectionError,
    MarketError,
    RequestTimeout,
)
from ..timing import Clock
from .ws_connect import WS_ENDPOINT
from .ws_events import SocketEvent, SocketState
from .ws_listeners import Listeners
from .ws_messages import (
    ECHO,
    TIC,
    AuthState,
    Echo,
    Greeting,
    Heartbeat,
    MarketUpdate,
    OrderUpdate,
    TopicError,
    TradeUpdate,
    WaitingForSession,
    parse_message,
    session_message,
)
from .ws_schedule import KeepAlive

__all__ = ["Link", "closed_error", "cut", "send"]

log = logging.getLogger("backtrader_ibkr_cp.client.websocket")

#: The WebSocket close code of a refused log-in (RFC 6455: policy violation).
POLICY_VIOLATION = 1008


def send(connection: ClientConnection, commands: list[str]) -> None:
    """Send ``commands`` in order; stop quietly when the connection is gone (its reader sees
    the loss and reconnects)."""
    for command in commands:
        try:
            connection.send(command)
        except (ConnectionClosed, OSError):
            return


def cut(connection: ClientConnection) -> None:
    """Cut the TCP connection under ``connection`` (no close frame): its reader ends."""
    with contextlib.suppress(OSError):
        connection.socket.shutdown(socket.SHUT_RDWR)


def closed_error(connection: ClientConnection, closed: ConnectionClosed | None) -> MarketError:
    """Why a connection ended, from its close frame (``closed`` None: it closed normally)."""
    frame = closed.rcvd if closed is not None else None
    if closed is not None and frame is None:
        return GatewayConnectionError(
            "the gateway's WebSocket connection broke (no close frame); reconnecting",
            endpoint=WS_ENDPOINT,
        )
    code = frame.code if frame is not None else connection.close_code
    reason = frame.reason if frame is not None else connection.close_reason or ""
    if code == POLICY_VIOLATION:
        return AuthenticationError(
            f"the gateway refused the WebSocket log-in ({reason or 'policy violation'}); "
            "reopen the brokerage session (the client does on its next request); the socket "
            "reconnects",
            endpoint=WS_ENDPOINT,
            gateway_message=reason,
        )
    detail = f"code {code}" + (f": {reason}" if reason else "")
    return GatewayConnectionError(
        f"the gateway closed the WebSocket ({detail}); reconnecting", endpoint=WS_ENDPOINT
    )


class Link:
    """One connection (thread-safe: the reader and the keeper share it).

    Args:
        connection: the handshaken connection.
        listeners: the socket's registry (deliveries, state events, subscription commands).
        timers: the connection's :class:`~.ws_schedule.KeepAlive`.
        session: the session token (answers ``waiting for session``).
        clock: the socket's clock.
        logged_in: called once when the gateway logs the connection in.
        take: the subscription commands to send on this link now (the keeper thread):
            ``take(link, everything)`` gives every subscription when ``everything`` (the
            queued changes are in it), else the queued changes; nothing for a link that is
            no longer the socket's open one.
        wake: wakes the keeper (something is due).
    """

    def __init__(
        self,
        connection: ClientConnection,
        listeners: Listeners,
        timers: KeepAlive,
        session: str,
        clock: Clock,
        logged_in: Callable[[], None],
        take: Callable[[Link, bool], list[str]],
        wake: Callable[[], None],
    ) -> None:
        self.connection = connection
        self._listeners = listeners
        self._timers = timers
        self._session = session
        self._clock = clock
        self._on_login = logged_in
        self._take = take
        self._wake = wake
        self._resubscribe = False  # send every subscription again (guarded by _lock)
        self._lock = threading.Lock()
        self._ready = False
        self._authenticated: bool | None = None
        self._sts_seen = False
        self._cut: MarketError | None = None

    @property
    def ready(self) -> bool:
        """True once logged in (the greeting, or ``sts`` authenticated, arrived)."""
        return self._ready

    # -- the reader thread -----------------------------------------------------------------

    def read(self) -> tuple[MarketError, bool]:
        """Handle every message until the connection ends: ``(why it ended, whether it was
        logged in)``."""
        closed: ConnectionClosed | None = None
        try:
            for raw in self.connection:
                with self._lock:
                    self._timers.seen(self._clock.now())
                self._handle(raw)
        except ConnectionClosed as exc:
            closed = exc
        with self._lock:
            return self._cut or closed_error(self.connection, closed), self._ready

    def _handle(self, raw: str | bytes) -> None:
        try:
            message = parse_message(raw)
        except DataIntegrityError as exc:
            log.warning("%s", exc)
            return
        if isinstance(message, MarketUpdate):
            self._listeners.market_update(message)
        elif isinstance(message, Greeting):
            self._logged_in()
        elif isinstance(message, AuthState):
            self._auth_state(message)
        elif isinstance(message, OrderUpdate):
            self._listeners.orders(message.orders)
        elif isinstance(message, TradeUpdate):
            self._listeners.trades(message.trades)
        elif isinstance(message, WaitingForSession):
            send(self.connection, [session_message(self._session)])
        elif isinstance(message, TopicError):
            self._topic_error(message)
        elif isinstance(message, (Heartbeat, Echo)) and self._ready:
            self._listeners.alive()

    def _logged_in(self) -> None:
        with self._lock:
            if self._ready:
                return
            self._ready = True
            self._authenticated = True
            self._resubscribe = True
            self._timers.logged_in(self._clock.now())
        self._on_login()
        self._listeners.emit(SocketEvent(SocketState.CONNECTED))
        self._wake()

    def _auth_state(self, message: AuthState) -> None:
        with self._lock:
            first, self._sts_seen = not self._sts_seen, True
            ready, was = self._ready, self._authenticated
            if message.authenticated is not None:
                self._authenticated = message.authenticated
        if message.authenticated is True and not ready:
            self._logged_in()
        elif message.authenticated is True and not first:
            # Back, or a new brokerage session: the gateway starts it without subscriptions.
            if was is False:
                self._listeners.emit(SocketEvent(SocketState.CONNECTED))
            with self._lock:
                self._resubscribe = True
            self._wake()
        elif message.authenticated is False and was is not False:
            why = "another login took it" if message.competing else "it expired or was reset"
            error = AuthenticationError(
                f"the gateway's brokerage session ended ({why}); reopen it (the client does "
                "on its next request); the socket subscribes again when it is back",
                endpoint=WS_ENDPOINT,
                gateway_message=message.message,
            )
            self._listeners.emit(SocketEvent(SocketState.LOST, error))
            self._listeners.market_error(None, error)

    def _topic_error(self, message: TopicError) -> None:
        head, _, target = message.topic.partition("+")
        conid = target.partition("@")[0]
        if head != "smd" or not conid.isdigit():
            log.warning("WebSocket error on %r: %s", message.topic, message.error)
            return
        error = DataUnavailable(
            f"the gateway refused market data for conid {conid}: {message.error}; check the "
            "conid and the market-data permissions",
            endpoint=WS_ENDPOINT,
            gateway_message=message.error,
            conid=int(conid),
        )
        self._listeners.market_error(int(conid), error)

    # -- the keeper thread -----------------------------------------------------------------

    def keep(self, now: float) -> float:
        """Send what is due at ``now`` (every subscription after a log-in or a new brokerage
        session, queued changes once logged in, the echo, ``tic``, a refresh) or cut a silent
        connection; the clock time to come back."""
        with self._lock:
            due = self._timers.due(now)
            ready = self._ready
            everything = ready and (self._resubscribe or due.refresh)
            if ready:
                self._resubscribe = False
            if due.silent is not None:
                self._cut = RequestTimeout(
                    f"no message on the gateway's WebSocket for {due.silent:g} s (not even a "
                    "heartbeat); it was cut and is reopened",
                    endpoint=WS_ENDPOINT,
                    timeout=self._timers.silence,
                )
            next_at = self._timers.next_at()
        if due.silent is not None:
            log.warning("WebSocket silent for %g s: cutting it", due.silent)
            cut(self.connection)
            return next_at
        sends = self._take(self, everything) if ready else []
        sends += [ECHO] if due.echo else []
        sends += [TIC] if due.tic else []
        send(self.connection, sends)
        return next_at
