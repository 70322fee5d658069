"""Market data over the gateway's WebSocket, with snapshot polling as the fallback.

:class:`StreamingSource` is the store's ``MarketSource`` when ``streaming`` is ``"auto"`` or
``"websocket"``: every subscription goes to the one :class:`~..client.websocket.GatewaySocket`
of the store, and, while the socket is down (lost, reconnecting), also to the store's
:class:`~.poller.SnapshotPoller`, so market data never stops; once the socket is back the
poller lets go. With ``"auto"``, a gateway that serves no WebSocket is polled for the rest of
the run; with ``"websocket"`` that is an error (``WebSocketUnavailable``) for every feed.

What reaches a listener (a feed's :class:`~.runner.StreamRunner`): snapshots from whichever
path delivers them (the bar builder takes both alike, and completed bars are confirmed from
history either way), errors that mean something for the feed (the brokerage session is gone,
no market-data permission, a malformed update; a socket's own connection trouble is not one:
polling covers it), and ``on_alive()`` on every heartbeat of a healthy socket, which pushes
no update for a quiet instrument, so that silence is not taken for a stalled feed.

Threading: listeners are called on the socket's reader thread or the poller's thread. The
source's state (subscriptions, polling or not) and every change of path are serialized by one
lock, held while (un)subscribing at the socket and the poller (both only queue the change and
return) and never while calling a listener or ``notify``. One message per change of path goes
to ``notify``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Literal, Protocol

from ..errors import GatewayConnectionError, MarketError, RequestTimeout, WebSocketUnavailable
from ..models import Snapshot
from .runner import MarketListener, MarketSource

__all__ = ["STREAMING_MODES", "SocketSource", "StreamingMode", "StreamingSource"]

log = logging.getLogger(__name__)

StreamingMode = Literal["auto", "websocket"]
#: The store's ``streaming`` values (``"poll"``: the poller alone, no socket).
STREAMING_MODES = ("auto", "websocket", "poll")


class SocketEvent(Protocol):
    @property
    def state(self) -> str: ...

    @property
    def error(self) -> MarketError | None: ...


class SocketSource(MarketSource, Protocol):
    """What the source needs of :class:`~..client.websocket.GatewaySocket`."""

    def add_state_listener(self, listener: Callable[[SocketEvent], None]) -> None: ...

    def remove_state_listener(self, listener: Callable[[SocketEvent], None]) -> None: ...


class _SocketSide:
    """A listener's view of the socket: connection trouble filtered out (polling covers
    it), heartbeats passed on as ``on_alive``."""

    def __init__(self, listener: MarketListener) -> None:
        self.listener = listener

    def on_snapshot(self, snapshot: Snapshot) -> None:
        self.listener.on_snapshot(snapshot)

    def on_error(self, error: MarketError) -> None:
        if isinstance(error, (GatewayConnectionError, RequestTimeout, WebSocketUnavailable)):
            return  # the socket's own trouble: the source polls meanwhile
        self.listener.on_error(error)

    def on_alive(self) -> None:
        alive = getattr(self.listener, "on_alive", None)
        if alive is not None:
            alive()


class _Subscription:
    def __init__(self, conid: int, listener: MarketListener) -> None:
        self.conid = conid
        self.listener = listener
        self.socket_side = _SocketSide(listener)


class StreamingSource:
    """See the module docstring.

    Args:
        socket: the store's GatewaySocket (not started: the first subscription starts it).
        poller: returns the store's SnapshotPoller (called only when polling is needed).
        mode: ``"auto"`` or ``"websocket"``.
        notify: receives one message per change of path (the store's broadcast).
    """

    def __init__(
        self,
        socket: SocketSource,
        poller: Callable[[], MarketSource],
        *,
        mode: StreamingMode = "auto",
        notify: Callable[[str], None] = lambda message: None,
    ) -> None:
        if mode not in ("auto", "websocket"):
            raise ValueError(f"mode must be 'auto' or 'websocket', got {mode!r}")
        self._socket = socket
        self._poller = poller
        self._mode = mode
        self._notify = notify
        self._lock = threading.Lock()
        self._subscriptions: list[_Subscription] = []
        self._polling = False  # the socket gets its chance first
        self._unsupported = False
        self._connected_once = False
        socket.add_state_listener(self._on_state)

    # -- MarketSource ----------------------------------------------------------------------

    def subscribe(self, conid: int, listener: MarketListener) -> None:
        subscription = _Subscription(int(conid), listener)
        with self._lock:
            self._subscriptions.append(subscription)
            refused = self._unsupported and self._mode == "websocket"
            if not self._unsupported:
                self._socket.subscribe(subscription.conid, subscription.socket_side)
            if self._polling:
                self._poller().subscribe(subscription.conid, listener)
        if refused:
            listener.on_error(self._no_socket_error())

    def unsubscribe(self, conid: int, listener: MarketListener | None = None) -> None:
        with self._lock:
            gone = [
                s
                for s in self._subscriptions
                if s.conid == conid and (listener is None or s.listener is listener)
            ]
            for subscription in gone:
                self._subscriptions.remove(subscription)
                self._socket.unsubscribe(subscription.conid, subscription.socket_side)
                if self._polling:
                    self._poller().unsubscribe(subscription.conid, subscription.listener)

    def close(self) -> None:
        """Stop listening to the socket's state (the store closes the socket and poller)."""
        self._socket.remove_state_listener(self._on_state)

    @property
    def polling(self) -> bool:
        """True while the poller carries the market data (the socket is down or absent)."""
        return self._polling

    @property
    def path(self) -> str:
        """``"websocket"``, ``"poll"``, or ``"none"`` (``"websocket"`` mode, no socket)."""
        with self._lock:
            if self._polling:
                return "poll"
            return "none" if self._unsupported else "websocket"

    # -- the socket's state (its threads) ----------------------------------------------------

    def _on_state(self, event: SocketEvent) -> None:
        state = str(getattr(event.state, "value", event.state))
        if state == "connected":
            self._socket_up()
        elif state in ("lost", "reconnecting"):
            self._socket_down(event.error)
        elif state == "unsupported":
            self._no_socket(event.error)

    def _socket_up(self) -> None:
        with self._lock:
            was_polling, self._polling = self._polling, False
            first, self._connected_once = not self._connected_once, True
            if was_polling:
                self._poll(False)
        if first:
            self._notify("market data streams over the gateway's WebSocket")
        elif was_polling:
            self._notify("the gateway's WebSocket is back: market data streams over it again")

    def _socket_down(self, error: MarketError | None) -> None:
        with self._lock:
            if self._polling or self._unsupported:
                return
            self._polling = True
            self._poll(True)
        why = f" ({error})" if error is not None else ""
        self._notify(f"the gateway's WebSocket is down{why}; polling snapshots until it is back")

    def _no_socket(self, error: MarketError | None) -> None:
        with self._lock:
            if self._unsupported:
                return
            self._unsupported = True
            auto = self._mode == "auto"
            if self._polling != auto:  # auto: poll from now on; websocket: never
                self._polling = auto
                self._poll(auto)
            subscriptions = list(self._subscriptions)
        if auto:
            self._notify(
                "the gateway serves no WebSocket"
                + (f" ({error})" if error is not None else "")
                + "; polling snapshots for the rest of the run (streaming='poll' skips the try)"
            )
            return
        failure = self._no_socket_error(error)
        for subscription in subscriptions:
            subscription.listener.on_error(failure)

    def _poll(self, on: bool) -> None:
        """(Un)subscribe every subscription at the poller (the lock is held)."""
        poller = self._poller()
        for subscription in self._subscriptions:
            if on:
                poller.subscribe(subscription.conid, subscription.listener)
            else:
                poller.unsubscribe(subscription.conid, subscription.listener)

    @staticmethod
    def _no_socket_error(error: MarketError | None = None) -> WebSocketUnavailable:
        why = f" ({error})" if error is not None else ""
        return WebSocketUnavailable(
            f"the gateway serves no WebSocket{why}, and streaming='websocket' allows no "
            "polling; use streaming='auto' (the default) to poll snapshots instead",
            endpoint="/ws",
        )

    def __repr__(self) -> str:
        path = "polling" if self._polling else "websocket"
        return f"StreamingSource({self._mode}, {path}, {len(self._subscriptions)} subscriptions)"
