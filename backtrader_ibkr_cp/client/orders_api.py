"""The order, execution and account endpoints of :class:`~.api.ApiClient` (a mixin).

Wire layer only: each method validates its arguments (nothing is sent with a bad one), sends one
request and parses the answer with :mod:`backtrader_ibkr_cp.models`; deciding what to do with
an answer (confirming questions, looking up a lost order) is the broker's job.

**Accounts first.** IBKR wants ``GET /iserver/accounts`` before order and order-status calls;
every method here except :meth:`reply` makes sure it was called in this brokerage session (the
client's one accounts-first mechanism, shared with snapshots) and, when the gateway still says
"Please query /accounts first", calls it again and repeats the request once (the gateway
carried nothing out). :meth:`reply` sends nothing before itself: any request between a question
and its reply may discard the order (IBKR).

**The money path is never re-sent blindly.** Place, reply, modify and cancel go out with
:data:`ORDER_RETRY`, which retries nothing: a request whose answer is lost (connection reset,
timeout, 5xx, unreadable body) raises :class:`~backtrader_ibkr_cp.errors.OrderOutcomeUnknown`
after exactly one send, because IBKR may have carried it out. The caller finds out by ``cOID``
(:meth:`live_orders`, :meth:`trades`) before sending again; re-sending with the same ``cOID``
answers :class:`~backtrader_ibkr_cp.models.answers.DuplicateOrderId` if the first one got
through. Only answers that prove nothing was done are followed by a second send: 401 (the
session is reopened first) and "Please query /accounts first". :meth:`place_orders` therefore
insists on a ``cOID`` on the first ticket.

**Rejections are answers, not errors**: IBKR's 200 ``{"error": ...}`` (and the recognised 400
texts: duplicate ``cOID``, stale reply id, order not confirmed) come back as
:data:`~backtrader_ibkr_cp.models.answers.PlaceAnswer` values; other 4xx answers raise ApiError.

**Account ids** travel in paths but never in messages: errors leaving these methods have them
replaced (:mod:`.redact`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .. import wire
from ..errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    DataIntegrityError,
    DataUnavailable,
    NetworkError,
    OrderOutcomeUnknown,
    RateLimitExceeded,
)
from ..models.accounts import (
    IServerAccounts,
    SwitchAccountResult,
    parse_iserver_accounts,
    parse_switch_account,
)
from ..models.answers import (
    CancelAnswer,
    DuplicateOrderId,
    PlaceAnswer,
    ReplyExpired,
    classify_error,
    parse_cancel_answer,
    parse_place_answer,
)
from ..models.orders import (
    Execution,
    LiveOrders,
    OrderStatusReport,
    parse_executions,
    parse_live_orders,
    parse_order_status,
)
from ..models.tickets import OrderTicket, ticket_body
from .redact import account_safe, checked_account, redact
from .retry import RetryPolicy
from .tls import TlsError
from .transport import AccountsRequired

if TYPE_CHECKING:
    import threading

    from .session import AuthRecovery
    from .transport import Transport

__all__ = ["ORDER_RETRY", "OrdersApi"]

#: The retry policy of every request that places, confirms, modifies or cancels an order:
#: none. A lost answer is reported (OrderOutcomeUnknown), never re-sent by the HTTP layer.
ORDER_RETRY = RetryPolicy.no_retries()

_REPLY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")
_MESSAGE_ID = re.compile(r"[a-z][0-9]{1,6}")


@dataclass(frozen=True)
class _Order:
    """What a money-path request was about, for OrderOutcomeUnknown."""

    operation: str
    coids: tuple[str, ...] = ()
    order_id: int | None = None
    reply_id: str | None = None


def _order_id(value: object, *, allow_all: bool = False) -> int:
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (value > 0 or (allow_all and value == -1))
    ):
        return value
    extra = " (or -1: every open order)" if allow_all else ""
    raise ConfigError(f"order_id must be IBKR's positive integer order id{extra}, got {value!r}")


def _group(bodies: list[dict[str, Any]]) -> tuple[str, ...]:
    """Check one request's tickets (one order, a bracket or an OCA group); their cOIDs."""
    if not bodies:
        raise ConfigError("place_orders needs at least one ticket")
    first = bodies[0].get("cOID")
    if not isinstance(first, str) or not first:
        raise ConfigError(
            "the first ticket needs a cOID (OrderTicket(coid=...)): it is how an order whose "
            "answer was lost is found again, so no order is placed twice"
        )
    oca = all(body.get("isSingleGroup") is True for body in bodies)
    for body in bodies[1:]:
        if not oca and body.get("parentId") != first:
            raise ConfigError(
                "IBKR takes one order per request, or a bracket (every later ticket with "
                "parent_coid = the first ticket's coid) or an OCA group (oca=True on every "
                "ticket); these tickets are neither"
            )
    coids = [c for c in (body.get("cOID") for body in bodies) if isinstance(c, str)]
    if len(set(coids)) != len(coids):
        raise ConfigError(f"cOIDs must differ within a request, got {coids}")
    return tuple(coids)


class OrdersApi:
    """Order, execution and account endpoints; mixed into :class:`~.api.ApiClient`, which
    provides the transport, the session recovery and the accounts-first state."""

    transport: Transport
    recovery: AuthRecovery
    _lock: threading.Lock
    _accounts_calls: int
    _accounts_generation: int | None

    if TYPE_CHECKING:

        def _request(
            self,
            method: str,
            path: str,
            *,
            params: Mapping[str, Any] | None = None,
            json: Any = None,
            retry: RetryPolicy | None = None,
        ) -> Any: ...

        def _ensure_accounts(self, *, seen_calls: int | None = None) -> None: ...

    # -- plumbing --------------------------------------------------------------------------

    def _iserver(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Send after ``/iserver/accounts`` (once per session); when the gateway still wants
        it, call it again and send once more (the first request was not carried out)."""
        self._ensure_accounts()
        with self._lock:
            seen = self._accounts_calls
        try:
            return self._request(method, path, params=params, json=json, retry=retry)
        except AccountsRequired:
            self._ensure_accounts(seen_calls=seen)
        return self._request(method, path, params=params, json=json, retry=retry)

    def _send_order(
        self, order: _Order, method: str, path: str, json: Any, *, accounts_first: bool = True
    ) -> tuple[Any, int]:
        """One money-path request, sent once: ``(body, HTTP status)``. A rejection answered
        in-band comes back as ``({"error": text}, status)``; a lost answer raises
        OrderOutcomeUnknown; other errors propagate."""
        send = self._iserver if accounts_first else self._request
        try:
            return send(method, path, json=json, retry=ORDER_RETRY), 200
        except (AuthenticationError, RateLimitExceeded, AccountsRequired):
            raise  # nothing was carried out
        except ApiError as error:
            status = error.status if error.status is not None else 0
            if status >= 500:
                raise self._unknown(order, path, error) from error
            if error.gateway_message and self._is_answer(error.gateway_message, status):
                return {"error": error.gateway_message}, status
            raise
        except TlsError:
            raise  # the handshake failed: nothing was sent
        except (NetworkError, DataIntegrityError) as error:
            raise self._unknown(order, path, error) from error

    @staticmethod
    def _is_answer(text: str, status: int) -> bool:
        if status == 200:
            return True
        answer = classify_error(text, status)
        recognised = isinstance(answer, (DuplicateOrderId, ReplyExpired))
        return 400 <= status < 500 and (recognised or "not confirmed" in text.lower())

    @staticmethod
    def _unknown(order: _Order, path: str, error: Exception) -> OrderOutcomeUnknown:
        if order.operation == "place":
            lookup = (
                f"look it up by its cOID ({', '.join(order.coids)}) in live_orders() and "
                "trades() before sending it again; re-sending with the same cOID is safe"
            )
        elif order.operation == "reply":
            lookup = (
                "the confirmed order may have been placed: look it up by its cOID in "
                "live_orders() and trades() before placing it again"
            )
        else:
            lookup = (
                f"check order {order.order_id} with order_status() or live_orders() before "
                f"trying to {order.operation} it again"
            )
        return OrderOutcomeUnknown(
            f"{order.operation} ({redact(path)}): {redact(str(error))} -- the request was sent "
            f"once and its outcome is unknown: the order may or may not exist (or be "
            f"changed). It was not re-sent; {lookup}",
            endpoint=redact(path),
            operation=order.operation,
            coids=order.coids,
            order_id=order.order_id,
            reply_id=order.reply_id,
            status=getattr(error, "status", None),
        )

    # -- accounts --------------------------------------------------------------------------

    def iserver_accounts(self) -> IServerAccounts:
        """``GET /iserver/accounts``: the session's accounts, the selected one and IBKR's
        ``isPaper``. Counts as the accounts-first call for snapshots and orders."""
        generation = self.recovery.generation
        body = self._request("GET", wire.ISERVER_ACCOUNTS)
        with self._lock:
            self._accounts_generation = generation
            self._accounts_calls += 1
        return parse_iserver_accounts(body)

    def switch_account(self, account: str) -> SwitchAccountResult:
        """``POST /iserver/account``: select ``account`` for orders and live orders (advisor
        and multi-account logins). An id IBKR does not know raises ConfigError."""
        account = checked_account(account)
        with account_safe():
            try:
                body = self._iserver(
                    "POST",
                    wire.SWITCH_ACCOUNT,
                    json={"acctId": account},
                    retry=self.transport.retry.without("server"),
                )
            except ApiError as error:
                if "invalid account" in (error.gateway_message or "").lower():
                    raise ConfigError(
                        "switch_account: IBKR does not know that account in this session; use "
                        "one of iserver_accounts().accounts"
                    ) from None
                raise
            return parse_switch_account(body)

    # -- placing and changing orders (the money path) --------------------------------------

    def place_orders(
        self, account: str, tickets: Sequence[OrderTicket | Mapping[str, Any]]
    ) -> PlaceAnswer:
        """``POST /iserver/account/{account}/orders`` with ``{"orders": [...]}``: one order, a
        bracket (children's ``parent_coid`` = the parent's ``coid``) or an OCA group. The
        first ticket must carry a ``cOID``. Sent once (see the module docstring): returns
        Accepted (one entry per ticket), Question, Prompt, Rejected or DuplicateOrderId;
        raises OrderOutcomeUnknown when the answer is lost."""
        account = checked_account(account)
        if isinstance(tickets, (OrderTicket, Mapping)):
            tickets = [tickets]
        bodies = [ticket_body(ticket) for ticket in tickets]
        coids = _group(bodies)
        path = wire.PLACE_ORDERS.format(account=account)
        with account_safe():
            body, status = self._send_order(
                _Order("place", coids), "POST", path, {"orders": bodies}
            )
            answer = parse_place_answer(body, endpoint=redact(path), http_status=status)
        if isinstance(answer, DuplicateOrderId) and answer.coid not in coids and len(coids) == 1:
            answer = replace(answer, coid=coids[0])  # the gateway's text lost it (scrubbed)
        return answer

    def reply(self, reply_id: str, confirmed: bool) -> PlaceAnswer:
        """``POST /iserver/reply/{reply_id}``: answer a :class:`Question` (True transmits,
        False discards the order: Rejected). Send it at once: nothing is sent before it, and
        another request in between may discard the order (ReplyExpired). The answer may be
        the next question of a chain. Sent once; OrderOutcomeUnknown when the answer is
        lost."""
        if not isinstance(reply_id, str) or not _REPLY_ID.fullmatch(reply_id):
            raise ConfigError(f"reply_id must be a question's id (a UUID), got {reply_id!r}")
        if not isinstance(confirmed, bool):
            raise ConfigError(f"confirmed must be True or False, got {confirmed!r}")
        path = wire.REPLY.format(reply_id=reply_id)
        order = _Order("reply", reply_id=reply_id)
        with account_safe():
            body, status = self._send_order(
                order, "POST", path, {"confirmed": confirmed}, accounts_first=False
            )
            return parse_place_answer(body, endpoint=wire.REPLY, http_status=status)

    def modify_order(
        self, account: str, order_id: int, ticket: OrderTicket | Mapping[str, Any]
    ) -> PlaceAnswer:
        """``POST /iserver/account/{account}/order/{order_id}`` with one (unwrapped) ticket:
        IBKR wants every key of the original order again, changed values changed. Answers as
        :meth:`place_orders`; sent once; OrderOutcomeUnknown when the answer is lost."""
        account = checked_account(account)
        order_id = _order_id(order_id)
        body = ticket_body(ticket)
        path = wire.ORDER.format(account=account, order_id=order_id)
        with account_safe():
            answer, status = self._send_order(
                _Order("modify", order_id=order_id), "POST", path, body
            )
            return parse_place_answer(answer, endpoint=redact(path), http_status=status)

    def cancel_order(self, account: str, order_id: int) -> CancelAnswer:
        """``DELETE /iserver/account/{account}/order/{order_id}`` (``-1``: every open order).
        CancelRequested acknowledges the request only (the order may still fill; watch its
        status); Rejected for an unknown order. Sent once; OrderOutcomeUnknown when the
        answer is lost."""
        account = checked_account(account)
        order_id = _order_id(order_id, allow_all=True)
        path = wire.ORDER.format(account=account, order_id=order_id)
        with account_safe():
            body, status = self._send_order(
                _Order("cancel", order_id=order_id), "DELETE", path, None
            )
            return parse_cancel_answer(body, endpoint=redact(path), http_status=status)

    # -- questions -------------------------------------------------------------------------

    def suppress_questions(self, message_ids: Iterable[str]) -> None:
        """``POST /iserver/questions/suppress``: stop IBKR asking the questions with these
        ids (``"o163"``, ``"o354"``...) for the rest of the brokerage session. The list
        replaces the previous one (send the complete set); 1-51 ids, duplicates dropped."""
        ids = list(dict.fromkeys(message_ids)) if not isinstance(message_ids, str) else []
        bad = [i for i in ids if not (isinstance(i, str) and _MESSAGE_ID.fullmatch(i))]
        if not ids or bad or len(ids) > wire.MAX_SUPPRESSED_QUESTIONS:
            raise ConfigError(
                f"message_ids must be 1-{wire.MAX_SUPPRESSED_QUESTIONS} question ids such as "
                f"'o163', 'o354', 'p12'; got {list(message_ids)[:60]!r}"
            )
        self._iserver("POST", wire.SUPPRESS_QUESTIONS, json={"messageIds": ids})

    def reset_suppressed(self) -> None:
        """``POST /iserver/questions/suppress/reset``: IBKR asks every question again."""
        self._iserver("POST", wire.RESET_SUPPRESSED)

    # -- order state and executions --------------------------------------------------------

    def live_orders(self, *, force: bool = False) -> LiveOrders:
        """``GET /iserver/account/orders`` (paced: one per 5 s). The first call of a session
        and every ``force=True`` call (which clears IBKR's cache) answer an empty list with
        ``snapshot`` False: call again before trusting an empty list."""
        params = {"force": "true"} if force else None
        return parse_live_orders(self._iserver("GET", wire.LIVE_ORDERS, params=params))

    def order_status(self, order_id: int) -> OrderStatusReport:
        """``GET /iserver/account/order/status/{order_id}``. IBKR keeps no status for orders
        filled or cancelled before this brokerage session (HTTP 503): DataUnavailable."""
        order_id = _order_id(order_id)
        path = wire.ORDER_STATUS.format(order_id=order_id)
        with account_safe():
            try:
                body = self._iserver("GET", path, retry=self.transport.retry.without("server"))
            except ApiError as error:
                if error.status != 503:
                    raise
                raise DataUnavailable(
                    f"GET {path}: IBKR has no status for order {order_id} (HTTP 503: it was "
                    "not placed, or it was filled or cancelled before this brokerage "
                    "session); look for it in live_orders() and trades()",
                    endpoint=wire.ORDER_STATUS,
                    status=503,
                    gateway_message=error.gateway_message,
                ) from error
            return parse_order_status(body, endpoint=wire.ORDER_STATUS)

    def trades(self, days: int | None = None) -> list[Execution]:
        """``GET /iserver/account/trades`` (paced: one per 5 s): the executions of today, or
        of the last ``days`` days (1-7). Apply each ``execution_id`` once."""
        params = None
        if days is not None:
            if isinstance(days, bool) or not isinstance(days, int):
                raise ConfigError(f"days must be a whole number 1-{wire.TRADES_MAX_DAYS}")
            if not 1 <= days <= wire.TRADES_MAX_DAYS:
                raise ConfigError(f"days must be 1-{wire.TRADES_MAX_DAYS}, got {days}")
            params = {"days": str(days)}
        with account_safe():
            return parse_executions(self._iserver("GET", wire.TRADES, params=params))
