"""Order tickets: the JSON objects of ``POST /iserver/account/{id}/orders``, parsed and checked.

Wire keys and meanings are IBKR's (reference/orders/ibkr-cp-orders.md §2.1). Prices become
integer cents; a price that is not a whole cent is refused as IBKR refuses prices off the tick
("does not conform to the minimum price variation"). Quantities are whole shares.

Order types: ``MKT``, ``LMT``, ``STP`` (``price`` = stop), ``STOP_LIMIT`` (``price`` = limit,
``auxPrice`` = stop), ``TRAIL`` (``trailingAmt`` + ``trailingType`` ``"amt"``/``"%"``, optional
``price`` = initial stop), ``TRAILLMT`` (as TRAIL, ``auxPrice`` = initial stop, ``price`` = the
limit, which then keeps its offset to the trailing stop), ``MOC`` (market on close; IBKR's
CP docs list no closing type, but clients send ``MOC`` with ``tif: DAY`` and the gateway takes
it). Time in force: ``DAY``, ``GTC``, ``IOC``, ``OPG`` (at the next regular open) and ``GTD``
with ``goodTillDate`` ``YYYYMMDD`` (that day's session end) or ``YYYYMMDD-HH:MM:SS`` (UTC) —
GTD is not in IBKR's CP docs; the key follows TWS and third-party CP clients.

Errors carry the HTTP status IBKR uses: 400 for a body that is not an ``orders`` array of
objects or a missing/mistyped key, 500 for an unknown ``orderType`` (IBKR answers
``"LIMIT"`` with 500, Voyz/ibind#108), and 200 ``{"error": ...}`` for orders IBKR reads but
refuses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ..calendar import UTC

__all__ = [
    "ORDER_TYPES",
    "STOP_TYPES",
    "TIFS",
    "Ticket",
    "TicketError",
    "modified_ticket",
    "parse_orders_body",
    "parse_ticket",
]

ORDER_TYPES = ("MKT", "LMT", "STP", "STOP_LIMIT", "TRAIL", "TRAILLMT", "MOC")
STOP_TYPES = frozenset({"STP", "STOP_LIMIT", "TRAIL", "TRAILLMT"})
TIFS = ("DAY", "GTC", "IOC", "OPG", "GTD")
_NEEDS_PRICE = frozenset({"LMT", "STP", "STOP_LIMIT", "TRAILLMT"})
_NEEDS_AUX = frozenset({"STOP_LIMIT", "TRAILLMT"})
_TRAILING = frozenset({"TRAIL", "TRAILLMT"})
_OFF_TICK = "The price does not conform to the minimum price variation for this contract."


class TicketError(ValueError):
    """A ticket IBKR would refuse: ``message`` answered with HTTP ``status``."""

    def __init__(self, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Ticket:
    """One parsed order ticket (prices in cents; ``None`` = not given).

    ``price`` is the limit price (LMT, STOP_LIMIT, TRAILLMT) or the stop price (STP, and the
    initial stop of TRAIL); ``aux_price`` the stop of STOP_LIMIT / TRAILLMT. ``trailing_amt``
    is cents for ``trailing_type == "amt"`` and percent for ``"%"``. ``good_till`` is a date
    (expires at that day's session end) or a UTC datetime. ``raw`` is the ticket as sent.
    """

    conid: int
    side: str
    quantity: int
    order_type: str
    tif: str
    price: int | None = None
    aux_price: int | None = None
    trailing_amt: float | None = None
    trailing_type: str | None = None
    outside_rth: bool = False
    coid: str | None = None
    parent_coid: str | None = None
    single_group: bool = False
    acct_id: str | None = None
    good_till: date | datetime | None = None
    deactivated: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _number(raw: Mapping[str, Any], key: str, required: bool = False) -> float | None:
    value = raw.get(key)
    if value is None:
        if required:
            raise TicketError(f"{key} is required in every order ticket", 400)
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TicketError(f"{key} must be a number, got {value!r}", 400)
    return float(value)


def _text(raw: Mapping[str, Any], key: str, required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            raise TicketError(f"{key} is required in every order ticket", 400)
        return None
    if not isinstance(value, str) or not value.strip():
        raise TicketError(f"{key} must be a non-empty string, got {value!r}", 400)
    return value.strip()


def _flag(raw: Mapping[str, Any], *keys: str) -> bool:
    for key in keys:
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, bool):
            raise TicketError(f"{key} must be true or false, got {value!r}", 400)
        return value
    return False


def _cents(raw: Mapping[str, Any], key: str) -> int | None:
    value = _number(raw, key)
    if value is None:
        return None
    cents = round(value * 100)
    if cents <= 0:
        raise TicketError(f"{key} must be > 0, got {value!r}")
    if abs(value * 100 - cents) > 1e-6:
        raise TicketError(_OFF_TICK)
    return cents


def _conid(raw: Mapping[str, Any]) -> int:
    if raw.get("conid") is None and isinstance(raw.get("conidex"), str):
        head = raw["conidex"].split("@")[0].strip()
        if head.isdigit():
            return int(head)
    value = _number(raw, "conid", required=True)
    assert value is not None
    if value != int(value) or value <= 0:
        raise TicketError(f"conid must be a positive integer, got {raw.get('conid')!r}", 400)
    return int(value)


def _good_till(raw: Mapping[str, Any]) -> date | datetime:
    text = _text(raw, "goodTillDate")
    if text is None:
        raise TicketError("tif GTD needs goodTillDate: YYYYMMDD or YYYYMMDD-HH:MM:SS (UTC)")
    for pattern in ("%Y%m%d-%H:%M:%S", "%Y%m%d"):
        try:
            parsed = datetime.strptime(text, pattern)
        except ValueError:
            continue
        return parsed.replace(tzinfo=UTC) if "-" in text else parsed.date()
    raise TicketError(f"goodTillDate {text!r} is not valid; use YYYYMMDD or YYYYMMDD-HH:MM:SS")


def parse_ticket(raw: Any) -> Ticket:
    """Parse and check one ticket object; :class:`TicketError` when IBKR would refuse it."""
    if not isinstance(raw, Mapping):
        raise TicketError(f"every order ticket must be a JSON object, got {raw!r}", 400)
    conid = _conid(raw)
    order_type = _text(raw, "orderType", required=True)
    assert order_type is not None
    if order_type not in ORDER_TYPES:
        valid = ", ".join(ORDER_TYPES)
        raise TicketError(f"orderType {order_type!r} is not supported; use one of {valid}", 500)
    side = (_text(raw, "side", required=True) or "").upper()
    if side not in ("BUY", "SELL"):
        raise TicketError(f"side must be BUY or SELL, got {raw.get('side')!r}", 400)
    quantity = _number(raw, "quantity", required=True)
    assert quantity is not None
    if quantity <= 0 or quantity != int(quantity):
        raise TicketError(f"quantity must be a whole number of shares > 0, got {quantity:g}")
    tif = (_text(raw, "tif", required=True) or "").upper()
    if tif not in TIFS:
        raise TicketError(f"tif {raw.get('tif')!r} is not supported; use one of {', '.join(TIFS)}")
    price = _cents(raw, "price")
    aux = _cents(raw, "auxPrice")
    if order_type in _NEEDS_PRICE and price is None:
        raise TicketError(f"{order_type} orders need price", 400)
    if order_type in _NEEDS_AUX and aux is None:
        raise TicketError(f"{order_type} orders need both price and auxPrice", 400)
    trailing_amt = trailing_type = None
    if order_type in _TRAILING:
        trailing_amt = _number(raw, "trailingAmt")
        trailing_type = _text(raw, "trailingType")
        if trailing_amt is None or trailing_type not in ("amt", "%"):
            raise TicketError(f"{order_type} orders need trailingAmt and trailingType amt or %")
        if trailing_amt <= 0 or (trailing_type == "%" and trailing_amt >= 100):
            raise TicketError(f"trailingAmt {trailing_amt:g} is out of range")
        if trailing_type == "amt":
            trailing_amt = float(round(trailing_amt * 100))
    if order_type == "MOC" and tif != "DAY":
        raise TicketError("Invalid time-in-force for at-the-closing order.")
    if tif == "OPG" and order_type not in ("MKT", "LMT"):
        raise TicketError("tif OPG is only valid for MKT and LMT orders (at the opening)")
    return Ticket(
        conid=conid,
        side=side,
        quantity=int(quantity),
        order_type=order_type,
        tif=tif,
        price=price if order_type not in ("MKT", "MOC") else None,
        aux_price=aux if order_type in _NEEDS_AUX else None,
        trailing_amt=trailing_amt,
        trailing_type=trailing_type,
        outside_rth=_flag(raw, "outsideRTH", "outsideRth"),
        coid=_text(raw, "cOID"),
        parent_coid=_text(raw, "parentId"),
        single_group=_flag(raw, "isSingleGroup"),
        acct_id=_text(raw, "acctId"),
        good_till=_good_till(raw) if tif == "GTD" else None,
        deactivated=_flag(raw, "deactivated"),
        raw=dict(raw),
    )


def parse_orders_body(body: Any) -> list[Ticket]:
    """The tickets of a place-order body: ``{"orders": [...]}`` (or the bare array that IBKR's
    2.13 spec documents); :class:`TicketError` for the first bad one."""
    orders = body.get("orders") if isinstance(body, Mapping) else body
    if not isinstance(orders, list) or not orders:
        raise TicketError('the body must be {"orders": [{...order ticket...}, ...]}', 400)
    return [parse_ticket(raw) for raw in orders]


def modified_ticket(original: Ticket, raw: Any) -> Ticket:
    """The ticket a modify request (one unwrapped ticket object) asks for.

    Keys left out keep their original values (IBKR wants every key sent again; the simulator
    is lenient); ``conid`` and ``side`` cannot change, and bracket/OCA keys are ignored.
    """
    if not isinstance(raw, Mapping):
        raise TicketError("the modify body must be one order ticket object", 400)
    merged = {**original.raw, **raw}
    for key in ("cOID", "parentId", "isSingleGroup"):
        merged.pop(key, None)
        if key in original.raw:
            merged[key] = original.raw[key]
    ticket = parse_ticket(merged)
    if ticket.conid != original.conid:
        raise TicketError(f"conid cannot be modified ({original.conid} -> {ticket.conid})")
    if ticket.side != original.side:
        raise TicketError(f"side cannot be modified ({original.side} -> {ticket.side})")
    return ticket
