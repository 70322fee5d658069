"""The order engine: one account's orders, fills, cash and positions as a deterministic state
machine over the seeded market.

Commands in (each at a simulated instant): :meth:`OrderEngine.place`, :meth:`~OrderEngine.modify`,
:meth:`~OrderEngine.cancel`, and :meth:`~OrderEngine.advance`, which walks the market from the
last evaluated second to ``now`` and applies, in time order (then order id), every cancel taking
effect, expiry, auction, session open/close and trigger or fill (rules: :mod:`.matching`,
:mod:`.timing`). Events out: :meth:`~OrderEngine.take_events` (``("order", copy of the order)``
at every change, ``("execution", SimExecution)`` per fill). The same commands at the same instants
give the same fills whatever the wall clock does; nothing here sleeps, reads a clock or locks —
the :class:`~.desk.TradingDesk` serializes calls.

Bracket children (``parentId`` = the parent's ``cOID``) wait (``PreSubmitted``) until their
parent is completely filled and are evaluated from the next second; the first fill of one child
cancels its siblings; a parent cancelled or expired before any fill cancels its children, after
a partial fill releases them for the filled quantity. An OCA group (``isSingleGroup`` on the
tickets of one request, children excluded): the first fill of one member cancels the others.
A cancel of a working (``Submitted``) order is ``PendingCancel`` until the next whole second; any
other open order is cancelled at once. Cancelling a bracket child cancels its siblings too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..instruments import InstrumentBook
from ..market import MarketModel
from .lifecycle import Event, Lifecycle
from .matching import Scan, initial_progress, scan
from .state import (
    CANCELLED,
    FILLED,
    INACTIVE,
    PENDING_CANCEL,
    PRE_SUBMITTED,
    SUBMITTED,
    OrderState,
    SimAccount,
    SimExecution,
)
from .tickets import Ticket, TicketError, modified_ticket
from .timing import auction_at, expires_at, in_window, next_edge, utc

__all__ = ["Event", "OrderEngine"]

_FIRST_ORDER_ID = 1_149_000_001  # the magnitude of real paper ids (reference samples)


class OrderEngine(Lifecycle):
    """One account (``account_id``, starting ``cash`` USD) trading ``instruments`` on ``market``."""

    def __init__(
        self, market: MarketModel, instruments: InstrumentBook, account_id: str, cash: Decimal
    ) -> None:
        super().__init__(market, instruments, account_id, cash)
        self._next_id = _FIRST_ORDER_ID
        self._scans: dict[int, tuple[tuple[int, int, int], Scan]] = {}
        self.now: datetime | None = None

    # -- reading -----------------------------------------------------------------------------

    def order(self, order_id: int) -> OrderState | None:
        return self.orders.get(order_id)

    @property
    def executions(self) -> list[SimExecution]:
        return self._executions

    def snapshot(self) -> SimAccount:
        """A frozen copy of the account."""
        return SimAccount(
            account_id=self.account_id,
            starting_cash=float(self.book.starting_cash),
            cash=float(self.book.cash),
            positions=self.book.positions(),
            orders=tuple(st.record() for st in self.orders.values()),
            executions=tuple(self._executions),
        )

    def open_orders(self) -> list[OrderState]:
        """The orders not yet filled or cancelled, by order id."""
        return list(self._open.values())

    def take_events(self) -> list[Event]:
        """The events since the last call, in order."""
        events, self._events = self._events, []
        return events

    # -- commands ----------------------------------------------------------------------------

    def place(self, tickets: Sequence[Ticket], now: datetime) -> list[tuple[int, str]]:
        """Place the tickets of one request (checked first; TicketError when refused).

        Returns ``(order_id, status at acceptance)`` per ticket, then matches them at ``now``.
        """
        self.check(tickets, now, self._open.values())
        epoch = now.timestamp()
        grouped = [t for t in tickets if t.single_group and t.parent_coid is None]
        group = None
        if len(grouped) > 1:
            group = str(self._next_id)
        created: list[OrderState] = []
        by_coid: dict[str, OrderState] = {}
        for ticket in tickets:
            parent = None
            if ticket.parent_coid is not None:
                parent = by_coid.get(ticket.parent_coid) or self.open_by_coid(ticket.parent_coid)
            st = OrderState(self._next_id, ticket, self.instrument(ticket), now, updated_at=now)
            self._next_id += 1
            progress = initial_progress(ticket)
            st.triggered, st.trail, st.limit = progress.triggered, progress.trail, progress.limit
            st.through = math.floor(epoch)
            st.parent_id = parent.order_id if parent is not None else None
            st.waiting_parent = parent is not None and parent.status != FILLED
            st.oca_group = group if ticket in grouped else None
            st.expires_at = expires_at(ticket, epoch)
            st.auction_at = auction_at(ticket, epoch)
            st.status = INACTIVE if ticket.deactivated else PRE_SUBMITTED
            if ticket.coid is not None:
                self.register_coid(ticket.coid, st.order_id, epoch)
                by_coid[ticket.coid] = st
            self.orders[st.order_id] = st
            self._open[st.order_id] = st
            self._emit(st)
            created.append(st)
        accepted = [(st.order_id, st.status) for st in created]
        for st in [st for st in created if not st.waiting_parent]:
            self._arrive(st, epoch)  # children released now are evaluated from the next second
        return accepted

    def modify(self, order_id: int, raw: Any, now: datetime) -> OrderState:
        """Apply a modify request to an open order (TicketError when refused)."""
        st = self.orders.get(order_id)
        if st is None:
            raise TicketError(f"OrderID {order_id} doesn't exist")
        if st.final or st.status == PENDING_CANCEL:
            raise TicketError(f"Order {order_id} cannot be modified: its status is {st.status}.")
        ticket = modified_ticket(st.ticket, raw)
        if ticket.quantity <= st.filled:
            raise TicketError(
                f"quantity {ticket.quantity} must exceed the {st.filled} shares already filled"
            )
        others = [o for o in self._open.values() if o is not st]
        if st.parent_id is None:
            self.check_funds([ticket], now.timestamp(), others)
        epoch = now.timestamp()
        old, st.ticket = st.ticket, ticket
        if ticket.order_type != old.order_type or not st.triggered:
            progress = initial_progress(ticket)
            st.triggered, st.limit = progress.triggered, progress.limit
            if (ticket.price, ticket.aux_price, ticket.trailing_amt) != (
                old.price,
                old.aux_price,
                old.trailing_amt,
            ) or ticket.order_type != old.order_type:
                st.trail = progress.trail
        elif ticket.order_type in ("LMT", "STOP_LIMIT"):
            st.limit = ticket.price
        if (ticket.tif, ticket.good_till, ticket.outside_rth) != (
            old.tif,
            old.good_till,
            old.outside_rth,
        ):
            st.expires_at = expires_at(ticket, epoch)
            st.auction_at = auction_at(ticket, epoch)
        if ticket.deactivated:
            st.status = INACTIVE
        elif st.status == INACTIVE:
            st.status = PRE_SUBMITTED
        st.touch(now)
        self._emit(st)
        self._arrive(st, epoch)
        return st

    def cancel(self, order_id: int, now: datetime) -> list[tuple[OrderState, bool]]:
        """Request cancellation; ``(order, cancelled at once)`` per order touched.

        ``order_id`` -1 cancels every open order. TicketError for unknown or final orders.
        """
        epoch = now.timestamp()
        if order_id == -1:
            targets = list(self._open.values())
        else:
            st = self.orders.get(order_id)
            if st is None:
                raise TicketError(f"OrderID {order_id} doesn't exist")
            if st.final:
                raise TicketError(
                    f"OrderId {order_id} that needs to be cancelled cannot be cancelled, "
                    f"state: {st.status}."
                )
            targets = [st]
            if st.parent_id is not None:
                targets += [o for o in self._open.values() if o.parent_id == st.parent_id]
        answers: list[tuple[OrderState, bool]] = []
        for st in {o.order_id: o for o in targets}.values():
            if not st.final:
                answers.append((st, self._request_cancel(st, epoch)))
        return answers

    def advance(self, now: datetime) -> None:
        """Walk every whole second up to ``now`` (see the module doc)."""
        self.now = now
        end = math.floor(now.timestamp())
        self._scans.clear()
        while True:
            best: int | None = None
            due: list[OrderState] = []
            for st in list(self._open.values()):
                instant = self._next_time(st, end)
                if instant is None or (best is not None and instant > best):
                    continue
                if best is None or instant < best:
                    best, due = instant, []
                due.append(st)
            if best is None:
                break
            for st in sorted(due, key=lambda o: o.order_id):
                if not st.final and self._next_time(st, end) == best:
                    self._step(st, best)
        for st in list(self._open.values()):
            if st.through < end:
                if self._active(st):
                    self._apply(st, self._scan(st, end).progress)
                st.through = end

    # -- the walk ----------------------------------------------------------------------------

    def _scan(self, st: OrderState, end: int) -> Scan:
        """The scan of ``st`` over ``through + 1 .. end`` (cached while ``st`` is unchanged)."""
        key = (st.version, st.through, end)
        cached = self._scans.get(st.order_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        found = self._scan_span(st, st.through + 1, end)
        self._scans[st.order_id] = (key, found)
        return found

    def _scan_span(self, st: OrderState, start: int, end: int) -> Scan:
        instrument = st.instrument

        def day_bars(day: Any) -> Any:
            return self.market.day(instrument, day)

        return scan(self.market.seed, st.ticket, day_bars, self._progress(st), start, end)

    def _next_time(self, st: OrderState, end: int) -> int | None:
        """The next second (<= ``end``) at which something happens to ``st``, or None.

        Timed events (cancel, expiry, auction, a session edge that changes the status) bound
        the market scan, so every stretch of market is scanned once per order.
        """
        start = st.through + 1
        if start > end:
            return None
        times = [t for t in (st.cancel_at, st.expires_at, st.auction_at) if t is not None]
        active = self._active(st)
        if active and st.triggered and st.status in (SUBMITTED, PRE_SUBMITTED):
            due = self._desired(st, start) != st.status
            times.append(start if due else next_edge(st.ticket, start - 1))
        timed = max(start, int(min(times))) if times else None
        if active:
            horizon = end if timed is None else min(end, timed - 1)
            hit = self._scan(st, horizon).hit if horizon >= start else None
            if hit is not None:
                return hit
        return timed if timed is not None and timed <= end else None

    def _step(self, st: OrderState, instant: int) -> None:
        when = utc(instant)
        progress = self._progress(st)
        if self._active(st) and instant > st.through + 1:
            cached = self._scans.get(st.order_id)
            fresh = cached is not None and cached[0][:2] == (st.version, st.through)
            if (
                fresh
                and cached is not None
                and (
                    cached[1].hit == instant
                    or (cached[1].hit is None and cached[0][2] == instant - 1)
                )
            ):
                progress = cached[1].progress  # the state just before ``instant``
            else:
                progress = self._scan_span(st, st.through + 1, instant - 1).progress
        st.through = instant
        ends = [t for t in (st.cancel_at, st.expires_at) if t is not None and instant >= t]
        if ends:
            self._finish(st, when, CANCELLED)
        elif st.auction_at is not None and instant >= st.auction_at:
            self._auction(st, instant)
        elif self._active(st):
            if in_window(st.ticket, instant):
                self._work(st, instant, progress)
            else:
                self._apply(st, progress)
                self._set_status(st, self._desired(st, instant), when)
