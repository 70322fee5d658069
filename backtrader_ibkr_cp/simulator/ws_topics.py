"""What a logged-in WebSocket says and hears: topics, subscriptions and pushes.

See :mod:`.ws_hub` for the protocol as a client sees it. :class:`WsTopics` keeps every
socket's subscription state under one push lock, answers commands on the socket's handler
thread and pushes (``sts``, heartbeats, market-data updates and expiries, order and trade
messages) on whichever thread calls :meth:`WsTopics.push`: the hub's push thread, or
``sim.advance`` so an update due at the new time is queued before the call returns.

Order-engine messages arrive through :meth:`WsTopics.on_order_message` (on the engine's
thread), are numbered into a log, and reach each subscribed socket on the next push. A
subscription takes the log's position *before* building its first message, so a change made
meanwhile may be sent once more after it (at least once, never lost).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from .context import SimContext
from .handlers import accounts_body
from .snapshot import field_values
from .ws_session import MarketSubscription, WsSession
from .ws_wire import (
    AVAILABILITY,
    ECHO,
    Command,
    heartbeat,
    smd_delta,
    smd_first,
    status,
)

__all__ = ["POLICY_VIOLATION", "WsTopics"]

_LOG = logging.getLogger("backtrader_ibkr_cp.simulator")

#: WebSocket close code for a refused log-in (RFC 6455: policy violation).
POLICY_VIOLATION = 1008
#: Order and trade messages kept for sockets that have not been sent them yet.
_ORDER_LOG = 100_000


def _epoch_ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


class WsTopics:
    """The topics of every socket of one simulator.

    Args:
        ctx: the simulator's shared state.
        heartbeat: real seconds between ``system`` ``hb`` messages (> 0).
        lifetime: real seconds an ``smd`` subscription lives (> 0; None: forever).
        wake: called when there is something to push (new order messages).
        monotonic: real seconds (subscription ages, heartbeats).
    """

    def __init__(
        self,
        ctx: SimContext,
        *,
        heartbeat: float,
        lifetime: float | None,
        wake: Callable[[], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not heartbeat > 0:
            raise ValueError(f"ws_heartbeat must be > 0 seconds, got {heartbeat!r}")
        if lifetime is not None and not lifetime > 0:
            raise ValueError(
                f"ws_subscription_lifetime must be > 0 seconds (None: forever), got {lifetime!r}"
            )
        self._ctx = ctx
        self.heartbeat = float(heartbeat)
        self.lifetime = None if lifetime is None else float(lifetime)
        self._wake = wake
        self._monotonic = monotonic
        self._push_lock = threading.Lock()
        self._orders_lock = threading.Lock()
        self._order_log: deque[tuple[int, str, str]] = deque(maxlen=_ORDER_LOG)
        self._seq = 0

    # -- log-in --------------------------------------------------------------------------

    def welcome(self, session: WsSession) -> bool:
        """Greet a logged-in socket (``system``, ``sts``, ``act``); without a brokerage
        session close it with 1008 instead and return False."""
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

    # -- commands ------------------------------------------------------------------------

    def command(self, session: WsSession, command: Command) -> None:
        """Carry out one command of a logged-in socket (on its handler thread)."""
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
        self._wake()

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
        self._wake()

    def on_order_message(self, message: dict[str, Any]) -> None:
        """The order engine's listener (on its thread): log the message for the push."""
        topic = str(message.get("topic", ""))
        text = json.dumps(message)
        with self._orders_lock:
            self._seq += 1
            self._order_log.append((self._seq, topic, text))
        self._wake()

    # -- pushing -------------------------------------------------------------------------

    def age(self, sessions: list[WsSession], seconds: float) -> None:
        """Make every ``smd`` subscription of ``sessions`` ``seconds`` older."""
        with self._push_lock:
            for session in sessions:
                for subscription in session.market.values():
                    subscription.started -= seconds

    def push(self, sessions: list[WsSession]) -> None:
        """Queue what is due now on each logged-in socket of ``sessions``: ``sts`` on a
        change, heartbeats, market-data updates, expiries and order/trade messages."""
        with self._push_lock:
            sessions = [s for s in sessions if s.authorized]
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


def _conid(target: str) -> int | None:
    text = target.partition("@")[0].strip()
    return int(text) if text.isdigit() else None


def _kept(fields: frozenset[str], values: Mapping[str, Any]) -> dict[str, Any]:
    return {code: values[code] for code in fields | {AVAILABILITY} if code in values}
