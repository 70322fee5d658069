"""Order and account records: the engine's mutable order state and the frozen ground truth.

Statuses are IBKR's words (reference/orders/ibkr-cp-orders.md §4.3). The simulator uses:

- ``PreSubmitted``: accepted by IBKR but not working at a venue: every order at placement,
  stop and trailing orders not yet triggered, bracket children waiting for their parent,
  MOC/OPG orders before their auction, and any order outside its trading hours.
- ``Submitted``: working during its trading hours (LMT, MKT, and stops once triggered).
- ``PendingCancel``: a cancel of a working order was requested; it takes effect at the next
  whole simulated second.
- ``Inactive``: placed with ``"deactivated": true`` (saved, not transmitted).
- ``Filled``, ``Cancelled`` (also for DAY/GTD expiry and IOC remainders): final.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ..instruments import SimInstrument
from .tickets import STOP_TYPES, Ticket

__all__ = [
    "CANCELLED",
    "FILLED",
    "FINAL",
    "INACTIVE",
    "PENDING_CANCEL",
    "PRE_SUBMITTED",
    "SUBMITTED",
    "OrderState",
    "SimAccount",
    "SimExecution",
    "SimOrder",
]

PRE_SUBMITTED = "PreSubmitted"
SUBMITTED = "Submitted"
PENDING_CANCEL = "PendingCancel"
INACTIVE = "Inactive"
FILLED = "Filled"
CANCELLED = "Cancelled"
FINAL = frozenset({FILLED, CANCELLED})


@dataclass
class OrderState:
    """One order as the engine holds it (mutated only under the engine's lock).

    Times are UTC datetimes (``placed_at``, ``updated_at``) or epoch seconds on the whole
    simulated second grid (``cancel_at``, ``expires_at``, ``auction_at``; None = never).
    Prices are cents: ``trail`` is the trailing stop level, ``limit`` the working limit once
    triggered (None = market). ``value`` is the filled shares' dollar value, ``commission``
    the order's commissions so far. ``through`` is the last whole second (epoch) the engine
    evaluated for it; ``version`` changes with every mutation (scan caches).
    """

    order_id: int
    ticket: Ticket
    instrument: SimInstrument
    placed_at: datetime
    status: str = PRE_SUBMITTED
    filled: int = 0
    value: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    parent_id: int | None = None
    oca_group: str | None = None
    waiting_parent: bool = False
    triggered: bool = False
    trail: int | None = None
    limit: int | None = None
    cancel_at: float | None = None
    expires_at: float | None = None
    auction_at: float | None = None
    updated_at: datetime | None = None
    last_fill_at: datetime | None = None
    through: int = 0
    version: int = 0

    @property
    def remaining(self) -> int:
        """Shares not yet filled (0 once final)."""
        return 0 if self.status in FINAL else self.ticket.quantity - self.filled

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def avg_price(self) -> Decimal | None:
        """Average fill price (USD), None before the first fill."""
        return self.value / self.filled if self.filled else None

    @property
    def is_stop(self) -> bool:
        return self.ticket.order_type in STOP_TYPES

    def touch(self, when: datetime) -> None:
        """Record a change at ``when``."""
        self.updated_at = when
        self.version += 1

    def record(self) -> SimOrder:
        """The frozen ground-truth copy."""
        ticket = self.ticket
        avg = self.avg_price
        return SimOrder(
            order_id=self.order_id,
            coid=ticket.coid,
            conid=ticket.conid,
            side=ticket.side,
            quantity=ticket.quantity,
            order_type=ticket.order_type,
            status=self.status,
            filled=self.filled,
            avg_price=float(avg) if avg is not None else None,
            tif=ticket.tif,
            price=ticket.price / 100 if ticket.price is not None else None,
            aux_price=ticket.aux_price / 100 if ticket.aux_price is not None else None,
            parent_id=self.parent_id,
            oca_group=self.oca_group,
            commission=float(self.commission),
            placed_at=self.placed_at,
        )


@dataclass(frozen=True)
class SimOrder:
    """Ground truth of one order: ``status`` in IBKR's words, ``filled`` shares,
    ``avg_price``/``price``/``aux_price``/``commission`` in USD (None when not set)."""

    order_id: int
    coid: str | None
    conid: int
    side: str
    quantity: int
    order_type: str
    status: str
    filled: int
    avg_price: float | None
    tif: str
    price: float | None
    aux_price: float | None
    parent_id: int | None
    oca_group: str | None
    commission: float
    placed_at: datetime


@dataclass(frozen=True)
class SimExecution:
    """Ground truth of one execution (fill): ``price`` and ``commission`` in USD, ``time`` UTC,
    ``side`` ``"BUY"``/``"SELL"``, ``quantity`` shares (always > 0)."""

    execution_id: str
    order_id: int
    coid: str | None
    conid: int
    side: str
    quantity: int
    price: float
    commission: float
    time: datetime


@dataclass(frozen=True)
class SimAccount:
    """A consistent copy of the account: ``cash`` (USD), ``positions`` ``{conid: signed
    shares}`` (flat positions left out), every ``orders`` record and ``executions`` in order.
    ``starting_cash`` is the simulator's ``cash`` argument."""

    account_id: str
    starting_cash: float
    cash: float
    positions: Mapping[int, int]
    orders: tuple[SimOrder, ...]
    executions: tuple[SimExecution, ...]

    def order(self, order_id: int) -> SimOrder:
        """The order with ``order_id``; KeyError naming the known ids otherwise."""
        for order in self.orders:
            if order.order_id == order_id:
                return order
        known = ", ".join(str(o.order_id) for o in self.orders) or "none"
        raise KeyError(f"order {order_id} is not in the account; orders: {known}")
