"""JSON bodies of the order endpoints, shaped like IBKR's samples (reference/orders/samples/).

The id types drift by endpoint as at IBKR: ``order_id`` is a string in place/modify/reply
answers, ``orderId`` an int in live orders, ``order_id`` an int in order status and cancel
answers; ``conid`` is an int everywhere here. Quantities are floats (``100.0``), prices strings
(``"457.00"``). Times: ``lastExecutionTime`` / ``order_time`` are UTC ``YYMMDDhhmmss``,
``trade_time`` UTC ``YYYYMMDD-hh:mm:ss``, ``*_r`` epoch milliseconds.

Known from real bodies: ``origOrderType``/``orderType`` ``MARKET``/``Market`` and
``LIMIT``/``Limit``, ``timeInForce`` ``"CLOSE"`` for DAY orders in live orders (``"DAY"`` in
order status), ``order_ccp_status`` ``"0"`` (PreSubmitted) and ``"2"`` (Filled) in order status.
The simulator's own choices where no sample exists: the words for stop, trailing and MOC types,
the other numeric ``order_ccp_status`` codes, colours of statuses other than PreSubmitted,
Submitted and Filled, and ``child_order_type`` ``"A"`` (attached, IBKR's spec) for bracket
children.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..instruments import SimInstrument
from .money import money_text, price_text
from .state import FILLED, OrderState, SimExecution

__all__ = [
    "exchange_of",
    "listing_of",
    "live_order",
    "order_status",
    "submitted",
    "trade",
]

_TYPE_WORDS = {
    "MKT": ("MARKET", "Market"),
    "LMT": ("LIMIT", "Limit"),
    "STP": ("STOP", "Stop"),
    "STOP_LIMIT": ("STOP_LIMIT", "Stop Limit"),
    "TRAIL": ("TRAIL", "Trail"),
    "TRAILLMT": ("TRAILLMT", "Trail Limit"),
    "MOC": ("MOC", "Market On Close"),
}
_TIF_WORDS = {"DAY": "Day", "GTC": "GTC", "IOC": "IOC", "OPG": "OPG", "GTD": "GTD"}
#: (bgColor, fgColor): PreSubmitted, Submitted and Filled as in IBKR's samples.
_COLOURS = {
    "PreSubmitted": ("#FFFFFF", "#0000CC"),
    "Submitted": ("#000000", "#00F000"),
    "Filled": ("#FFFFFF", "#000000"),
    "PendingCancel": ("#FFFFFF", "#3399CC"),
    "Cancelled": ("#FFFFFF", "#AA0000"),
    "Inactive": ("#FFFFFF", "#999999"),
}
_CCP_CODES = {
    "PreSubmitted": "0",
    "Submitted": "1",
    "Filled": "2",
    "PendingCancel": "3",
    "Cancelled": "4",
    "Inactive": "5",
}
_STATUS_WORDS = {
    "PreSubmitted": "Order Submitted",
    "Submitted": "Order Submitted",
    "Filled": "Order Filled",
    "PendingCancel": "Order Cancel Pending",
    "Cancelled": "Order Cancelled",
    "Inactive": "Order Inactive",
}


def listing_of(inst: SimInstrument) -> str:
    """IBKR's listing exchange text (``NASDAQ`` listings are ``NASDAQ.NMS``)."""
    return "NASDAQ.NMS" if inst.exchange == "NASDAQ" else inst.exchange


def exchange_of(inst: SimInstrument) -> str:
    """The venue an execution is reported on (``ISLAND`` for NASDAQ listings)."""
    return "ISLAND" if inst.exchange == "NASDAQ" else inst.exchange


def _short_time(when: datetime) -> str:
    return when.strftime("%y%m%d%H%M%S")


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _quantity(value: int) -> str:
    return str(value)


def _shown_price(st: OrderState) -> int | None:
    """The price an order description shows: the limit, else the stop (STP)."""
    ticket = st.ticket
    if ticket.order_type in ("LMT", "STOP_LIMIT", "TRAILLMT", "STP"):
        return ticket.price
    return None


def description(st: OrderState, with_symbol: bool = False) -> str:
    """``"Buy 1 Limit 457.00, GTC"``; ``"Bought 100 Market, Day"`` once filled."""
    ticket = st.ticket
    filled = st.status == FILLED
    verb = {"BUY": ("Buy", "Bought"), "SELL": ("Sell", "Sold")}[ticket.side][filled]
    words = [verb, _quantity(ticket.quantity)]
    if with_symbol:
        words.append(st.instrument.symbol)
    words.append(_TYPE_WORDS[ticket.order_type][1])
    shown = _shown_price(st)
    if shown is not None:
        words.append(price_text(shown))
    return " ".join(words) + f", {_TIF_WORDS[ticket.tif]}"


def size_and_fills(st: OrderState) -> str:
    """``"0/1"`` (filled/remaining), ``"100"`` once complete."""
    total = st.ticket.quantity
    if st.filled >= total:
        return _quantity(total)
    return f"{_quantity(st.filled)}/{_quantity(total - st.filled)}"


def _changed_at(st: OrderState) -> datetime:
    return st.last_fill_at or st.updated_at or st.placed_at


def live_order(st: OrderState, account: str) -> dict[str, Any]:
    """One element of ``GET /iserver/account/orders`` (and of a ``sor`` message)."""
    ticket, inst = st.ticket, st.instrument
    orig, word = _TYPE_WORDS[ticket.order_type]
    background, foreground = _COLOURS.get(st.status, ("#FFFFFF", "#000000"))
    changed = _changed_at(st)
    body: dict[str, Any] = {
        "acct": account,
        "conidex": str(inst.conid),
        "conid": inst.conid,
        "account": account,
        "orderId": st.order_id,
        "cashCcy": inst.currency,
        "sizeAndFills": size_and_fills(st),
        "orderDesc": description(st),
        "description1": inst.symbol,
        "ticker": inst.symbol,
        "secType": inst.sec_type,
        "listingExchange": listing_of(inst),
        "remainingQuantity": float(st.remaining),
        "filledQuantity": float(st.filled),
        "totalSize": float(ticket.quantity),
        "companyName": inst.name,
        "status": st.status,
        "order_ccp_status": st.status if st.final or st.status == "Inactive" else "Submitted",
        "origOrderType": orig,
        "supportsTaxOpt": "1",
        "lastExecutionTime": _short_time(changed),
        "orderType": word,
        "bgColor": background,
        "fgColor": foreground,
        "timeInForce": "CLOSE" if ticket.tif == "DAY" else ticket.tif,
        "lastExecutionTime_r": _ms(changed),
        "side": ticket.side,
        "outsideRTH": ticket.outside_rth,
        "isEventTrading": "0",
    }
    avg = st.avg_price
    if avg is not None:
        body["avgPrice"] = money_text(avg)
    if ticket.coid is not None:
        body["order_ref"] = ticket.coid
    shown = _shown_price(st)
    if shown is not None:
        body["price"] = price_text(shown)
    return body


def order_status(st: OrderState, account: str, request_id: int) -> dict[str, Any]:
    """``GET /iserver/account/order/status/{orderId}``."""
    ticket, inst = st.ticket, st.instrument
    background, foreground = _COLOURS.get(st.status, ("#FFFFFF", "#000000"))
    editable = not st.final and st.status != "PendingCancel"
    body: dict[str, Any] = {
        "sub_type": None,
        "request_id": str(request_id),
        "server_id": "0",
        "order_id": st.order_id,
        "conidex": str(inst.conid),
        "conid": inst.conid,
        "symbol": inst.symbol,
        "side": ticket.side[0],
        "contract_description_1": inst.symbol,
        "listing_exchange": listing_of(inst),
        "option_acct": "c",
        "company_name": inst.name,
        "size": f"{float(st.remaining)}",
        "total_size": f"{float(ticket.quantity)}",
        "currency": inst.currency,
        "account": account,
        "order_type": _TYPE_WORDS[ticket.order_type][0],
        "cum_fill": f"{float(st.filled)}",
        "order_status": st.status,
        "order_ccp_status": _CCP_CODES.get(st.status, "0"),
        "order_status_description": _STATUS_WORDS.get(st.status, "Order Submitted"),
        "tif": ticket.tif,
        "fg_color": foreground,
        "bg_color": background,
        "order_not_editable": not editable,
        "editable_fields": "\u001e" if editable else "",
        "cannot_cancel_order": st.final,
        "deactivate_order": st.status == "Inactive",
        "sec_type": inst.sec_type,
        "available_chart_periods": "#R|1",
        "order_description": description(st),
        "order_description_with_contract": description(st, with_symbol=True),
        "alert_active": 1,
        "child_order_type": "A" if st.parent_id is not None else "3",
        "order_clearing_account": account,
        "size_and_fills": size_and_fills(st),
        "exit_strategy_display_price": price_text(_shown_price(st) or 0),
        "exit_strategy_chart_description": description(st),
        "exit_strategy_tool_availability": "1",
        "allowed_duplicate_opposite": True,
        "order_time": _short_time(st.placed_at),
        "outside_rth": ticket.outside_rth,
        "all_or_none": False,
        "use_price_mgmt_algo": False,
        "clearing_id": "IB",
        "clearing_name": "IB",
    }
    avg = st.avg_price
    if avg is not None:
        body["average_price"] = money_text(avg)
    if ticket.order_type in ("LMT", "STOP_LIMIT", "TRAILLMT") and ticket.price is not None:
        body["limit_price"] = price_text(ticket.price)
    stop = ticket.price if ticket.order_type == "STP" else ticket.aux_price
    if stop is not None:
        body["stop_price"] = price_text(stop)
    if st.oca_group is not None:
        body["oca_group_id"] = st.oca_group
    return body


def submitted(order_id: int, status: str, coid: str | None) -> dict[str, Any]:
    """One element of a place/modify/reply answer (``order_id`` is a string here)."""
    body: dict[str, Any] = {"order_id": str(order_id)}
    if coid is not None:
        body["local_order_id"] = coid
    body.update({"order_status": status, "encrypt_message": "1"})
    return body


def trade(
    execution: SimExecution, inst: SimInstrument, account: str, submitter: str
) -> dict[str, Any]:
    """One element of ``GET /iserver/account/trades`` (and of a ``str`` message)."""
    price = f"{execution.price:.2f}"
    verb = "Bot" if execution.side == "BUY" else "Sold"
    body: dict[str, Any] = {
        "execution_id": execution.execution_id,
        "symbol": inst.symbol,
        "supports_tax_opt": "1",
        "side": execution.side[0],
        "order_description": f"{verb} {execution.quantity} @ {price} on {exchange_of(inst)}",
        "trade_time": execution.time.strftime("%Y%m%d-%H:%M:%S"),
        "trade_time_r": _ms(execution.time),
        "size": float(execution.quantity),
        "price": price,
        "submitter": submitter,
        "exchange": exchange_of(inst),
        "commission": f"{execution.commission:.2f}",
        "net_amount": round(execution.quantity * execution.price, 2),
        "account": account,
        "accountCode": account,
        "account_allocation_name": account,
        "company_name": inst.name,
        "contract_description_1": inst.symbol,
        "sec_type": inst.sec_type,
        "listing_exchange": listing_of(inst),
        "conid": inst.conid,
        "conidEx": str(inst.conid),
        "clearing_id": "IB",
        "clearing_name": "IB",
        "liquidation_trade": "0",
        "is_event_trading": "0",
    }
    if execution.coid is not None:
        body["order_ref"] = execution.coid
    return body
