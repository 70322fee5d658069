"""Answers to placing, modifying, confirming and cancelling orders, as frozen objects. Pure.

Facts and sources: reference/orders/ibkr-cp-orders.md §2.3-2.4 (place/reply answers) and §3
(modify, cancel). Every answer of place, modify and reply (:func:`parse_place_answer`) is one
of IBKR's four shapes, all HTTP 200, or one of two rejections recognised by their text:

=============================================================  ===========================
body                                                           :data:`PlaceAnswer` case
=============================================================  ===========================
``[{"order_id": "1370093239", "order_status": ...}, ...]``     :class:`Accepted` (one
                                                               element per bracket leg)
``[{"id": "<uuid>", "message": [...], "messageIds": [...]}]``  :class:`Question`
``{"messageId": "p12", "prompt": true, "options": [...]}``     :class:`Prompt`
``{"error": "... Local order ID=X is already registered."}``   :class:`DuplicateOrderId`
``{"error": "reply id not found: '<uuid>'"}``                  :class:`ReplyExpired`
any other ``{"error": ...}``                                   :class:`Rejected`
=============================================================  ===========================

A :class:`DuplicateOrderId` is deliberately *not* a :class:`Rejected`: it says an order with
that ``cOID`` already exists (an earlier send whose answer was lost reached IBKR), which the
caller must look up, never treat as a refusal. A :class:`ReplyExpired` is a rejection: the
question's order was discarded. ``order_id`` (a digit string in these answers, an int in
cancel answers) is an ``int`` in every model. Texts have account ids replaced by
``<account>``; the account of a cancel answer is kept but left out of ``repr``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ..wire import ACCOUNT_ID
from .orders import OrderStatus, order_status
from .readers import malformed, read_id, read_object, read_text

__all__ = [
    "Accepted",
    "AcceptedOrder",
    "CancelAnswer",
    "CancelRequested",
    "DuplicateOrderId",
    "PlaceAnswer",
    "Prompt",
    "Question",
    "Rejected",
    "ReplyExpired",
    "classify_error",
    "parse_cancel_answer",
    "parse_place_answer",
]

PLACE_ENDPOINT = "/iserver/account/{accountId}/orders"
CANCEL_ENDPOINT = "/iserver/account/{accountId}/order/{orderId}"

_DUPLICATE = re.compile(r"local order id\s*=\s*(?P<coid>.*?)\s+is already registered", re.I)
_REPLY_GONE = re.compile(r"reply id not found(?::\s*'?(?P<id>[^'\s]*)'?)?", re.I)


@dataclass(frozen=True)
class AcceptedOrder:
    """One accepted ticket: IBKR's ``order_id``, its state when the answer was written
    (``PreSubmitted`` even for a market order in regular hours), and the ``cOID`` when the
    gateway echoes it (``local_order_id``)."""

    order_id: int
    status: OrderStatus
    status_text: str
    coid: str | None = None


@dataclass(frozen=True)
class Accepted:
    """Every ticket of the request was accepted, in ticket order (a bracket: parent first)."""

    orders: tuple[AcceptedOrder, ...]

    @property
    def order_id(self) -> int:
        """The first (parent) order's id."""
        return self.orders[0].order_id


@dataclass(frozen=True)
class Question:
    """IBKR asks before it accepts: answer with ``reply(reply_id, confirmed)``; the answer
    may be another question (chains are normal). ``message_ids`` (``"o163"``) can be
    suppressed for the session; ``messages`` are IBKR's texts."""

    reply_id: str
    messages: tuple[str, ...]
    message_ids: tuple[str, ...]
    options: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "\n".join(self.messages)


@dataclass(frozen=True)
class Prompt:
    """A server prompt (``advancedOrderReject``, e.g. ``p12`` Price Management Algo),
    answered with ``POST /iserver/notification`` and one of ``options``."""

    message_id: str
    text: str
    options: tuple[str, ...]
    order_id: int | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Rejected:
    """IBKR refused the request; nothing was placed or changed. ``text`` is IBKR's reason
    (account ids removed), ``http_status`` the status it came with (200 for account-level
    rejections)."""

    text: str
    http_status: int = 200


@dataclass(frozen=True)
class ReplyExpired(Rejected):
    """The reply id is unknown (already used, or dropped because another order or request
    came between question and reply): the question's order was discarded."""

    reply_id: str | None = None


@dataclass(frozen=True)
class DuplicateOrderId:
    """IBKR already holds an order with this ``cOID`` (unique for 24 h): an earlier send
    reached it. Look the order up by its ``cOID``; nothing new was placed."""

    coid: str | None
    text: str
    http_status: int = 200


#: What place, modify and reply answer.
PlaceAnswer: TypeAlias = Accepted | Question | Prompt | Rejected | DuplicateOrderId


def _scrubbed(text: str) -> str:
    return ACCOUNT_ID.sub("<account>", " ".join(text.split()))


def classify_error(text: str, http_status: int = 200) -> Rejected | DuplicateOrderId:
    """The answer for an order endpoint's ``{"error": text}``."""
    found = _DUPLICATE.search(text)
    if found is not None:
        coid = found.group("coid").strip().rstrip(".") or None
        return DuplicateOrderId(coid, _scrubbed(text), http_status)
    gone = _REPLY_GONE.search(text)
    if gone is not None:
        return ReplyExpired(_scrubbed(text), http_status, gone.group("id") or None)
    return Rejected(_scrubbed(text), http_status)


def _strings(value: object, endpoint: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise malformed(endpoint, f"{name} that is not a list of texts")
    return tuple(value)


def _question(item: Mapping[str, Any], endpoint: str) -> Question:
    reply_id = read_text(item.get("id"), endpoint, "id")
    if reply_id is None:
        raise malformed(endpoint, "a question without an id")
    return Question(
        reply_id=reply_id,
        messages=_strings(item.get("message"), endpoint, "message"),
        message_ids=_strings(item.get("messageIds"), endpoint, "messageIds"),
        options=_strings(item.get("messageOptions"), endpoint, "messageOptions"),
    )


def _prompt(item: Mapping[str, Any], endpoint: str) -> Prompt:
    order_id = item.get("orderId")
    return Prompt(
        message_id=read_text(item.get("messageId"), endpoint, "messageId") or "",
        text=read_text(item.get("text"), endpoint, "text") or "",
        options=_strings(item.get("options"), endpoint, "options"),
        order_id=read_id(order_id, endpoint, "orderId") if order_id is not None else None,
        request_id=read_text(item.get("reqId"), endpoint, "reqId"),
    )


def _accepted(item: Mapping[str, Any], endpoint: str) -> AcceptedOrder:
    status, text = order_status(item.get("order_status"))
    return AcceptedOrder(
        order_id=read_id(item.get("order_id"), endpoint, "order_id"),
        status=status,
        status_text=text,
        coid=read_text(item.get("local_order_id"), endpoint, "local_order_id"),
    )


def _is_question(item: Mapping[str, Any]) -> bool:
    return "id" in item and ("message" in item or "messageIds" in item)


def _is_prompt(item: Mapping[str, Any]) -> bool:
    return item.get("prompt") is True or ("messageId" in item and "options" in item)


def parse_place_answer(
    body: Any, *, endpoint: str = PLACE_ENDPOINT, http_status: int = 200
) -> PlaceAnswer:
    """The :data:`PlaceAnswer` of a place, modify or reply answer (see the module docstring).

    A list holding a question is a :class:`Question` (the first one; IBKR asks one at a time)
    whatever else it holds. A body in none of IBKR's shapes raises DataIntegrityError.
    """
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, str) and error.strip():
            return classify_error(error, http_status)
        items: list[Any] = [body]
    elif isinstance(body, list) and body:
        items = body
    else:
        raise malformed(endpoint, "an empty or non-JSON-object answer, expected IBKR's shapes")
    if not all(isinstance(item, Mapping) for item in items):
        raise malformed(endpoint, "a list with non-object elements")
    for item in items:
        error = item.get("error")
        if isinstance(error, str) and error.strip():
            return classify_error(error, http_status)
    for item in items:
        if _is_question(item):
            return _question(item, endpoint)
    for item in items:
        if _is_prompt(item):
            return _prompt(item, endpoint)
    if all("order_id" in item for item in items):
        return Accepted(tuple(_accepted(item, endpoint) for item in items))
    keys = sorted({str(k) for item in items for k in item})[:12]
    raise malformed(endpoint, f"an object with keys {keys}, none of IBKR's answer shapes")


# -- cancel ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CancelRequested:
    """IBKR took the cancel request (it may still fill meanwhile; watch the order's status).
    ``immediate``: IBKR cancelled it on the spot (it answers ``conid: -1, account: null``).
    ``message`` is IBKR's text (``"Request was submitted"``)."""

    order_id: int
    message: str
    conid: int | None = None
    immediate: bool = False
    account: str | None = field(default=None, repr=False)


#: What cancel answers.
CancelAnswer: TypeAlias = CancelRequested | Rejected | DuplicateOrderId


def parse_cancel_answer(
    body: Any, *, endpoint: str = CANCEL_ENDPOINT, http_status: int = 200
) -> CancelAnswer:
    """``DELETE /iserver/account/{id}/order/{orderId}``: ``{"msg", "order_id", "conid",
    "account"}`` (IBKR's spec example is a one-element array; accepted too), or
    ``{"error": "OrderID 1 doesn't exist"}`` -> :class:`Rejected`."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    item = read_object(body, endpoint)
    error = item.get("error")
    if isinstance(error, str) and error.strip():
        return classify_error(error, http_status)
    if "order_id" not in item:
        raise malformed(endpoint, "a cancel answer without order_id")
    conid = item.get("conid")
    conid_id = read_id(conid, endpoint, "conid") if conid is not None else None
    return CancelRequested(
        order_id=read_id(item.get("order_id"), endpoint, "order_id"),
        message=read_text(item.get("msg"), endpoint, "msg") or "",
        conid=conid_id if conid_id is not None and conid_id > 0 else None,
        immediate=conid_id == -1,
        account=read_text(item.get("account"), endpoint, "account"),
    )
