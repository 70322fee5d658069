"""Order tickets: what ``POST /iserver/account/{accountId}/orders`` and modify send. Pure.

:class:`OrderTicket` checks a ticket when it is built (nothing is sent with a bad one) and
writes IBKR's wire keys (reference/orders/ibkr-cp-orders.md §2.1): ``conid``, ``side``,
``quantity``, ``orderType``, ``tif``, ``price``, ``auxPrice``, ``trailingAmt``/``trailingType``,
``cOID``, ``parentId``, ``isSingleGroup``, ``outsideRTH``, ``listingExchange``,
``goodTillDate``. Which price goes where (IBKR's rules):

============  ====================================  ========================================
orderType     ``price``                             ``auxPrice``
============  ====================================  ========================================
MKT, MOC      none                                  none
LMT           the limit (required)                  none
STP           the stop (required)                   none
STOP_LIMIT    the limit (required)                  the stop (required)
TRAIL         the initial stop (optional)           none; ``trailing_amt``/``trailing_type``
TRAILLMT      the limit (required)                  the initial stop (required); trailing too
MIDPRICE      the price cap (optional)              none
============  ====================================  ========================================

``MOC`` (market on close, ``tif`` DAY) is not in IBKR's Client Portal docs, but the gateway takes
it as TWS does; ``GTD`` with ``good_till_date`` likewise follows TWS. Everything else is IBKR's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = ["ORDER_TYPES", "SIDES", "TIFS", "TRAILING_TYPES", "OrderTicket", "ticket_body"]

#: ``orderType`` values IBKR documents (plus ``MOC``, see the module docstring).
ORDER_TYPES = ("MKT", "LMT", "STP", "STOP_LIMIT", "TRAIL", "TRAILLMT", "MIDPRICE", "MOC")
#: ``tif`` values: IBKR's (``PAX`` crypto only; ``OVT``/``OND`` overnight) plus ``GTD``.
TIFS = ("DAY", "GTC", "IOC", "OPG", "PAX", "OVT", "OND", "GTD")
SIDES = ("BUY", "SELL")
#: ``trailingType``: an amount in price units, or a percentage.
TRAILING_TYPES = ("amt", "%")

_PRICE_REQUIRED = frozenset({"LMT", "STP", "STOP_LIMIT", "TRAILLMT"})
_PRICE_ALLOWED = _PRICE_REQUIRED | {"TRAIL", "MIDPRICE"}
_AUX_REQUIRED = frozenset({"STOP_LIMIT", "TRAILLMT"})
_TRAILING = frozenset({"TRAIL", "TRAILLMT"})
_GOOD_TILL = re.compile(r"\d{8}(-\d{2}:\d{2}:\d{2})?")
#: Wire keys a ticket writes itself; ``extra`` may not set them.
_OWN_KEYS = frozenset(
    {
        "conid", "side", "quantity", "orderType", "tif", "price", "auxPrice", "trailingAmt",
        "trailingType", "cOID", "parentId", "isSingleGroup", "outsideRTH", "listingExchange",
        "goodTillDate",
    }
)  # fmt: skip


def _one_of(name: str, value: object, valid: tuple[str, ...]) -> str:
    text = value.strip().upper() if isinstance(value, str) else value
    if name == "trailing_type" and isinstance(value, str):
        text = value.strip().lower()
    if text not in valid:
        raise ConfigError(f"{name} {value!r} is not supported; use one of {', '.join(valid)}")
    assert isinstance(text, str)
    return text


def _positive(name: str, value: object, *, required: bool) -> float | None:
    if value is None:
        if required:
            raise ConfigError(f"{name} is required for this order type")
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def _label(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise ConfigError(
            f"{name} must be a non-empty string without surrounding spaces, got {value!r}"
        )
    return value


def _number(value: float) -> int | float:
    """A whole number as an int on the wire (``100``, not ``100.0``)."""
    return int(value) if value.is_integer() else value


@dataclass(frozen=True)
class OrderTicket:
    """One order as IBKR's ticket; checked at construction (ConfigError names the bad value
    and the valid ones).

    Args:
        conid: the contract id (positive int).
        side: ``"BUY"`` or ``"SELL"`` (case-insensitive).
        quantity: shares or units, > 0.
        order_type: one of :data:`ORDER_TYPES`.
        tif: time in force, one of :data:`TIFS` (default ``"DAY"``).
        price, aux_price: see the table in the module docstring (price units, > 0).
        trailing_amt, trailing_type: the trail for ``TRAIL``/``TRAILLMT`` (``"amt"`` or ``"%"``).
        coid: the client order id (IBKR's ``cOID``, unique per 24 h): how a lost answer is
            looked up; IBKR echoes it as ``order_ref``.
        parent_coid: a bracket child's parent ``cOID`` (IBKR's ``parentId``).
        oca: True on every ticket of a one-cancels-all group (IBKR's ``isSingleGroup``).
        outside_rth: may execute outside regular trading hours.
        listing_exchange: the routing exchange (default: IBKR's ``SMART``).
        good_till_date: for ``tif="GTD"``: ``YYYYMMDD`` or ``YYYYMMDD-HH:MM:SS`` (UTC).
        extra: further wire keys sent as given (``manualIndicator``, ``referrer``...); may
            not repeat a key the ticket writes itself.
    """

    conid: int
    side: str
    quantity: float
    order_type: str
    tif: str = "DAY"
    price: float | None = None
    aux_price: float | None = None
    trailing_amt: float | None = None
    trailing_type: str | None = None
    coid: str | None = None
    parent_coid: str | None = None
    oca: bool = False
    outside_rth: bool = False
    listing_exchange: str | None = None
    good_till_date: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.conid, bool) or not isinstance(self.conid, int) or self.conid <= 0:
            raise ConfigError(f"conid must be a positive integer (e.g. 265598), got {self.conid!r}")
        set_ = object.__setattr__
        set_(self, "side", _one_of("side", self.side, SIDES))
        set_(self, "order_type", _one_of("order_type", self.order_type, ORDER_TYPES))
        set_(self, "tif", _one_of("tif", self.tif, TIFS))
        set_(self, "quantity", _positive("quantity", self.quantity, required=True))
        kind = self.order_type
        price = _positive("price", self.price, required=kind in _PRICE_REQUIRED)
        if price is not None and kind not in _PRICE_ALLOWED:
            raise ConfigError(f"{kind} orders take no price; leave price=None")
        aux = _positive("aux_price", self.aux_price, required=kind in _AUX_REQUIRED)
        if aux is not None and kind not in _AUX_REQUIRED:
            raise ConfigError(
                f"{kind} orders take no aux_price (only {', '.join(sorted(_AUX_REQUIRED))} do)"
            )
        set_(self, "price", price)
        set_(self, "aux_price", aux)
        self._check_trailing(kind)
        self._check_labels()
        if kind == "MOC" and self.tif != "DAY":
            raise ConfigError(f"MOC orders need tif='DAY', got tif={self.tif!r}")
        if (self.tif == "GTD") != (self.good_till_date is not None):
            raise ConfigError("good_till_date goes with tif='GTD' (and tif='GTD' needs it)")
        if self.good_till_date is not None and not (
            isinstance(self.good_till_date, str) and _GOOD_TILL.fullmatch(self.good_till_date)
        ):
            raise ConfigError(
                f"good_till_date {self.good_till_date!r} is not valid; use YYYYMMDD or "
                "YYYYMMDD-HH:MM:SS (UTC)"
            )
        if not isinstance(self.extra, Mapping):
            raise ConfigError(f"extra must be a mapping of wire keys, got {self.extra!r}")
        clash = sorted(set(self.extra) & _OWN_KEYS)
        if clash:
            raise ConfigError(f"extra repeats keys the ticket writes itself: {clash}")
        set_(self, "extra", dict(self.extra))

    def _check_trailing(self, kind: str) -> None:
        trailing = kind in _TRAILING
        if not trailing and (self.trailing_amt is not None or self.trailing_type is not None):
            raise ConfigError(f"{kind} orders take no trailing_amt/trailing_type")
        if trailing:
            amount = _positive("trailing_amt", self.trailing_amt, required=True)
            kind_of_trail = _one_of("trailing_type", self.trailing_type, TRAILING_TYPES)
            if kind_of_trail == "%" and amount is not None and amount >= 100:
                raise ConfigError(f"trailing_amt {amount:g}% must be below 100%")
            object.__setattr__(self, "trailing_amt", amount)
            object.__setattr__(self, "trailing_type", kind_of_trail)

    def _check_labels(self) -> None:
        for name in ("coid", "parent_coid", "listing_exchange"):
            _label(name, getattr(self, name))
        for name in ("oca", "outside_rth"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def to_wire(self) -> dict[str, Any]:
        """The ticket as IBKR's JSON object (only the keys that are set)."""
        body: dict[str, Any] = {
            "conid": self.conid,
            "side": self.side,
            "quantity": _number(self.quantity),
            "orderType": self.order_type,
            "tif": self.tif,
        }
        optional: dict[str, Any] = {
            "price": self.price,
            "auxPrice": self.aux_price,
            "trailingAmt": self.trailing_amt,
            "trailingType": self.trailing_type,
            "cOID": self.coid,
            "parentId": self.parent_coid,
            "listingExchange": self.listing_exchange,
            "goodTillDate": self.good_till_date,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        if self.oca:
            body["isSingleGroup"] = True
        if self.outside_rth:
            body["outsideRTH"] = True
        body.update(self.extra)
        return body


_REQUIRED_KEYS = ("conid", "orderType", "side", "quantity", "tif")


def ticket_body(ticket: OrderTicket | Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object for ``ticket``: :meth:`OrderTicket.to_wire`, or a mapping of wire keys
    checked for the keys IBKR requires (``conid``, ``orderType``, ``side``, ``quantity``,
    ``tif``) and passed through as given."""
    if isinstance(ticket, OrderTicket):
        return ticket.to_wire()
    if not isinstance(ticket, Mapping):
        raise ConfigError(
            f"an order ticket must be an OrderTicket or a mapping of IBKR's wire keys, got "
            f"{type(ticket).__name__}"
        )
    missing = [key for key in _REQUIRED_KEYS if ticket.get(key) is None]
    if missing:
        raise ConfigError(
            f"order ticket lacks {', '.join(missing)}; IBKR requires "
            f"{', '.join(_REQUIRED_KEYS)} (or build an OrderTicket)"
        )
    return dict(ticket)
