"""What a strategy asked for, as a plain value, and how it becomes IBKR tickets. Pure.

The backtrader layer turns each ``bt.Order`` into an :class:`OrderRequest` (backtrader's
meaning: ``price`` is the trigger of a stop, ``plimit`` the limit of a stop-limit, ``valid``
already converted by backtrader); :func:`ticket_for` maps it to IBKR's ticket or says why it
cannot be sent (a Rejected notification, never an exception in ``next()``).

Mapping (IBKR Client Portal order types, ``reference/orders/ibkr-cp-orders.md`` §2.1):

=================  ===========  ==============================================================
backtrader         IBKR         fields
=================  ===========  ==============================================================
Market             MKT          -
Close              MOC          tif DAY (IBKR's market-on-close)
Limit              LMT          price = limit
Stop               STP          price = stop trigger
StopLimit          STOP_LIMIT   auxPrice = trigger (``price``), price = limit (``plimit``)
StopTrail          TRAIL        trailingAmt/Type (amount, or percent x 100); price = the
                                initial stop
StopTrailLimit     TRAILLMT     trailingAmt/Type; auxPrice = the initial stop, price = the
                                initial limit
=================  ===========  ==============================================================

For the trailing types ``price``/``plimit`` are backtrader's adjusted initial stop and limit
(``order.created.price``/``pricelimit`` after its ``trailadjust``).

Time in force from ``valid`` (after backtrader's own conversion): None -> GTC, 0 -> DAY,
``Order.DAY`` (a float date at 23:59:59.9999 of the order's day) -> DAY, any other date ->
GTD at that instant (UTC), ``"IOC"`` (an order kwarg ``tif="IOC"``) -> IOC.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigError
from ..models.tickets import OrderTicket

__all__ = ["ExecType", "OrderRequest", "Tif", "Unsupported", "ticket_for"]


class ExecType(enum.Enum):
    """backtrader's execution types (``bt.Order.Market`` ... ``StopTrailLimit``)."""

    MARKET = "Market"
    CLOSE = "Close"
    LIMIT = "Limit"
    STOP = "Stop"
    STOP_LIMIT = "StopLimit"
    STOP_TRAIL = "StopTrail"
    STOP_TRAIL_LIMIT = "StopTrailLimit"
    HISTORICAL = "Historical"


class Tif(enum.Enum):
    DAY = "DAY"
    GTC = "GTC"
    GTD = "GTD"
    IOC = "IOC"


@dataclass(frozen=True)
class Unsupported:
    """The request cannot be sent to IBKR: ``reason`` says why and what to do instead."""

    reason: str


@dataclass(frozen=True)
class OrderRequest:
    """One order as the strategy asked for it.

    Args:
        ref: backtrader's ``order.ref`` (unique in the process).
        conid: the contract.
        buy: True to buy, False to sell.
        size: shares, > 0 (backtrader's sign is in ``buy``).
        exectype: the execution type.
        price, plimit: backtrader's ``price`` and ``pricelimit`` (None when not given).
        trailamount, trailpercent: the trail (percent as backtrader's fraction, 0.02 = 2%).
        tif: the time in force; ``good_till`` its instant for GTD (aware UTC).
        outside_rth: may execute outside regular hours.
        parent_ref: the bracket parent's ref (children only).
        oca_ref: the ref of the first order of its OCO group (every member, the first
            included).
        tick: the contract's price increment; prices (backtrader computes trailing stops
            and limits with many decimals) are rounded to it, as IBKR refuses others.
    """

    ref: int
    conid: int
    buy: bool
    size: float
    exectype: ExecType
    price: float | None = None
    plimit: float | None = None
    trailamount: float | None = None
    trailpercent: float | None = None
    tif: Tif = Tif.GTC
    good_till: datetime | None = None
    outside_rth: bool = False
    parent_ref: int | None = None
    oca_ref: int | None = None
    tick: float = 0.01
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def side(self) -> str:
        return "BUY" if self.buy else "SELL"


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def _trail(request: OrderRequest) -> tuple[float, str] | Unsupported:
    if _positive(request.trailamount):
        amount = _on_tick(request.trailamount, request.tick)
        assert amount is not None
        return max(amount, request.tick), "amt"
    if _positive(request.trailpercent):
        assert request.trailpercent is not None
        return request.trailpercent * 100.0, "%"
    return Unsupported(f"a {request.exectype.value} order needs trailamount or trailpercent (> 0)")


def _on_tick(value: float | None, tick: float) -> float | None:
    if value is None or not math.isfinite(value):
        return value
    return round(round(value / tick) * tick, 10)


def _kind_and_prices(request: OrderRequest) -> dict[str, Any] | Unsupported:
    """The ticket's order type and price fields, or why there are none."""
    kind = request.exectype
    price = _on_tick(request.price, request.tick)
    plimit = _on_tick(request.plimit, request.tick)
    if kind is ExecType.MARKET:
        return {"order_type": "MKT"}
    if kind is ExecType.CLOSE:
        if request.tif is not Tif.DAY:
            return Unsupported("a Close (market-on-close) order is a DAY order: pass valid=0")
        return {"order_type": "MOC"}
    if kind is ExecType.LIMIT:
        if not _positive(price):
            return Unsupported("a Limit order needs a price > 0")
        return {"order_type": "LMT", "price": price}
    if kind is ExecType.STOP:
        if not _positive(price):
            return Unsupported("a Stop order needs its trigger as price > 0")
        return {"order_type": "STP", "price": price}
    if kind is ExecType.STOP_LIMIT:
        if not (_positive(price) and _positive(plimit)):
            return Unsupported(
                "a StopLimit order needs price (the trigger) and plimit (the limit), both > 0"
            )
        return {"order_type": "STOP_LIMIT", "aux_price": price, "price": plimit}
    if kind is ExecType.STOP_TRAIL:
        trail = _trail(request)
        if isinstance(trail, Unsupported):
            return trail
        fields: dict[str, Any] = {
            "order_type": "TRAIL",
            "trailing_amt": trail[0],
            "trailing_type": trail[1],
        }
        if _positive(price):
            fields["price"] = price
        return fields
    if kind is ExecType.STOP_TRAIL_LIMIT:
        trail = _trail(request)
        if isinstance(trail, Unsupported):
            return trail
        if not (_positive(price) and _positive(plimit)):
            return Unsupported(
                "a StopTrailLimit order needs its initial stop (price) and limit (plimit), > 0"
            )
        return {
            "order_type": "TRAILLMT",
            "trailing_amt": trail[0],
            "trailing_type": trail[1],
            "aux_price": price,
            "price": plimit,
        }
    return Unsupported(
        f"{kind.value} orders cannot be sent to IBKR; use Market, Limit, Stop, StopLimit, "
        "StopTrail, StopTrailLimit or Close"
    )


def ticket_for(
    request: OrderRequest,
    *,
    coid: str | None,
    parent_coid: str | None = None,
    oca: bool = False,
) -> OrderTicket | Unsupported:
    """IBKR's ticket for ``request``, or :class:`Unsupported` saying why there is none."""
    if not _positive(request.size):
        return Unsupported(f"the order size must be > 0, got {request.size!r}")
    fields = _kind_and_prices(request)
    if isinstance(fields, Unsupported):
        return fields
    good_till = None
    if request.tif is Tif.GTD:
        if request.good_till is None:
            return Unsupported("a GTD order needs its expiry (valid=<a datetime>)")
        good_till = request.good_till.astimezone(timezone.utc).strftime("%Y%m%d-%H:%M:%S")
    if request.exectype is ExecType.MARKET and request.outside_rth:
        return Unsupported(
            "IBKR does not execute market orders outside regular trading hours; use a Limit "
            "order with outsideRth"
        )
    try:
        return OrderTicket(
            conid=request.conid,
            side=request.side,
            quantity=request.size,
            tif=request.tif.value,
            coid=coid,
            parent_coid=parent_coid,
            oca=oca,
            outside_rth=request.outside_rth,
            good_till_date=good_till,
            extra=dict(request.extra),
            **fields,
        )
    except ConfigError as exc:
        return Unsupported(str(exc))
