"""The trading desk: the order engine behind one lock, its clock, its listeners, and the state
IBKR keeps per brokerage session.

Threading model: every request thread and the simulator's ticker thread call
:meth:`TradingDesk.locked` (or :meth:`~TradingDesk.advance`), which takes the desk's lock,
advances the engine to the simulated now, yields the engine, and on exit turns the engine's
events into ``sor``/``str`` messages and delivers them to the listeners *outside* the lock, in
order, on the calling thread (one delivery at a time). Listeners must return quickly and must
not block; an exception in a listener is logged and ignored.

Per brokerage session (reset when :attr:`SessionState.generation` changes): suppressed message
ids, pending replies, whether live orders and ``/portfolio/accounts`` were primed, the positions
cache and which conids were asked for by ``/portfolio/{id}/position/{conid}``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ..calendar import NEW_YORK, UTC
from ..clock import SimClock
from ..instruments import InstrumentBook
from ..market import MarketModel
from ..session import SessionState
from .bodies import live_order, trade
from .engine import OrderEngine
from .questions import Replies
from .state import OrderState, SimAccount

__all__ = ["OrderListener", "SessionScope", "TradingDesk", "day_orders", "trade_list"]

_LOG = logging.getLogger("backtrader_ibkr_cp.simulator")

#: Receives ``{"topic": "sor", "args": [...]}`` or ``{"topic": "str", "args": [...]}``.
OrderListener = Callable[[dict[str, Any]], None]


@dataclass
class SessionScope:
    """What IBKR forgets when a new brokerage session opens."""

    generation: int
    replies: Replies
    suppressed: set[str] = field(default_factory=set)
    orders_primed: bool = False
    portfolio_primed: bool = False
    positions_cache: tuple[float, list[dict[str, Any]]] | None = None
    positions_seen: set[int] = field(default_factory=set)


class TradingDesk:
    """One account (``account`` id, ``paper``, ``cash`` USD) and its order engine."""

    def __init__(
        self,
        clock: SimClock,
        market: MarketModel,
        instruments: InstrumentBook,
        session: SessionState,
        account: str,
        cash: float,
        user_name: str,
    ) -> None:
        self.clock = clock
        self.session = session
        self.account = account
        self.user_name = user_name
        self.engine = OrderEngine(market, instruments, account, Decimal(str(cash)))
        self._lock = threading.Lock()
        self._deliver_lock = threading.RLock()
        self._outbox: deque[dict[str, Any]] = deque()
        self._listeners: list[OrderListener] = []
        self._sent: dict[int, dict[str, Any]] = {}
        self._scope = SessionScope(session.generation, Replies(market.seed))
        self._requests = 0

    # -- the lock ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[OrderEngine]:
        """Hold the lock with the engine advanced to now; deliver its events afterwards."""
        with self._lock:
            self.engine.advance(self.clock.now())
            try:
                yield self.engine
            finally:
                self._collect()
        self._deliver()

    def advance(self) -> None:
        """Advance the engine to the simulated now (the ticker and every request call this)."""
        with self.locked():
            pass

    @property
    def scope(self) -> SessionScope:
        """This brokerage session's state (call with the lock held)."""
        generation = self.session.generation
        if generation != self._scope.generation:
            self._scope = SessionScope(generation, Replies(self.engine.market.seed))
        return self._scope

    def next_request_id(self) -> int:
        """A counter for order-status ``request_id`` (call with the lock held)."""
        self._requests += 1
        return self._requests

    # -- ground truth and listeners ----------------------------------------------------------

    def snapshot(self) -> SimAccount:
        """A consistent copy of the account at the simulated now."""
        with self.locked() as engine:
            return engine.snapshot()

    def order_bodies(self) -> list[dict[str, Any]]:
        """The day's orders as ``GET /iserver/account/orders`` shows them (the full objects a
        ``sor`` subscription starts with), newest first."""
        with self.locked() as engine:
            return [live_order(st, self.account) for st in day_orders(engine)]

    def trade_bodies(self, days: int = 1) -> list[dict[str, Any]]:
        """Executions of the last ``days`` (1-7) New York days as ``/iserver/account/trades``
        shows them (what a ``str`` subscription replays), oldest first."""
        with self.locked() as engine:
            return trade_list(engine, self.account, self.user_name, days)

    def add_listener(self, listener: OrderListener) -> None:
        """Call ``listener(message)`` for every order change and execution from now on."""
        with self._deliver_lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: OrderListener) -> None:
        """Stop calling ``listener`` (ValueError when it was not added)."""
        with self._deliver_lock:
            self._listeners.remove(listener)

    def _collect(self) -> None:
        account = self.account
        for kind, value in self.engine.take_events():
            if kind == "execution":
                st = self.engine.orders[value.order_id]
                body = trade(value, st.instrument, account, self.user_name)
                self._outbox.append({"topic": "str", "args": [body]})
                continue
            st = value
            full = live_order(st, account)
            previous = self._sent.get(st.order_id)
            self._sent[st.order_id] = full
            if previous is None:
                self._outbox.append({"topic": "sor", "args": [full]})
                continue
            changed = {k: v for k, v in full.items() if previous.get(k) != v}
            if changed:
                message = {"acct": account, "orderId": st.order_id, **changed}
                self._outbox.append({"topic": "sor", "args": [message]})

    def _deliver(self) -> None:
        with self._deliver_lock:
            while True:
                with self._lock:
                    if not self._outbox:
                        return
                    message = self._outbox.popleft()
                for listener in list(self._listeners):
                    try:
                        listener(message)
                    except Exception:
                        _LOG.exception("order listener %r failed", listener)


def day_orders(engine: OrderEngine) -> list[OrderState]:
    """Open orders and orders that changed today (New York date of the engine's now), newest
    first: the orders IBKR's live-orders endpoint returns "for the day"."""
    assert engine.now is not None
    today = engine.now.astimezone(NEW_YORK).date()
    shown = [
        st
        for st in engine.orders.values()
        if not st.final or (st.updated_at or st.placed_at).astimezone(NEW_YORK).date() == today
    ]
    return sorted(shown, key=lambda st: st.order_id, reverse=True)


def trade_list(engine: OrderEngine, account: str, user: str, days: int) -> list[dict[str, Any]]:
    """``/iserver/account/trades`` bodies since midnight New York ``days - 1`` days ago."""
    assert engine.now is not None
    first_day = engine.now.astimezone(NEW_YORK).date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, time(0), tzinfo=NEW_YORK).astimezone(UTC)
    return [
        trade(e, engine.orders[e.order_id].instrument, account, user)
        for e in engine.executions
        if e.time >= since
    ]
