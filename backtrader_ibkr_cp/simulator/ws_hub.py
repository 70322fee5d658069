"""The simulator's WebSocket, ``/v1/api/ws``: log-in, topics, pushes, and test controls.

A ``GET /v1/api/ws`` on the simulator's port is handed to :meth:`WebSocketHub.serve` by the
HTTP handler; after the upgrade (see :mod:`.ws_upgrade`) the socket is logged in:

- by the cookie IBKR documents, ``api=<session>`` (the ``session`` of ``POST /tickle``), or
  ibind's ``api={"session": "<session>"}``;
- with no ``api`` cookie, the server says ``{"message": "waiting for session"}`` and takes a
  first message ``{"session": "<session>"}`` (within ``session_wait`` seconds);
- IBKR's real gateway, in front of the simulator, connects with its own login cookies
  (``REGION=; USERID=``, no ``api``): that connection is trusted, as its REST calls are.

A wrong session, no session, or no brokerage session (``sim.expire_session()``,
``sim.compete()``, a nightly reset, before ``ssodh/init``) closes the socket with code 1008
(policy violation) and a reason that says what to do. A logged-in socket gets
``{"topic": "system", "success": "<user>"}``, ``sts`` (the auth state) and ``act`` (the
``/iserver/accounts`` object, ``isPaper`` included), then a ``system`` ``hb`` every
``heartbeat`` real seconds, and ``sts`` whenever the auth state changes. When a new brokerage
session opens (``ssodh/init`` after a loss), every subscription of the socket is dropped, as
IBKR's backend forgets them: the client subscribes again when ``sts`` says it is back.

Topics (see :mod:`.ws_wire`): ``smd`` sends a first message with every requested field
available now, then updates carrying only the fields that changed (plus ``conid``,
``_updated``, ``topic``), checked every :data:`PUSH_INTERVAL` real seconds and after every
``sim.advance``/``set_time``; values are the snapshot endpoint's at the same simulated instant.
A subscription lives ``lifetime`` **real** seconds from its last ``smd`` command (IBKR ends
WebSocket market data after about 15 minutes); then the server silently stops pushing it.
Re-sending ``smd`` renews it and answers with a full first message again. ``sor``/``str``
start with the day's orders / the last ``days`` of trades (nothing when there are none), then
push the order engine's changes. A change that happened while the first message was being
built may be pushed once more after it (orders and trades are delivered at least once).

Threading model: the handler thread of each socket reads its commands; one push thread (per
simulator, running while any socket is open) sends heartbeats, ``sts`` and market updates;
order-engine messages are queued by a listener and sent by the push thread. The push lock
guards every socket's subscription state; sockets send through their own writer thread
(:mod:`.ws_session`), so no lock is held while sending.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from email.message import Message
from typing import Protocol

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request
from websockets.sync.connection import Connection

from .context import SimContext
from .faults import FaultQueue
from .ws_session import WsSession
from .ws_topics import POLICY_VIOLATION, WsTopics
from .ws_upgrade import accept, raw_request
from .ws_wire import cookie_session, parse_command

__all__ = ["POLICY_VIOLATION", "PUSH_INTERVAL", "WS_PATH", "UpgradeRequest", "WebSocketHub"]

_LOG = logging.getLogger("backtrader_ibkr_cp.simulator")

#: The socket's path below ``/v1/api`` (``sim.stats.requests`` counts upgrades under it).
WS_PATH = "/ws"
#: Real seconds between two looks at the market for changed fields.
PUSH_INTERVAL = 0.05


class UpgradeRequest(Protocol):
    """What :meth:`WebSocketHub.serve` needs of the HTTP handler."""

    requestline: str
    headers: Message
    connection: socket.socket


class WebSocketHub:
    """Every WebSocket of one simulator.

    Args:
        ctx: the simulator's shared state.
        faults: the fault queue; faults injected with ``path="/ws"`` act on the upgrade
            (``http_500``/``http_503``/``http_429`` answer that status, ``reset`` resets the
            connection, ``timeout`` holds it, ``latency`` delays it, ``competing`` and
            ``daily_reset`` drop the brokerage session first).
        heartbeat: real seconds between ``system`` ``hb`` messages (> 0).
        lifetime: real seconds an ``smd`` subscription lives (> 0; None: forever).
        session_wait: real seconds a socket without a session cookie may take to send
            ``{"session": ...}``.
    """

    def __init__(
        self,
        ctx: SimContext,
        faults: FaultQueue,
        *,
        heartbeat: float = 10.0,
        lifetime: float | None = 900.0,
        session_wait: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ctx = ctx
        self._faults = faults
        self.session_wait = session_wait
        self._monotonic = monotonic
        self._lock = threading.Lock()  # the registry and the running flag
        self._sessions: dict[int, WsSession] = {}
        self._count = 0
        self._running = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.topics = WsTopics(
            ctx, heartbeat=heartbeat, lifetime=lifetime, wake=self._wake.set, monotonic=monotonic
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Accept sockets and start the push thread."""
        with self._lock:
            if self._running:
                return
            self._running = True
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ibkr-sim-ws-push", daemon=True)
        self._ctx.trading.add_listener(self.topics.on_order_message)
        self._thread.start()

    def stop(self) -> None:
        """Refuse new sockets, cut every open one, join the push thread and each socket's
        threads (their handler threads end and are joined by the HTTP server)."""
        with self._lock:
            if not self._running:
                return
            self._running = False
            thread, self._thread = self._thread, None
            sessions = list(self._sessions.values())
        with contextlib.suppress(ValueError):
            self._ctx.trading.remove_listener(self.topics.on_order_message)
        self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join()
        for session in sessions:
            session.finish()

    # -- controls ------------------------------------------------------------------------

    def sessions(self) -> list[WsSession]:
        """The open sockets, oldest first."""
        with self._lock:
            return list(self._sessions.values())

    def drop(self) -> int:
        """Cut every open socket (no close frame); returns how many."""
        sessions = self.sessions()
        for session in sessions:
            session.cut()
        return len(sessions)

    def silence(self) -> int:
        """Make every open socket send nothing more (it stays open); returns how many."""
        sessions = self.sessions()
        for session in sessions:
            session.silenced = True
        return len(sessions)

    def age(self, seconds: float) -> None:
        """Make every ``smd`` subscription ``seconds`` older, then push (expiring those past
        the lifetime)."""
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        self.topics.age(self.sessions(), seconds)
        self.push()

    # -- one socket ----------------------------------------------------------------------

    def serve(self, handler: UpgradeRequest) -> None:
        """Run the socket the HTTP ``handler`` received, until it closes (on its thread)."""
        self._ctx.stats.record_request(WS_PATH)
        sock = handler.connection
        done, reject = self._fault(sock)
        if done:
            return
        with self._lock:
            running = self._running
        if not running:
            reject = (503, "the simulator is stopping")
        head = raw_request(handler.requestline, handler.headers)
        connection, request = accept(sock, head, reject=reject)
        if connection is None or request is None:
            return
        session = self._register(connection)
        try:
            self._converse(session, connection, request)
        finally:
            with self._lock:
                self._sessions.pop(session.number, None)
            session.finish()

    def _fault(self, sock: socket.socket) -> tuple[bool, tuple[int, str] | None]:
        """Carry out a fault injected for the upgrade: ``(done, reject)``, ``done`` when the
        connection was reset or held (nothing more to do), ``reject`` a status to answer."""
        fault = self._faults.take(WS_PATH)
        kind = fault.kind if fault is not None else ""
        if kind in ("http_500", "http_503", "http_429"):
            if kind == "http_429":
                self._ctx.stats.record_rate_limited()
            return False, (int(kind[5:]), f"injected fault {kind}")
        if kind in ("reset", "answer_lost"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            return True, None
        if fault is not None and kind in ("timeout", "latency"):
            self._stop.wait(fault.seconds)
            return kind == "timeout", None
        if kind == "competing":
            self._ctx.session.take_over()
        elif kind == "daily_reset":
            self._ctx.session.drop_brokerage()
        return False, None

    def _register(self, connection: Connection) -> WsSession:
        with self._lock:
            self._count += 1
            session = WsSession(self._count, connection, self._ctx.stats)
            self._sessions[session.number] = session
        self._ctx.stats.record_ws_connection()
        session.start()
        self._wake.set()
        return session

    def _converse(self, session: WsSession, connection: Connection, request: Request) -> None:
        token, gateway = cookie_session(request.headers.get("Cookie"))
        expected = self._ctx.identity.session_token
        if not gateway and token is None:
            session.send({"message": "waiting for session"})
            token = self._await_session(connection)
            if token is None:
                session.close(
                    POLICY_VIOLATION,
                    "no session: send the api cookie (the session of POST /tickle) or "
                    '{"session": "..."} first',
                )
        if token is not None and not gateway and token != expected:
            session.close(
                POLICY_VIOLATION, "invalid session token: get the current one from POST /tickle"
            )
            token = None
        if (gateway or token is not None) and self.topics.welcome(session):
            self._listen(session, connection)
        with contextlib.suppress(ConnectionClosed):
            for _ in connection:  # let the closing handshake finish
                pass

    def _await_session(self, connection: Connection) -> str | None:
        deadline = self._monotonic() + self.session_wait
        while True:
            left = deadline - self._monotonic()
            if left <= 0:
                return None
            try:
                raw = connection.recv(timeout=left)
            except (TimeoutError, ConnectionClosed):
                return None
            command = parse_command(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
            if command.kind == "session":
                value = command.args.get("session")
                return value if isinstance(value, str) else ""
            if command.kind != "ech":
                return None

    def _listen(self, session: WsSession, connection: Connection) -> None:
        with contextlib.suppress(ConnectionClosed):
            for raw in connection:
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                try:
                    self.topics.command(session, parse_command(text))
                except Exception:  # a bad command must not end the socket
                    _LOG.exception("simulator WebSocket command %r failed", text[:200])

    def push(self) -> None:
        """Queue what is due now on every open socket (see :meth:`WsTopics.push`)."""
        self.topics.push(self.sessions())

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                idle = not self._sessions
            self._wake.wait(None if idle else PUSH_INTERVAL)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.push()
            except Exception:  # keep pushing: one bad step must not stop the socket
                _LOG.exception("simulator WebSocket push failed")
