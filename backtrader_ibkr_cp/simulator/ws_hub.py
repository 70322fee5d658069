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
import json
import logging
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from email.message import Message
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request
from websockets.sync.connection import Connection

from .context import SimContext
from .faults import FaultQueue
from .handlers import accounts_body
from .snapshot import field_values
from .ws_session import MarketSubscription, WsSession
from .ws_upgrade import accept, raw_request
from .ws_wire import (
    AVAILABILITY,
    ECHO,
    Command,
    cookie_session,
    heartbeat,
    parse_command,
    smd_delta,
    smd_first,
    status,
)

__all__ = ["POLICY_VIOLATION", "PUSH_INTERVAL", "WS_PATH", "UpgradeRequest", "WebSocketHub"]

_LOG = logging.getLogger("backtrader_ibkr_cp.simulator")

#: The socket's path below ``/v1/api`` (``sim.stats.requests`` counts upgrades under it).
WS_PATH = "/ws"
#: Real seconds between two looks at the market for changed fields.
PUSH_INTERVAL = 0.05
#: WebSocket close code for a refused log-in (RFC 6455: policy violation).
POLICY_VIOLATION = 1008
#: Order and trade messages kept for sockets that have not been sent them yet.
_ORDER_LOG = 100_000


class UpgradeRequest(Protocol):
    """What :meth:`WebSocketHub.serve` needs of the HTTP handler."""

    requestline: str
    headers: Message
    connection: socket.socket


def _epoch_ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


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
        if not heartbeat > 0:
            raise ValueError(f"ws_heartbeat must be > 0 seconds, got {heartbeat!r}")
        if lifetime is not None and not lifetime > 0:
            raise ValueError(
                f"ws_subscription_lifetime must be > 0 seconds (None: forever), got {lifetime!r}"
            )
        self._ctx = ctx
        self._faults = faults
        self.heartbeat = float(heartbeat)
        self.lifetime = None if lifetime is None else float(lifetime)
        self.session_wait = session_wait
        self._monotonic = monotonic
        self._lock = threading.Lock()  # the registry and the running flag
        self._push_lock = threading.Lock()  # subscription state; one push at a time
        self._orders_lock = threading.Lock()
        self._sessions: dict[int, WsSession] = {}
        self._count = 0
        self._running = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._order_log: deque[tuple[int, str, str]] = deque(maxlen=_ORDER_LOG)
        self._seq = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Accept sockets and start the push thread."""
        with self._lock:
            if self._running:
                return
            self._running = True
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ibkr-sim-ws-push", daemon=True)
        self._ctx.trading.add_listener(self._on_order_message)
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
            self._ctx.trading.remove_listener(self._on_order_message)
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
        with self._push_lock:
            for session in self.sessions():
                for subscription in session.market.values():
                    subscription.started -= seconds
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
        if (gateway or token is not None) and self._welcome(session):
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

    def _welcome(self, session: WsSession) -> bool:
        ctx = self._ctx
        ident = ctx.identity
        with self._push_lock:
            state = ctx.session.status()
            if not state["authenticated"]:
                why = (
                    "another login holds the brokerage session"
                    if state["competing"]
                    else "no brokerage session"
                )
                session.close(
                    POLICY_VIOLATION,
                    f"{why}: open it with POST /iserver/auth/ssodh/init, then reconnect",
                )
                return False
            session.authorized = True
            session.generation = ctx.session.generation
            session.status = state
            session.last_heartbeat = self._monotonic()
            session.send({"topic": "system", "success": ident.user_name})
            session.send(self._sts(state))
            session.send({"topic": "act", "args": accounts_body(ctx)})
        return True

    def _listen(self, session: WsSession, connection: Connection) -> None:
        with contextlib.suppress(ConnectionClosed):
            for raw in connection:
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                try:
                    self._command(session, parse_command(text))
                except Exception:  # a bad command must not end the socket
                    _LOG.exception("simulator WebSocket command %r failed", text[:200])

    # -- commands ------------------------------------------------------------------------

    def _command(self, session: WsSession, command: Command) -> None:
        kind = command.kind
        ctx = self._ctx
        if kind == "ech":
            session.send(ECHO)
        elif kind == "tic":
            ctx.session.touch()
            reply = {"topic": "tic", "alive": True, "id": f"ws-{session.number}"}
            reply["lastAccessed"] = _epoch_ms(ctx.clock.now())
            session.send(reply)
        elif kind in ("smd", "sor", "str") and not ctx.session.authenticated:
            _LOG.debug("simulator WebSocket: %s ignored without a brokerage session", kind)
        elif kind == "smd":
            self._subscribe_market(session, command)
        elif kind == "umd":
            with self._push_lock:
                session.market.pop(_conid(command.target) or -1, None)
        elif kind == "sor":
            self._subscribe_orders(session)
        elif kind == "str":
            self._subscribe_trades(session, command.args)
        elif kind == "uor":
            with self._push_lock:
                session.orders_cursor = None
        elif kind == "utr":
            with self._push_lock:
                session.trades_cursor = None
        elif kind == "unknown":
            _LOG.debug("simulator WebSocket: unknown command %r", command.text[:200])

    def _values(self, conid: int, now: Any) -> dict[str, Any]:
        ctx = self._ctx
        inst = ctx.instruments.get(conid)
        assert inst is not None
        values = field_values(ctx, inst, now)
        values[AVAILABILITY] = ctx.instruments.availability(conid)
        return values

    def _subscribe_market(self, session: WsSession, command: Command) -> None:
        conid = _conid(command.target)
        if conid is None or self._ctx.instruments.get(conid) is None:
            session.send(
                {
                    "topic": f"smd+{command.target}",
                    "error": f"conid {command.target!r} is not a known contract; resolve it first",
                }
            )
            return
        requested = command.args.get("fields")
        fields = frozenset(str(code) for code in requested) if isinstance(requested, list) else None
        with self._push_lock:
            old = session.market.get(conid)
            wanted = (fields or frozenset()) | (old.fields if old else frozenset())
            if old is None:
                server_id = f"q{session.subscriptions_made}"
                session.subscriptions_made += 1
            else:
                server_id = old.server_id
            now = self._ctx.clock.now()
            values = self._values(conid, now)
            subscription = MarketSubscription(wanted, self._monotonic(), server_id)
            subscription.last = _kept(wanted, values)
            session.market[conid] = subscription
            session.send(smd_first(conid, wanted, values, server_id, _epoch_ms(now)))

    def _subscribe_orders(self, session: WsSession) -> None:
        with self._orders_lock:
            start = self._seq
        bodies = self._ctx.trading.order_bodies()
        with self._push_lock:
            if bodies:
                session.send({"topic": "sor", "args": bodies})
            session.orders_cursor = start
        self._wake.set()

    def _subscribe_trades(self, session: WsSession, args: Mapping[str, Any]) -> None:
        days = args.get("days", 1)
        days = min(7, max(1, days)) if isinstance(days, int) and not isinstance(days, bool) else 1
        realtime_only = args.get("realtimeUpdatesOnly") is True
        with self._orders_lock:
            start = self._seq
        bodies = [] if realtime_only else self._ctx.trading.trade_bodies(days)
        with self._push_lock:
            if bodies:
                session.send({"topic": "str", "args": bodies})
            session.trades_cursor = start
        self._wake.set()

    def _on_order_message(self, message: dict[str, Any]) -> None:
        """The order engine's listener (on its thread): log the message for the push."""
        topic = str(message.get("topic", ""))
        text = json.dumps(message)
        with self._orders_lock:
            self._seq += 1
            self._order_log.append((self._seq, topic, text))
        self._wake.set()

    # -- pushing -------------------------------------------------------------------------

    def push(self) -> None:
        """Send what is due now to every logged-in socket: ``sts`` on a change, heartbeats,
        market-data updates, expiries and order/trade messages. ``sim.advance`` calls this
        before it returns, so every update due by then is queued ahead of later answers."""
        with self._push_lock:
            sessions = [s for s in self.sessions() if s.authorized]
            if not sessions:
                return
            ctx = self._ctx
            now = ctx.clock.now()
            stamp = _epoch_ms(now)
            mono = self._monotonic()
            state = ctx.session.status()
            generation = ctx.session.generation
            with self._orders_lock:
                log = list(self._order_log)
                last_seq = self._seq
            values: dict[int, dict[str, Any]] = {}
            for session in sessions:
                if session.generation != generation:
                    session.generation = generation
                    session.drop_market()
                    session.status = state
                    session.send(self._sts(state))
                elif session.status != state:
                    session.status = state
                    session.send(self._sts(state))
                if mono - session.last_heartbeat >= self.heartbeat:
                    session.last_heartbeat = mono
                    session.send(heartbeat(stamp))
                if not state["authenticated"]:
                    continue
                self._push_market(session, values, now, stamp, mono)
                self._push_orders(session, log, last_seq)

    def _push_market(
        self,
        session: WsSession,
        cache: dict[int, dict[str, Any]],
        now: Any,
        stamp: int,
        mono: float,
    ) -> None:
        lifetime = self.lifetime
        for conid, subscription in list(session.market.items()):
            if lifetime is not None and mono - subscription.started >= lifetime:
                del session.market[conid]
                _LOG.debug("simulator WebSocket %s: smd+%s expired", session.number, conid)
                continue
            values = cache.get(conid)
            if values is None:
                values = cache[conid] = self._values(conid, now)
            delta = smd_delta(conid, subscription.fields, subscription.last, values, stamp)
            if delta is not None:
                subscription.last = _kept(subscription.fields, values)
                session.send(delta)

    def _push_orders(self, session: WsSession, log: list[tuple[int, str, str]], last: int) -> None:
        for attribute, topic in (("orders_cursor", "sor"), ("trades_cursor", "str")):
            cursor = getattr(session, attribute)
            if cursor is None or cursor >= last:
                continue
            if log and log[0][0] > cursor + 1:
                _LOG.warning("simulator WebSocket %s: %s messages lost", session.number, topic)
            for seq, kind, text in log:
                if seq > cursor and kind == topic:
                    session.send(text, topic)
            setattr(session, attribute, last)

    def _sts(self, state: Mapping[str, bool]) -> dict[str, Any]:
        ident = self._ctx.identity
        return status(state, ident.server_name, ident.server_version, ident.user_name)

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


def _conid(target: str) -> int | None:
    text = target.partition("@")[0].strip()
    return int(text) if text.isdigit() else None


def _kept(fields: frozenset[str], values: Mapping[str, Any]) -> dict[str, Any]:
    return {code: values[code] for code in fields | {AVAILABILITY} if code in values}
