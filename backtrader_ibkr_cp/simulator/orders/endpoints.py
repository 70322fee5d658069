"""The order endpoints under ``/iserver`` (reference/orders/ibkr-cp-orders.md §1-5).

- ``POST /iserver/account/{accountId}/orders``: place (questions first, see :mod:`.questions`).
- ``POST /iserver/reply/{replyId}``: answer a question; ``confirmed: false`` declines and
  discards the request (200 ``{"error": "Order not confirmed "}``, IBKR's spec example).
- ``POST /iserver/account/{accountId}/order/{orderId}``: modify (one unwrapped ticket).
- ``DELETE /iserver/account/{accountId}/order/{orderId}``: cancel (``-1``: all open orders).
- ``GET /iserver/account/orders``: the day's orders; the first call of a brokerage session and
  every ``force=true`` call answer ``{"orders": [], "snapshot": false}``, later calls the book.
- ``GET /iserver/account/order/status/{orderId}``; ``GET /iserver/account/trades?days=N``.
- ``POST /iserver/questions/suppress`` (replaces the suppressed set) and ``/suppress/reset``.
- ``POST /iserver/account``: select the account (there is only one).
- ``POST /iserver/account`` with ``{"acctId"}``: select the account (one here, so "already set").

Every endpoint but reply and suppression needs ``/iserver/accounts`` first in the brokerage
session: 400 ``{"error": "Bad Request: Please query /accounts first", "statusCode": 400}``. A path
account other than the simulator's answers 400 ``Bad Request: accountId is not valid: <id>``.
"""

from __future__ import annotations

from typing import Any

from ..context import SimContext
from ..wire import Request, Response
from .bodies import live_order, order_status, submitted
from .desk import TradingDesk, day_orders, trade_list
from .engine import OrderEngine
from .questions import Pending, Question, questions_for
from .state import FINAL
from .tickets import Ticket, TicketError, modified_ticket, parse_orders_body
from .timing import in_window

__all__ = [
    "cancel_order",
    "live_orders",
    "modify_order",
    "place_orders",
    "reply",
    "select_account",
    "status",
    "suppress",
    "suppress_reset",
    "switch_account",
    "trades",
]

#: V1's suppressible message ids, plus ``o0`` (the id real gateways put on o403's text).
SUPPRESSIBLE = frozenset(
    {
        *("o0", "o163", "o354", "o382", "o383", "o403", "o451", "o2136", "o2137", "o2165"),
        *("o10082", "o10138", "o10151", "o10152", "o10153", "o10164", "o10223", "o10288"),
        *("o10331", "o10332", "o10333", "o10334", "o10335", "o10336", "p6", "p12"),
    }
)
MAX_SUPPRESS = 51
_FILTERS = {
    "inactive": "Inactive",
    "pending_submit": "PendingSubmit",
    "pre_submitted": "PreSubmitted",
    "submitted": "Submitted",
    "filled": "Filled",
    "pending_cancel": "PendingCancel",
    "pre_cancelled": "PreCancelled",
    "cancelled": "Cancelled",
    "warn_state": "WarnState",
}


def bad_request(message: str) -> Response:
    """IBKR's 400: ``{"error": ..., "statusCode": 400}``."""
    return Response.json({"error": message, "statusCode": 400}, 400)


def rejection(error: TicketError) -> Response:
    """A refused ticket: 200 ``{"error"}``, or 400/500 for malformed requests."""
    if error.status == 200:
        return Response.json({"error": error.message})
    if error.status == 400:
        return bad_request(error.message)
    return Response.json({"error": error.message}, error.status)


def desk_of(ctx: SimContext) -> TradingDesk:
    return ctx.trading


def precheck(request: Request, ctx: SimContext) -> Response | None:
    """Accounts-first and the path account."""
    if not ctx.session.accounts_queried:
        return bad_request("Bad Request: Please query /accounts first")
    account = request.params.get("account")
    if account is not None and account != ctx.trading.account:
        return bad_request(f"Bad Request: accountId is not valid: {account}")
    return None


def _json(request: Request) -> Any:
    try:
        return request.json_body()
    except ValueError as error:
        raise TicketError(f"the body is not valid JSON: {error}", 400) from None


def _order_id(request: Request) -> int | None:
    text = request.params.get("order_id", "")
    return int(text) if text.lstrip("-").isdigit() else None


def _questions(ctx: SimContext, engine: OrderEngine, tickets: list[Ticket]) -> list[Question]:
    epoch = (engine.now or ctx.clock.now()).timestamp()
    suppressed = ctx.trading.scope.suppressed
    found: list[Question] = []
    for ticket in tickets:
        inst = engine.instrument(ticket)
        has_data = ctx.instruments.availability(inst.conid)[0] != "N"
        last = engine.last_price(inst, epoch)
        hours = in_window(ticket, epoch)
        for question in questions_for(ticket, inst, last, has_data, hours):
            if not question.suppressed_by & suppressed:
                found.append(question)
    return found


def _carry_out(ctx: SimContext, engine: OrderEngine, pending: Pending) -> Response:
    now = engine.now or ctx.clock.now()
    if pending.kind == "place":
        tickets: list[Ticket] = pending.payload
        accepted = engine.place(tickets, now)
        pairs = zip(accepted, tickets, strict=True)
        return Response.json([submitted(oid, state, t.coid) for (oid, state), t in pairs])
    order_id, raw = pending.payload
    st = engine.modify(order_id, raw, now)
    return Response.json([submitted(st.order_id, st.status, st.ticket.coid)])


def place_orders(request: Request, ctx: SimContext) -> Response:
    """``POST /iserver/account/{accountId}/orders`` with ``{"orders": [...]}``."""
    refused = precheck(request, ctx)
    if refused is not None:
        return refused
    desk = desk_of(ctx)
    try:
        tickets = parse_orders_body(_json(request))
        with desk.locked() as engine:
            desk.scope.replies.clear()
            assert engine.now is not None
            engine.check(tickets, engine.now, engine.open_orders())
            questions = _questions(ctx, engine, tickets)
            if questions:
                return Response.json(desk.scope.replies.ask(Pending("place", tickets, questions)))
            return _carry_out(ctx, engine, Pending("place", tickets, []))
    except TicketError as error:
        return rejection(error)


def modify_order(request: Request, ctx: SimContext) -> Response:
    """``POST /iserver/account/{accountId}/order/{orderId}`` with one ticket object."""
    refused = precheck(request, ctx)
    if refused is not None:
        return refused
    order_id = _order_id(request)
    desk = desk_of(ctx)
    try:
        raw = _json(request)
        with desk.locked() as engine:
            desk.scope.replies.clear()
            st = engine.order(order_id) if order_id is not None else None
            if st is None:
                raise TicketError(f"OrderID {request.params.get('order_id')} doesn't exist")
            if st.final:
                raise TicketError(f"Order {order_id} cannot be modified: it is {st.status}.")
            questions = _questions(ctx, engine, [modified_ticket(st.ticket, raw)])
            pending = Pending("modify", (st.order_id, raw), questions)
            if questions:
                return Response.json(desk.scope.replies.ask(pending))
            return _carry_out(ctx, engine, pending)
    except TicketError as error:
        return rejection(error)


def reply(request: Request, ctx: SimContext) -> Response:
    """``POST /iserver/reply/{replyId}`` with ``{"confirmed": true|false}``."""
    reply_id = request.params.get("reply_id", "")
    desk = desk_of(ctx)
    try:
        body = _json(request)
        confirmed = body.get("confirmed") if isinstance(body, dict) else None
        if not isinstance(confirmed, bool):
            raise TicketError('the body must be {"confirmed": true} or {"confirmed": false}', 400)
        with desk.locked() as engine:
            pending = desk.scope.replies.take(reply_id)
            if pending is None:
                return Response.json({"error": f"reply id not found: '{reply_id}'"}, 400)
            if not confirmed:
                return Response.json({"error": "Order not confirmed "})
            pending.questions.pop(0)
            if pending.questions:
                return Response.json(desk.scope.replies.ask(pending))
            return _carry_out(ctx, engine, pending)
    except TicketError as error:
        return rejection(error)


def cancel_order(request: Request, ctx: SimContext) -> Response:
    """``DELETE /iserver/account/{accountId}/order/{orderId}``."""
    refused = precheck(request, ctx)
    if refused is not None:
        return refused
    order_id = _order_id(request)
    if order_id is None:
        return Response.json({"error": f"OrderID {request.params.get('order_id')} doesn't exist"})
    desk = desk_of(ctx)
    try:
        with desk.locked() as engine:
            assert engine.now is not None
            answers = engine.cancel(order_id, engine.now)
    except TicketError as error:
        return rejection(error)
    body: dict[str, Any] = {"msg": "Request was submitted", "order_id": order_id}
    target = next((a for a in answers if a[0].order_id == order_id), None)
    if target is None or target[1]:  # cancelled at once: IBKR answers conid -1, account null
        body.update({"conid": -1, "account": None})
    else:
        body.update({"conid": target[0].ticket.conid, "account": desk.account})
    return Response.json(body)


def live_orders(request: Request, ctx: SimContext) -> Response:
    """``GET /iserver/account/orders[?filters=a,b][&force=true]``."""
    refused = precheck(request, ctx)
    if refused is not None:
        return refused
    wanted: set[str] = set()
    by_time = False
    for item in (request.query.get("filters") or "").split(","):
        name = item.strip()
        if not name:
            continue
        if name.lower() == "sort_by_time":
            by_time = True
        elif name.lower() in _FILTERS:
            wanted.add(_FILTERS[name.lower()])
        elif name in _FILTERS.values():
            wanted.add(name)
        else:
            valid = ", ".join([*_FILTERS, "sort_by_time"])
            return bad_request(f"filter {name!r} is not valid; use one of {valid}")
    force = (request.query.get("force") or "").lower() == "true"
    desk = desk_of(ctx)
    with desk.locked() as engine:
        scope = desk.scope
        if force or not scope.orders_primed:
            scope.orders_primed = True
            return Response.json({"orders": [], "snapshot": False})
        shown = day_orders(engine)
        if wanted:
            shown = [st for st in shown if st.status in wanted]
        if by_time:
            shown.sort(key=lambda st: (st.status in FINAL, st.placed_at, st.order_id))
        return Response.json(
            {"orders": [live_order(st, desk.account) for st in shown], "snapshot": True}
        )


def status(request: Request, ctx: SimContext) -> Response:
    """``GET /iserver/account/order/status/{orderId}``; 503 for an unknown order."""
    refused = precheck(request, ctx)
    if refused is not None:
        return refused
    order_id = _order_id(request)
    desk = desk_of(ctx)
    with desk.locked() as engine:
        st = engine.order(order_id) if order_id is not None else None
        if st is None:
            text = f"Order {request.params.get('order_id')} is not found"
            return Response.json({"error": text, "statusCode": 503}, 503)
        return Response.json(order_status(st, desk.account, desk.next_request_id()))


def trades(request: Request, ctx: SimContext) -> Response:
    """``GET /iserver/account/trades[?days=1..7]``: executions since the start (New York) of
    the day ``days - 1`` days ago (default 1: today only), oldest first."""
    refused = precheck(request, ctx)
    if refused is not None:
        return refused
    text = request.query.get("days") or "1"
    if not text.isdigit() or not 1 <= int(text) <= 7:
        return bad_request(f"days must be a whole number from 1 to 7, got {text!r}")
    desk = desk_of(ctx)
    with desk.locked() as engine:
        body = trade_list(engine, desk.account, desk.user_name, int(text))
    return Response.json(body)


def select_account(request: Request, ctx: SimContext) -> Response:
    """``POST /iserver/account`` with ``{"acctId": ...}``: the one account is always selected
    (``{"success": "Account already set"}``, as IBKR answers then); any other id answers 500
    ``{"error": "Invalid account ID"}`` (IBKR's spec example)."""
    refused = precheck(request, ctx)
    if refused is not None:
        return refused
    try:
        body = request.json_body()
    except ValueError:
        body = None
    wanted = body.get("acctId") if isinstance(body, dict) else None
    if wanted != ctx.trading.account:
        return Response.json({"error": "Invalid account ID"}, 500)
    return Response.json({"success": "Account already set"})


def suppress(request: Request, ctx: SimContext) -> Response:
    """``POST /iserver/questions/suppress`` with ``{"messageIds": [...]}``."""
    try:
        body = request.json_body()
    except ValueError:
        body = None
    ids = body.get("messageIds") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return bad_request('the body must be {"messageIds": ["o163", "o354", ...]}')
    if len(ids) > MAX_SUPPRESS:
        return Response.json({"error": f"at most {MAX_SUPPRESS} messageIds per request"}, 500)
    unknown = sorted(set(ids) - SUPPRESSIBLE)
    if unknown:
        valid = ", ".join(sorted(SUPPRESSIBLE))
        return bad_request(f"messageIds {unknown} cannot be suppressed; use some of {valid}")
    desk = desk_of(ctx)
    with desk.locked():
        desk.scope.suppressed = set(ids)
    return Response.json({"status": "submitted"})


def suppress_reset(request: Request, ctx: SimContext) -> Response:
    """``POST /iserver/questions/suppress/reset`` (no body needed)."""
    desk = desk_of(ctx)
    with desk.locked():
        desk.scope.suppressed = set()
    return Response.json({"status": "submitted"})


def switch_account(request: Request, ctx: SimContext) -> Response:
    """``POST /iserver/account`` with ``{"acctId": ...}``. The simulator serves one account, so
    its id answers ``{"success": "Account already set"}`` (IBKR's answer when the account is
    already selected) and any other id 500 ``{"error": "Invalid account ID"}`` (IBKR's spec)."""
    try:
        body = request.json_body()
    except ValueError:
        body = None
    account = body.get("acctId") if isinstance(body, dict) else None
    if not isinstance(account, str) or not account:
        return bad_request('the body must be {"acctId": "<account id>"}')
    if account != desk_of(ctx).account:
        return Response.json({"error": "Invalid account ID"}, 500)
    return Response.json({"success": "Account already set"})
