"""Live orders, order status and executions as frozen objects. Pure: no I/O.

Facts and sources: reference/orders/ibkr-cp-orders.md §4 (live orders, order status, status
values) and §5 (executions). The answers to placing, modifying and cancelling are in
:mod:`.answers`.

**Ids are normalised**: ``orderId``/``order_id`` (int here, a digit string in place answers)
and ``conid`` (int, a digit string in some ``str`` messages) are ``int`` in every model. Sides
``B``/``S`` become ``BUY``/``SELL``. Prices and sizes sent as strings (``"457.00"``, ``"1.0"``)
are floats; ``""`` and ``"NA"`` are None. Times are aware UTC datetimes.

**Account ids are secrets**: models keep the account an order belongs to (``account``) but leave
it out of ``repr``/``str``; messages never quote one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .readers import (
    malformed,
    read_bool,
    read_epoch_ms,
    read_float,
    read_id,
    read_object,
    read_short_time,
    read_side,
    read_text,
)

__all__ = [
    "Execution",
    "LiveOrder",
    "LiveOrders",
    "OrderStatus",
    "OrderStatusReport",
    "order_status",
    "parse_executions",
    "parse_live_order",
    "parse_live_orders",
    "parse_order_status",
]

LIVE_ORDERS_ENDPOINT = "/iserver/account/orders"
STATUS_ENDPOINT = "/iserver/account/order/status/{orderId}"
TRADES_ENDPOINT = "/iserver/account/trades"


class OrderStatus(str, enum.Enum):
    """IBKR's order states (ibkr-cp-orders.md §4.3); :attr:`UNKNOWN` for any other word (the
    model keeps the word itself in ``status_text``)."""

    PENDING_SUBMIT = "PendingSubmit"
    PRE_SUBMITTED = "PreSubmitted"
    SUBMITTED = "Submitted"
    FILLED = "Filled"
    PENDING_CANCEL = "PendingCancel"
    PRE_CANCELLED = "PreCancelled"
    CANCELLED = "Cancelled"
    INACTIVE = "Inactive"
    WARN_STATE = "WarnState"
    UNKNOWN = "Unknown"

    @classmethod
    def parse(cls, text: object) -> OrderStatus:
        """The state for IBKR's word (``"PreSubmitted"``), case and ``_`` insensitive (so the
        filter spelling ``"pre_submitted"`` works too); :attr:`UNKNOWN` otherwise."""
        if not isinstance(text, str):
            return cls.UNKNOWN
        return _BY_KEY.get(text.replace("_", "").strip().lower(), cls.UNKNOWN)

    @property
    def final(self) -> bool:
        """Filled or Cancelled: the order will not change again."""
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED)


_BY_KEY = {s.value.lower(): s for s in OrderStatus if s is not OrderStatus.UNKNOWN}


def order_status(value: object) -> tuple[OrderStatus, str]:
    """IBKR's status word as (state, the word as sent)."""
    text = value.strip() if isinstance(value, str) else ""
    return OrderStatus.parse(text), text


# -- live orders ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveOrder:
    """One order of ``GET /iserver/account/orders`` (or a full ``sor`` message).

    ``coid`` is the ``cOID`` it was placed with (IBKR's ``order_ref``; None when none was
    sent). ``order_type`` is IBKR's ``origOrderType`` (``LIMIT``, ``MARKET``, ``STOP``...);
    ``time_in_force`` as IBKR shows it here (``"CLOSE"`` for a DAY order). ``price`` is the
    limit or stop price (None for market orders), ``avg_price`` the average fill price (None
    before a fill). Sizes are shares (or units); ``last_execution_time`` is IBKR's
    ``lastExecutionTime_r`` (UTC; the last change, not only fills).
    """

    order_id: int
    conid: int
    coid: str | None
    status: OrderStatus
    status_text: str
    side: str
    order_type: str | None
    time_in_force: str | None
    total_size: float
    filled_quantity: float
    remaining_quantity: float
    price: float | None = None
    avg_price: float | None = None
    symbol: str | None = None
    sec_type: str | None = None
    currency: str | None = None
    listing_exchange: str | None = None
    description: str | None = None
    last_execution_time: datetime | None = None
    outside_rth: bool = False
    account: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class LiveOrders:
    """The day's orders. ``snapshot`` False means the gateway had not loaded them yet (the
    first call of a brokerage session, and every ``force=true`` call, answer an empty,
    ``snapshot: false`` list): ask again (at most once per 5 s) before trusting an empty list."""

    orders: tuple[LiveOrder, ...]
    snapshot: bool

    def by_coid(self, coid: str) -> LiveOrder | None:
        """The order placed with client order id ``coid``, or None."""
        return next((o for o in self.orders if o.coid == coid), None)

    def by_order_id(self, order_id: int) -> LiveOrder | None:
        """The order with IBKR id ``order_id``, or None."""
        return next((o for o in self.orders if o.order_id == order_id), None)


def parse_live_order(item: Any, *, endpoint: str = LIVE_ORDERS_ENDPOINT) -> LiveOrder:
    """One element of the live-orders ``orders`` array."""
    data = read_object(item, endpoint, "an order")
    status, text = order_status(data.get("status"))
    filled = read_float(data.get("filledQuantity"), endpoint, "filledQuantity") or 0.0
    remaining = read_float(data.get("remainingQuantity"), endpoint, "remainingQuantity") or 0.0
    total = read_float(data.get("totalSize"), endpoint, "totalSize")
    return LiveOrder(
        order_id=read_id(data.get("orderId"), endpoint, "orderId"),
        conid=read_id(data.get("conid"), endpoint, "conid"),
        coid=read_text(data.get("order_ref"), endpoint, "order_ref"),
        status=status,
        status_text=text,
        side=read_side(data.get("side"), endpoint),
        order_type=read_text(data.get("origOrderType") or data.get("orderType"), endpoint, "type"),
        time_in_force=read_text(data.get("timeInForce"), endpoint, "timeInForce"),
        total_size=total if total is not None else filled + remaining,
        filled_quantity=filled,
        remaining_quantity=remaining,
        price=read_float(data.get("price"), endpoint, "price"),
        avg_price=read_float(data.get("avgPrice"), endpoint, "avgPrice"),
        symbol=read_text(data.get("ticker"), endpoint, "ticker"),
        sec_type=read_text(data.get("secType"), endpoint, "secType"),
        currency=read_text(data.get("cashCcy"), endpoint, "cashCcy"),
        listing_exchange=read_text(data.get("listingExchange"), endpoint, "listingExchange"),
        description=read_text(data.get("orderDesc"), endpoint, "orderDesc"),
        last_execution_time=read_epoch_ms(
            data.get("lastExecutionTime_r"), endpoint, "lastExecutionTime_r"
        ),
        outside_rth=read_bool(data.get("outsideRTH"), endpoint, "outsideRTH"),
        account=read_text(data.get("acct") or data.get("account"), endpoint, "acct"),
    )


def parse_live_orders(body: Any, *, endpoint: str = LIVE_ORDERS_ENDPOINT) -> LiveOrders:
    """``GET /iserver/account/orders``: ``{"orders": [...], "snapshot": bool}``."""
    data = read_object(body, endpoint)
    raw = data.get("orders")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise malformed(endpoint, f"orders as a {type(raw).__name__}, expected a list")
    orders = tuple(parse_live_order(item, endpoint=endpoint) for item in raw)
    return LiveOrders(orders, read_bool(data.get("snapshot"), endpoint, "snapshot"))


# -- order status ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderStatusReport:
    """``GET /iserver/account/order/status/{orderId}``.

    ``remaining_quantity`` is IBKR's ``size`` (unfilled), ``filled_quantity`` its
    ``cum_fill``; ``order_type`` is ``LIMIT``/``MARKET``/...; ``time_in_force`` ``DAY``,
    ``GTC``...; ``order_time`` UTC. ``editable``/``cancellable`` are IBKR's
    ``order_not_editable``/``cannot_cancel_order`` inverted.
    """

    order_id: int
    conid: int
    status: OrderStatus
    status_text: str
    side: str
    symbol: str | None = None
    order_type: str | None = None
    time_in_force: str | None = None
    total_size: float | None = None
    filled_quantity: float = 0.0
    remaining_quantity: float | None = None
    avg_price: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    order_time: datetime | None = None
    editable: bool = False
    cancellable: bool = False
    oca_group_id: str | None = None
    child_order_type: str | None = None
    description: str | None = None
    account: str | None = field(default=None, repr=False)


def parse_order_status(body: Any, *, endpoint: str = STATUS_ENDPOINT) -> OrderStatusReport:
    """The order-status object (snake_case keys; ``order_id`` an int)."""
    data = read_object(body, endpoint)
    status, text = order_status(data.get("order_status"))
    return OrderStatusReport(
        order_id=read_id(data.get("order_id"), endpoint, "order_id"),
        conid=read_id(data.get("conid"), endpoint, "conid"),
        status=status,
        status_text=text,
        side=read_side(data.get("side"), endpoint),
        symbol=read_text(data.get("symbol"), endpoint, "symbol"),
        order_type=read_text(data.get("order_type"), endpoint, "order_type"),
        time_in_force=read_text(data.get("tif"), endpoint, "tif"),
        total_size=read_float(data.get("total_size"), endpoint, "total_size"),
        filled_quantity=read_float(data.get("cum_fill"), endpoint, "cum_fill") or 0.0,
        remaining_quantity=read_float(data.get("size"), endpoint, "size"),
        avg_price=read_float(data.get("average_price"), endpoint, "average_price"),
        limit_price=read_float(data.get("limit_price"), endpoint, "limit_price"),
        stop_price=read_float(data.get("stop_price"), endpoint, "stop_price"),
        order_time=read_short_time(data.get("order_time"), endpoint, "order_time"),
        editable=not read_bool(data.get("order_not_editable"), endpoint, "order_not_editable"),
        cancellable=not read_bool(data.get("cannot_cancel_order"), endpoint, "cannot_cancel_order"),
        oca_group_id=read_text(data.get("oca_group_id"), endpoint, "oca_group_id"),
        child_order_type=read_text(data.get("child_order_type"), endpoint, "child_order_type"),
        description=read_text(data.get("order_description"), endpoint, "order_description"),
        account=read_text(data.get("account"), endpoint, "account"),
    )


# -- executions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    """One fill of ``GET /iserver/account/trades`` (or a ``str`` message).

    ``execution_id`` identifies it (apply each once); ``coid`` is the order's ``cOID``
    (IBKR's ``order_ref``). ``size`` shares, ``price`` and ``commission`` in the contract's
    currency (IBKR sends both as text), ``net_amount`` = size x price. ``time`` is
    ``trade_time_r`` (UTC).
    """

    execution_id: str
    coid: str | None
    conid: int
    side: str
    size: float
    price: float
    time: datetime
    commission: float | None = None
    net_amount: float | None = None
    symbol: str | None = None
    exchange: str | None = None
    sec_type: str | None = None
    description: str | None = None
    account: str | None = field(default=None, repr=False)


def _execution(item: Any, endpoint: str) -> Execution:
    data = read_object(item, endpoint, "an execution")
    execution_id = read_text(data.get("execution_id"), endpoint, "execution_id")
    if execution_id is None:
        raise malformed(endpoint, "an execution without execution_id")
    size = read_float(data.get("size"), endpoint, "size")
    price = read_float(data.get("price"), endpoint, "price")
    when = read_epoch_ms(data.get("trade_time_r"), endpoint, "trade_time_r") or read_short_time(
        data.get("trade_time"), endpoint, "trade_time"
    )
    if size is None or price is None or when is None:
        raise malformed(endpoint, "an execution without size, price or trade time")
    return Execution(
        execution_id=execution_id,
        coid=read_text(data.get("order_ref"), endpoint, "order_ref"),
        conid=read_id(data.get("conid"), endpoint, "conid"),
        side=read_side(data.get("side"), endpoint),
        size=size,
        price=price,
        time=when,
        commission=read_float(data.get("commission"), endpoint, "commission"),
        net_amount=read_float(data.get("net_amount"), endpoint, "net_amount"),
        symbol=read_text(data.get("symbol"), endpoint, "symbol"),
        exchange=read_text(data.get("exchange"), endpoint, "exchange"),
        sec_type=read_text(data.get("sec_type"), endpoint, "sec_type"),
        description=read_text(data.get("order_description"), endpoint, "order_description"),
        account=read_text(data.get("account") or data.get("accountCode"), endpoint, "account"),
    )


def parse_executions(body: Any, *, endpoint: str = TRADES_ENDPOINT) -> list[Execution]:
    """``GET /iserver/account/trades``: a list of executions, oldest first as IBKR sends."""
    if not isinstance(body, list):
        raise malformed(endpoint, f"a {type(body).__name__}, expected a list of executions")
    return [_execution(item, endpoint) for item in body]
