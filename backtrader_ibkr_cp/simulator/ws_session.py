"""One accepted WebSocket: its subscriptions and its outbox.

Threading model: three threads per socket. The HTTP handler thread that accepted the upgrade
reads the client's commands (:class:`~.ws_hub.WebSocketHub` runs that loop); ``websockets``'
own thread reads the socket; the writer thread started here sends the outbox in order. Every
producer (the handler thread answering a command, the hub's push thread) only appends to the
outbox, so no lock is held while sending and a slow client never stalls the others.

The subscription state (``market``, the order and trade cursors, the last ``sts`` sent) is
guarded by the hub's push lock, not by this object.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.connection import Connection

from .stats import SimStats
from .ws_wire import topic_of

__all__ = ["MarketSubscription", "WsSession"]

_LOG = logging.getLogger("backtrader_ibkr_cp.simulator")
#: Seconds :meth:`WsSession.finish` waits for each of the socket's threads.
_JOIN_SECONDS = 5.0


@dataclass
class MarketSubscription:
    """One ``smd`` subscription: requested ``fields``, ``started`` (real monotonic seconds of
    the last ``smd`` command, from which its lifetime counts) and the values ``last`` sent."""

    fields: frozenset[str]
    started: float
    server_id: str
    last: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Close:
    code: int
    reason: str


class WsSession:
    """The server side of one socket (number ``number``, counted from 1 per simulator)."""

    def __init__(self, number: int, connection: Connection, stats: SimStats) -> None:
        self.number = number
        self.connection = connection
        self._stats = stats
        self._cond = threading.Condition()
        self._outbox: deque[tuple[str, str] | _Close] = deque()
        self._done = False
        #: True once a silence control made the socket swallow everything it would send.
        self.silenced = False
        # -- guarded by the hub's push lock --
        self.authorized = False
        self.generation = -1
        self.status: dict[str, bool] | None = None
        self.last_heartbeat = 0.0
        self.market: dict[int, MarketSubscription] = {}
        self.orders_cursor: int | None = None
        self.trades_cursor: int | None = None
        self.subscriptions_made = 0
        self._writer = threading.Thread(
            target=self._write, name=f"ibkr-sim-ws-{number}-writer", daemon=True
        )

    def start(self) -> None:
        """Start the writer thread."""
        self._writer.start()

    # -- producing -----------------------------------------------------------------------

    def send(self, message: Mapping[str, Any] | str, topic: str | None = None) -> None:
        """Queue ``message`` (a JSON object, or text: the echo, or JSON already encoded, then
        with its stats ``topic``) for sending."""
        text = message if isinstance(message, str) else json.dumps(message)
        with self._cond:
            if self._done:
                return
            self._outbox.append((topic or topic_of(message), text))
            self._cond.notify()

    def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code``/``reason`` once everything queued before is sent."""
        with self._cond:
            if not self._done:
                self._outbox.append(_Close(code, reason[:120]))
                self._cond.notify()

    def drop_market(self) -> None:
        """Forget every subscription (a new brokerage session starts with none)."""
        self.market.clear()
        self.orders_cursor = None
        self.trades_cursor = None

    # -- controls ------------------------------------------------------------------------

    def cut(self) -> None:
        """Cut the TCP connection now, with no close frame (a network failure)."""
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.connection.socket, socket.SHUT_RDWR)

    def finish(self) -> None:
        """Stop the writer (dropping what is still queued), cut the socket, join threads."""
        with self._cond:
            self._done = True
            self._outbox.clear()
            self._cond.notify()
        self.cut()
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join(_JOIN_SECONDS)
        reader = self.connection.recv_events_thread
        if reader is not threading.current_thread():
            reader.join(_JOIN_SECONDS)
        if self._writer.is_alive() or reader.is_alive():
            _LOG.warning("simulator WebSocket %s: a thread did not stop", self.number)

    # -- the writer thread ---------------------------------------------------------------

    def _write(self) -> None:
        try:
            self._write_until_closed()
        finally:
            with self._cond:
                self._done = True
                self._outbox.clear()

    def _write_until_closed(self) -> None:
        while True:
            with self._cond:
                while not self._outbox and not self._done:
                    self._cond.wait()
                if self._done:
                    return
                batch = list(self._outbox)
                self._outbox.clear()
            for item in batch:
                if isinstance(item, _Close):
                    self._close(item)
                    return
                if self.silenced:
                    self._stats.record_ws_swallowed()
                    continue
                topic, text = item
                try:
                    self.connection.send(text)
                except ConnectionClosed:
                    return
                except OSError as error:
                    _LOG.debug("simulator WebSocket %s: send failed: %s", self.number, error)
                    return
                self._stats.record_ws_message(topic)

    def _close(self, item: _Close) -> None:
        try:
            self.connection.close(item.code, item.reason)
        except (ConnectionClosed, OSError) as error:
            _LOG.debug("simulator WebSocket %s: close failed: %s", self.number, error)
