"""What happens to one order: arrival, a working second, auctions, fills, children, the end.

The engine's walk (:mod:`.engine`) decides *when*; this base class carries out *what*, at a
given instant, and records the events. Rules (bracket children, OCA groups, cancels) are those
of the :mod:`.engine` module doc. Not thread-safe (the desk holds the lock).
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..calendar import RTH_END, RTH_START, locate
from ..instruments import InstrumentBook
from ..market import MarketModel
from ..quotes import path_price, top_of_book
from .checks import Checks
from .matching import Progress, evaluate
from .money import dollars, execution_commission
from .state import (
    CANCELLED,
    FILLED,
    INACTIVE,
    PENDING_CANCEL,
    PRE_SUBMITTED,
    SUBMITTED,
    OrderState,
    SimExecution,
)
from .timing import in_window, utc

__all__ = ["Event", "Lifecycle"]

#: ("order", a copy of the OrderState as it was) or ("execution", SimExecution).
Event = tuple[str, Any]


class Lifecycle(Checks):
    """The order-level actions of the engine and the state they change."""

    def __init__(
        self, market: MarketModel, instruments: InstrumentBook, account_id: str, cash: Decimal
    ) -> None:
        super().__init__(market, instruments, account_id, cash)
        self._executions: list[SimExecution] = []
        self._open: dict[int, OrderState] = {}
        self._events: list[Event] = []

    def _active(self, st: OrderState) -> bool:
        """True when the market can trigger or fill ``st`` (not waiting, saved or auctioned)."""
        return not (
            st.final or st.waiting_parent or st.status == INACTIVE or st.auction_at is not None
        )

    def _progress(self, st: OrderState) -> Progress:
        return Progress(st.triggered, st.trail, st.limit, st.remaining)

    def _apply(self, st: OrderState, progress: Progress) -> None:
        st.triggered, st.trail, st.limit = progress.triggered, progress.trail, progress.limit

    def _desired(self, st: OrderState, epoch: float) -> str:
        if st.final or st.status in (PENDING_CANCEL, INACTIVE):
            return st.status
        if st.waiting_parent or not st.triggered or st.auction_at is not None:
            return PRE_SUBMITTED
        return SUBMITTED if in_window(st.ticket, epoch) else PRE_SUBMITTED

    def _set_status(self, st: OrderState, status: str, when: datetime) -> None:
        if status != st.status:
            st.status = status
            st.touch(when)
            self._emit(st)

    # -- what happens to an order ------------------------------------------------------------

    def _arrive(self, st: OrderState, epoch: float) -> None:
        """Match a new or modified order at its (possibly fractional) instant ``epoch``."""
        if not self._active(st):
            return
        if in_window(st.ticket, epoch):
            self._work(st, epoch, self._progress(st))
        if st.ticket.tif == "IOC" and not st.final:
            self._finish(st, utc(epoch), CANCELLED)

    def _work(self, st: OrderState, epoch: float, progress: Progress) -> None:
        moment = locate(utc(epoch))
        bars = self.market.day(st.instrument, moment.day)
        m = moment.minute
        last = path_price(bars.open[m], bars.high[m], bars.low[m], bars.close[m], moment.second)
        seed, conid = self.market.seed, st.ticket.conid
        outcome = evaluate(
            st.ticket, progress, last, lambda: top_of_book(seed, conid, m, int(moment.second))
        )
        self._apply(st, outcome.progress)
        when = utc(epoch)
        self._set_status(st, self._desired(st, epoch), when)
        if outcome.fill_quantity:
            self._fill(st, outcome.fill_quantity, outcome.fill_price, when)

    def _auction(self, st: OrderState, instant: int) -> None:
        moment = locate(utc(instant))
        bars = self.market.day(st.instrument, moment.day)
        moc = st.ticket.order_type == "MOC"
        price = bars.close[RTH_END - 1] if moc else bars.open[RTH_START]
        limit = st.ticket.price if st.ticket.order_type == "LMT" else None
        buy = st.ticket.side == "BUY"
        st.auction_at = None
        if limit is None or (price <= limit if buy else price >= limit):
            self._fill(st, st.remaining, price, utc(instant))
        else:
            self._finish(st, utc(instant), CANCELLED)

    def _fill(self, st: OrderState, quantity: int, cents: int, when: datetime) -> None:
        ticket = st.ticket
        price = dollars(cents)
        value = quantity * price
        commission = execution_commission(st.filled, st.value, quantity, value)
        first = st.filled == 0
        st.filled += quantity
        st.value += value
        st.commission += commission
        signed = quantity if ticket.side == "BUY" else -quantity
        self.book.apply(ticket.conid, signed, price, commission)
        execution = SimExecution(
            self._execution_id(len(self._executions) + 1),
            st.order_id,
            ticket.coid,
            ticket.conid,
            ticket.side,
            quantity,
            float(price),
            float(commission),
            when,
        )
        self._executions.append(execution)
        self._events.append(("execution", execution))
        st.last_fill_at = when
        if st.filled >= ticket.quantity:
            st.status = FILLED
            st.cancel_at = None
            del self._open[st.order_id]
        st.touch(when)
        self._emit(st)
        if first:
            for other in list(self._open.values()):
                group = st.oca_group is not None and other.oca_group == st.oca_group
                sibling = st.parent_id is not None and other.parent_id == st.parent_id
                if other is not st and (group or sibling):
                    self._finish(other, when, CANCELLED)
        if st.status == FILLED:
            self._release_children(st, when, ticket.quantity)

    def _release_children(self, parent: OrderState, when: datetime, quantity: int) -> None:
        through = math.floor(when.timestamp())
        for child in list(self._open.values()):
            if child.parent_id != parent.order_id or not child.waiting_parent:
                continue
            if child.ticket.quantity != quantity:
                child.ticket = replace(child.ticket, quantity=quantity)
            child.waiting_parent = False
            child.through = max(child.through, through)
            child.status = self._desired(child, when.timestamp())
            child.touch(when)
            self._emit(child)

    def _finish(self, st: OrderState, when: datetime, status: str) -> None:
        st.status = status
        st.cancel_at = None
        self._open.pop(st.order_id, None)
        st.touch(when)
        self._emit(st)
        if st.filled:
            self._release_children(st, when, st.filled)
        for child in list(self._open.values()):
            if child.parent_id == st.order_id and child.waiting_parent:
                self._finish(child, when, CANCELLED)

    def _request_cancel(self, st: OrderState, epoch: float) -> bool:
        if st.status == PENDING_CANCEL:
            return False
        if st.status == SUBMITTED:
            st.status = PENDING_CANCEL
            st.cancel_at = math.floor(epoch) + 1
            st.touch(utc(epoch))
            self._emit(st)
            return False
        self._finish(st, utc(epoch), CANCELLED)
        return True

    def _emit(self, st: OrderState) -> None:
        self._events.append(("order", copy.copy(st)))

    def _execution_id(self, number: int) -> str:
        return f"{0xE0D5 + self.market.seed % 0x10000:08x}.{number:08x}.01.01"
