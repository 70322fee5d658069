"""One state machine for every order the broker sends: IBKR's events in, the strategy's
notifications out. Pure: no I/O, no threads, no backtrader.

Events come from the broker's worker: an order was accepted (its IBKR id) or refused, IBKR
reported a status (live orders, order status, ``sor``) or an execution (trades, ``str``), the
strategy asked to cancel. The book answers with :data:`Output` values the backtrader layer
turns into notifications: :class:`Accepted` once, a :class:`Fill` per new execution (each
applied once, by execution id, as a delta of the order's cumulative fill), and one
:class:`Finished` for Canceled / Expired / Margin / Rejected. A filled order is complete when
its fills add up to its size (backtrader marks it Completed on that last fill). Terminal states
are final; duplicate, late or out-of-order events change nothing.

Fills are attributed by ``order_ref`` (the order's ``cOID``). Bracket children carry no
``cOID`` (IBKR: "do not set this value for child orders"), so their executions are matched to
the child of the same contract and side whose cumulative fill (from a status) grew by at least
the execution's size; an execution nobody claims after :data:`CLAIM_ROUNDS` status rounds, or
one with another ``cOID``, happened outside this run and is reported (:class:`External`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ..models.orders import Execution, OrderStatus
from .requests import OrderRequest, Tif

__all__ = [
    "CLAIM_ROUNDS",
    "Accepted",
    "External",
    "Fill",
    "Finished",
    "Note",
    "OrderBook",
    "Output",
    "State",
]

#: Status rounds an execution without an owner waits before it counts as external.
CLAIM_ROUNDS = 3
#: Shares below which two sizes are equal (IBKR sends sizes as floats).
EPSILON = 1e-9


class State(enum.Enum):
    """The order's state in backtrader's words."""

    SUBMITTED = "Submitted"
    ACCEPTED = "Accepted"
    PARTIAL = "Partial"
    COMPLETED = "Completed"
    CANCELED = "Canceled"
    EXPIRED = "Expired"
    MARGIN = "Margin"
    REJECTED = "Rejected"


TERMINAL = frozenset({State.COMPLETED, State.CANCELED, State.EXPIRED, State.MARGIN, State.REJECTED})


@dataclass(frozen=True)
class Accepted:
    """IBKR took the order (``order_id``)."""

    ref: int
    order_id: int


@dataclass(frozen=True)
class Fill:
    """One new execution of order ``ref``: ``size`` shares (unsigned) at ``price``, IBKR's
    ``commission``, at ``time`` (aware UTC)."""

    ref: int
    execution_id: str
    size: float
    price: float
    commission: float
    time: datetime


@dataclass(frozen=True)
class Finished:
    """Order ``ref`` ended without (completely) filling: ``state`` and why."""

    ref: int
    state: State
    reason: str


@dataclass(frozen=True)
class External:
    """An execution this run did not cause (another program, the IBKR app, an earlier run)."""

    execution: Execution


@dataclass(frozen=True)
class Note:
    """Something the user should know (a store message)."""

    message: str


Output = Accepted | Fill | Finished | External | Note

#: IBKR refusals that are about money: backtrader's Margin.
_MARGIN_WORDS = ("margin", "insufficient", "equity with loan", "buying power", "funds")


@dataclass
class _Order:
    request: OrderRequest
    coid: str | None
    order_id: int | None = None
    state: State = State.SUBMITTED
    applied: float = 0.0
    reported: float = 0.0  # IBKR's cumulative fill, the largest seen
    final: OrderStatus | None = None  # Filled, Cancelled or Inactive, once IBKR said it
    cancel_requested: bool = False
    executions: set[str] = field(default_factory=set)

    @property
    def ref(self) -> int:
        return self.request.ref

    @property
    def open(self) -> bool:
        return self.state not in TERMINAL

    @property
    def unclaimed(self) -> float:
        """Shares IBKR reported filled that no execution has been applied for yet."""
        return self.reported - self.applied


@dataclass
class _Waiting:
    execution: Execution
    rounds: int = 0


class OrderBook:
    """The orders of one broker run. Not thread-safe: one thread (the broker's worker) feeds it
    and takes its outputs."""

    def __init__(self) -> None:
        self._orders: dict[int, _Order] = {}
        self._by_coid: dict[str, _Order] = {}
        self._by_id: dict[int, _Order] = {}
        self._seen: set[str] = set()
        self._waiting: list[_Waiting] = []
        self._out: list[Output] = []

    # -- reading --------------------------------------------------------------------------

    def state(self, ref: int) -> State | None:
        order = self._orders.get(ref)
        return order.state if order is not None else None

    def order_id(self, ref: int) -> int | None:
        order = self._orders.get(ref)
        return order.order_id if order is not None else None

    def open_refs(self) -> list[int]:
        return [ref for ref, order in self._orders.items() if order.open]

    def knows_coid(self, coid: str) -> bool:
        return coid in self._by_coid

    def knows_order_id(self, order_id: int) -> bool:
        return order_id in self._by_id

    def take(self) -> list[Output]:
        """The outputs since the last call, in order."""
        out, self._out = self._out, []
        return out

    # -- events ----------------------------------------------------------------------------

    def track(self, request: OrderRequest, coid: str | None) -> None:
        """The order was created and is being sent (backtrader notified Submitted)."""
        order = _Order(request, coid)
        self._orders[request.ref] = order
        if coid is not None:
            self._by_coid[coid] = order

    def seen(self, execution_ids: Iterable[str]) -> None:
        """Executions that happened before this run (never applied, never reported)."""
        self._seen.update(execution_ids)

    def accepted(self, ref: int, order_id: int) -> None:
        order = self._orders.get(ref)
        if order is None:
            return
        if order.order_id is None:
            order.order_id = order_id
            self._by_id[order_id] = order
        self._accept(order)
        self._settle(order)

    def refused(self, ref: int, reason: str) -> None:
        """IBKR refused the order (or it could not be sent): Margin when it is about money,
        else Rejected."""
        order = self._orders.get(ref)
        if order is None or not order.open:
            return
        text = reason.lower()
        state = State.MARGIN if any(w in text for w in _MARGIN_WORDS) else State.REJECTED
        self._finish(order, state, reason)

    def cancel_requested(self, ref: int) -> bool:
        """The strategy asked to cancel; True when a cancel should be sent (the order is
        open, known to IBKR and not asked already)."""
        order = self._orders.get(ref)
        if order is None or not order.open or order.cancel_requested:
            return False
        order.cancel_requested = True
        return order.order_id is not None

    def cancel_failed(self, ref: int) -> None:
        """The cancel could not be delivered: a later cancel of ``ref`` is sent again."""
        order = self._orders.get(ref)
        if order is not None:
            order.cancel_requested = False

    def status(
        self,
        *,
        order_id: int | None,
        coid: str | None,
        status: OrderStatus,
        filled: float | None,
    ) -> None:
        """IBKR reported ``status`` for an order (by id, or by ``cOID`` when the id is not
        known yet); ``filled`` is the cumulative filled size when the report carries it."""
        order = None
        if order_id is not None:
            order = self._by_id.get(order_id)
        if order is None and coid is not None:
            order = self._by_coid.get(coid)
            if order is not None and order_id is not None and order.order_id is None:
                order.order_id = order_id
                self._by_id[order_id] = order
        if order is None:
            return
        if status is not OrderStatus.UNKNOWN and order.open:
            self._accept(order)
        if filled is not None and filled > order.reported:
            order.reported = filled
        self._claim_waiting()
        if status in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.INACTIVE):
            order.final = status
        # Settled in status_round(): a cancelled order's fate (cancelled as asked, its
        # sibling filled, expired) depends on the other statuses of the same round.

    def execution(self, execution: Execution) -> None:
        """An execution from IBKR: applied once (by execution id) to the order it belongs to."""
        if execution.execution_id in self._seen:
            return
        self._seen.add(execution.execution_id)
        if execution.coid is not None:
            order = self._by_coid.get(execution.coid)
            if order is None:
                self._out.append(External(execution))
                return
            self._apply(order, execution)
            return
        owner = self._claimant(execution)
        if owner is None:
            self._waiting.append(_Waiting(execution))
            return
        self._apply(owner, execution)

    def status_round(self, *, complete: bool = True) -> None:
        """A batch of statuses ended: orders with a final status settle, executions wait for
        an owner. ``complete``: every open order's status was read (a poll of the live
        orders); executions still without an owner then age, and after :data:`CLAIM_ROUNDS`
        such rounds count as external."""
        self._claim_waiting()
        for order in list(self._orders.values()):
            self._settle(order)
        if not complete:
            return
        for waiting in list(self._waiting):
            waiting.rounds += 1
            if waiting.rounds >= CLAIM_ROUNDS:
                self._waiting.remove(waiting)
                self._out.append(External(waiting.execution))

    def lost(self, ref: int, reason: str) -> None:
        """The order's fate cannot be known (IBKR never confirmed it and it cannot be found):
        Rejected, saying so."""
        order = self._orders.get(ref)
        if order is not None and order.open and order.order_id is None:
            self._finish(order, State.REJECTED, reason)

    # -- internals -------------------------------------------------------------------------

    def _accept(self, order: _Order) -> None:
        if order.state is State.SUBMITTED:
            order.state = State.ACCEPTED
            self._out.append(Accepted(order.ref, order.order_id or 0))

    def _claimant(self, execution: Execution) -> _Order | None:
        """The only open order without a cOID, of the execution's contract and side, whose
        reported fill leaves room for it."""
        side = "BUY" if execution.side == "BUY" else "SELL"
        candidates = [
            o
            for o in self._orders.values()
            if o.coid is None
            and o.request.conid == execution.conid
            and o.request.side == side
            and o.unclaimed >= execution.size - EPSILON
            and o.applied < o.request.size - EPSILON
        ]
        if len(candidates) == 1:
            return candidates[0]
        return None

    def _claim_waiting(self) -> None:
        for waiting in list(self._waiting):
            owner = self._claimant(waiting.execution)
            if owner is not None:
                self._waiting.remove(waiting)
                self._apply(owner, waiting.execution)

    def _apply(self, order: _Order, execution: Execution) -> None:
        if not order.open and order.state is not State.CANCELED:
            # A fill after a terminal state other than a cancel is impossible at IBKR; keep
            # the books straight by reporting it instead of changing a final state.
            self._out.append(External(execution))
            return
        room = order.request.size - order.applied
        size = min(execution.size, room)
        if size <= EPSILON:
            self._out.append(External(execution))
            return
        self._accept(order)
        order.applied += size
        order.reported = max(order.reported, order.applied)
        order.executions.add(execution.execution_id)
        if order.state is State.CANCELED:
            # IBKR: "you may still receive an execution while your cancellation request is
            # pending"; the cancel was notified too early only if the order had no final
            # status; a fill after a confirmed cancel is applied and reported.
            self._out.append(
                Note(
                    f"order {order.ref} was filled {size:g} after IBKR reported it cancelled; "
                    "the fill is applied"
                )
            )
        self._out.append(
            Fill(
                order.ref,
                execution.execution_id,
                size,
                execution.price,
                execution.commission or 0.0,
                execution.time,
            )
        )
        if order.applied >= order.request.size - EPSILON and order.state is not State.CANCELED:
            order.state = State.COMPLETED
        elif order.state is State.ACCEPTED:
            order.state = State.PARTIAL
        self._settle(order)

    def _settle(self, order: _Order) -> None:
        """A final status from IBKR ends the order once every fill it reported is applied."""
        if not order.open or order.final is None:
            return
        if order.applied < order.reported - EPSILON:
            return  # executions still to come
        if order.final is OrderStatus.INACTIVE:
            self._finish(
                order,
                State.REJECTED,
                "IBKR reports the order inactive (not accepted by IBKR or the exchange)",
            )
        elif order.final is OrderStatus.CANCELLED:
            if order.cancel_requested or self._parent_cancelled(order):
                self._finish(order, State.CANCELED, "cancelled as requested")
            elif self._sibling_filled(order):
                self._finish(order, State.CANCELED, "its bracket or OCA sibling filled")
            elif order.request.tif in (Tif.DAY, Tif.GTD, Tif.IOC):
                self._finish(order, State.EXPIRED, f"{order.request.tif.value} order expired")
            else:
                self._finish(
                    order,
                    State.CANCELED,
                    "IBKR cancelled the order (IBKR or the exchange refused it after accepting it)",
                )

    def _parent_cancelled(self, order: _Order) -> bool:
        parent = self._orders.get(order.request.parent_ref or -1)
        return parent is not None and parent.cancel_requested

    def _sibling_filled(self, order: _Order) -> bool:
        """A member of the order's OCA group, or another child of its bracket, has fills."""
        request = order.request
        for other in self._orders.values():
            if other is order or max(other.applied, other.reported) <= EPSILON:
                continue
            oca = request.oca_ref is not None and other.request.oca_ref == request.oca_ref
            bracket = (
                request.parent_ref is not None and other.request.parent_ref == request.parent_ref
            )
            if oca or bracket:
                return True
        return False

    def _finish(self, order: _Order, state: State, reason: str) -> None:
        order.state = state
        self._out.append(Finished(order.ref, state, reason))
