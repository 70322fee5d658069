"""Who listens to the WebSocket, each conid's merged state, and delivery to the listeners.

:class:`Listeners` is the socket's registry: registering returns the command the change needs
(``smd``/``umd``, ``sor``/``uor``, ``str``/``utr``), :meth:`Listeners.commands` gives every
subscription as commands (after a reconnect or for a refresh), and the ``deliver`` methods
call the listeners on the caller's thread (the socket's reader), outside the lock; a listener
that raises is logged and the others still get the message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ..errors import DataIntegrityError, MarketError
from .ws_events import (
    MarketListener,
    OrderListener,
    SocketEvent,
    SocketState,
    StateListener,
    TradeListener,
)
from .ws_messages import (
    SOR,
    UOR,
    UTR,
    MarketUpdate,
    merge_market,
    smd_command,
    snapshot_of,
    str_command,
    umd_command,
)

__all__ = ["Listeners"]

log = logging.getLogger("backtrader_ibkr_cp.client.websocket")

_T = TypeVar("_T")


def _call(listener: Callable[[_T], None], argument: _T) -> None:
    try:
        listener(argument)
    except Exception:
        log.exception("WebSocket listener %r failed", listener)


class Listeners:
    """The registry of one socket (thread-safe). ``fields``: the ``smd`` field codes;
    ``trade_days``: what a ``str`` subscription replays."""

    def __init__(self, fields: Sequence[str], trade_days: int) -> None:
        self.fields = tuple(fields)
        self.trade_days = trade_days
        self._lock = threading.Lock()
        self._market: dict[int, list[MarketListener]] = {}
        self._states: dict[int, dict[str, Any]] = {}
        self._orders: list[OrderListener] = []
        self._trades: list[TradeListener] = []
        self._watchers: list[StateListener] = []
        self._state = SocketState.CLOSED

    # -- registration: each returns the command to send, if any -----------------------------

    def add_market(self, conid: int, listener: MarketListener) -> str:
        """Always ``smd`` (a newcomer for a known conid gets the full state again)."""
        with self._lock:
            listeners = self._market.setdefault(conid, [])
            if listener not in listeners:
                listeners.append(listener)
        return smd_command(conid, self.fields)

    def remove_market(self, conid: int, listener: MarketListener | None) -> str | None:
        """``umd`` when the conid's last listener left (every listener when None)."""
        with self._lock:
            listeners = self._market.get(conid)
            if listeners is None:
                return None
            if listener is not None and listener in listeners:
                listeners.remove(listener)
            if listener is not None and listeners:
                return None
            del self._market[conid]
            self._states.pop(conid, None)
        return umd_command(conid)

    def add_orders(self, listener: OrderListener) -> str | None:
        with self._lock:
            self._orders.append(listener)
            return SOR if len(self._orders) == 1 else None

    def remove_orders(self, listener: OrderListener) -> str | None:
        with self._lock:
            if listener not in self._orders:
                return None
            self._orders.remove(listener)
            return None if self._orders else UOR

    def add_trades(self, listener: TradeListener) -> str | None:
        with self._lock:
            self._trades.append(listener)
            return str_command(self.trade_days) if len(self._trades) == 1 else None

    def remove_trades(self, listener: TradeListener) -> str | None:
        with self._lock:
            if listener not in self._trades:
                return None
            self._trades.remove(listener)
            return None if self._trades else UTR

    def add_watcher(self, listener: StateListener) -> None:
        with self._lock:
            self._watchers.append(listener)

    def remove_watcher(self, listener: StateListener) -> None:
        with self._lock:
            if listener in self._watchers:
                self._watchers.remove(listener)

    # -- state -----------------------------------------------------------------------------

    @property
    def conids(self) -> list[int]:
        with self._lock:
            return list(self._market)

    @property
    def state(self) -> SocketState:
        return self._state

    def commands(self) -> list[str]:
        """Every subscription as commands: ``smd`` per conid, ``sor`` and ``str`` when
        listened to."""
        with self._lock:
            commands = [smd_command(conid, self.fields) for conid in self._market]
            if self._orders:
                commands.append(SOR)
            if self._trades:
                commands.append(str_command(self.trade_days))
        return commands

    def forget_states(self) -> None:
        """A new connection: every conid starts afresh from its first message."""
        with self._lock:
            self._states.clear()

    # -- delivery (the reader thread) ------------------------------------------------------

    def market_update(self, update: MarketUpdate) -> None:
        """Merge ``update`` into its conid's state and hand the full snapshot over (or a
        DataIntegrityError when a value is malformed)."""
        with self._lock:
            listeners = list(self._market.get(update.conid, ()))
            if not listeners:
                return
            state = merge_market(self._states.get(update.conid), update)
            self._states[update.conid] = state
        try:
            snapshot = snapshot_of(state)
        except DataIntegrityError as exc:
            for listener in listeners:
                _call(listener.on_error, exc)
            return
        for listener in listeners:
            _call(listener.on_snapshot, snapshot)

    def market_error(self, conid: int | None, error: MarketError) -> None:
        """``on_error(error)`` to ``conid``'s listeners (to every market listener when
        None)."""
        with self._lock:
            if conid is None:
                groups = list(self._market.values())
            else:
                groups = [list(self._market.get(conid, ()))]
        for listener in dict.fromkeys(item for group in groups for item in group):
            _call(listener.on_error, error)

    def alive(self) -> None:
        """The socket is healthy (a heartbeat or an echo arrived): ``on_alive()`` to every
        market listener that has it (a quiet instrument sends no update, which must not be
        taken for a stalled feed)."""
        with self._lock:
            listeners = [item for group in self._market.values() for item in group]
        for listener in dict.fromkeys(listeners):
            alive = getattr(listener, "on_alive", None)
            if alive is None:
                continue
            try:
                alive()
            except Exception:
                log.exception("WebSocket listener %r failed", listener)

    def orders(self, items: tuple[Mapping[str, Any], ...]) -> None:
        with self._lock:
            listeners = list(self._orders)
        for listener in listeners:
            _call(listener, items)

    def trades(self, items: tuple[Mapping[str, Any], ...]) -> None:
        with self._lock:
            listeners = list(self._trades)
        for listener in listeners:
            _call(listener, items)

    def emit(self, event: SocketEvent) -> None:
        """Record the new state and tell every state listener."""
        with self._lock:
            self._state = event.state
            watchers = list(self._watchers)
        for watcher in watchers:
            _call(watcher, event)
