"""The broker's thread: every HTTP call of the broker runs here, never on Cerebro's.

Threading model: :class:`BrokerWorker` owns ONE thread. The backtrader broker puts commands
(place a group of orders, cancel one, order and trade updates pushed by the gateway's socket)
into a bounded :class:`~backtrader_ibkr_cp.live.channel.Channel` and drains the worker's outputs
(the :class:`~.book.OrderBook`'s, account snapshots, store messages) from another, on Cerebro's
thread, in ``next()``. The worker places orders one group at a time (IBKR: "do not place
another order until the previous one has been fully acknowledged"), answers IBKR's questions
by policy, polls live orders and executions (IBKR allows one request per 5 s to each; with the
socket they are the safety net) and the account. A request whose answer is lost is never sent
again blindly (see :meth:`BrokerWorker._find_out`). Every wait is on the injected clock and ends
when the worker's token is cancelled; an error in one request never stops the thread.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar

from ..errors import (
    AuthenticationError,
    Cancelled,
    DataIntegrityError,
    MarketError,
    OrderOutcomeUnknown,
    RateLimitExceeded,
)
from ..live.channel import Channel
from ..models.accounts import IServerAccounts, PortfolioAccount
from ..models.answers import (
    Accepted as PlacedAnswer,
)
from ..models.answers import (
    AcceptedOrder,
    CancelAnswer,
    DuplicateOrderId,
    PlaceAnswer,
    Prompt,
    Question,
    Rejected,
    ReplyExpired,
)
from ..models.orders import Execution, LiveOrder, LiveOrders
from ..models.portfolio import AccountSummary, Position
from ..models.tickets import OrderTicket
from ..timing import SYSTEM_CLOCK, Backoff, CancelToken, Clock
from .book import OrderBook, Output
from .questions import QuestionPolicy
from .requests import OrderRequest, Unsupported, ticket_for

__all__ = [
    "AccountSnapshot",
    "BrokerWorker",
    "Cancel",
    "Leg",
    "OrdersApi",
    "Place",
    "Pushed",
    "StoreNote",
    "WorkerSettings",
]

log = logging.getLogger(__name__)

#: Questions answered for one order before giving up (IBKR chains a few at most).
MAX_QUESTIONS = 10
#: Live-order lookups for an order whose answer was lost, before it is sent again.
LOOKUP_ROUNDS = 3
#: Times an order whose answer was lost is sent again (same cOID) before giving up.
RESENDS = 2
#: Positions per page of ``/portfolio/{account}/positions/{page}``.
POSITIONS_PAGE = 100
#: Waits before sending a place, reply or cancel again that the gateway refused without
#: carrying it out (429, or 401 after the client could not reopen the session): 1, 2, 4 s.
REFUSED_BACKOFF = Backoff(initial=1.0, factor=2.0, maximum=4.0, jitter=0.0, attempts=3)

T = TypeVar("T")


class OrdersApi(Protocol):
    """What the worker needs of :class:`~backtrader_ibkr_cp.client.api.ApiClient`."""

    def iserver_accounts(self) -> IServerAccounts: ...

    def switch_account(self, account: str) -> Any: ...

    def place_orders(self, account: str, tickets: Sequence[OrderTicket]) -> PlaceAnswer: ...

    def reply(self, reply_id: str, confirmed: bool) -> PlaceAnswer: ...

    def suppress_questions(self, message_ids: Sequence[str]) -> None: ...

    def cancel_order(self, account: str, order_id: int) -> CancelAnswer: ...

    def live_orders(self, *, force: bool = False) -> LiveOrders: ...

    def trades(self, days: int | None = None) -> list[Execution]: ...

    def portfolio_accounts(self) -> list[PortfolioAccount]: ...

    def portfolio_summary(self, account: str) -> AccountSummary: ...

    def positions(self, account: str, page: int = 0) -> list[Position]: ...

    def invalidate_positions(self, account: str) -> None: ...

    def server_time(self) -> datetime: ...


# -- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leg:
    """One order of a group to place: the request, its ``cOID`` (None for bracket children),
    its parent's ``cOID`` and whether it is in an OCA group."""

    request: OrderRequest
    coid: str | None
    parent_coid: str | None = None
    oca: bool = False


@dataclass(frozen=True)
class Place:
    """Place ``legs`` in one request (a single order, a bracket, an OCA group)."""

    legs: tuple[Leg, ...]


@dataclass(frozen=True)
class Cancel:
    ref: int


@dataclass(frozen=True)
class Pushed:
    """Order statuses (``orders``) and executions (``executions``) the gateway's socket
    pushed."""

    orders: tuple[LiveOrder, ...] = ()
    executions: tuple[Execution, ...] = ()


Command = Place | Cancel | Pushed


# -- outputs besides the book's -----------------------------------------------------------------


@dataclass(frozen=True)
class AccountSnapshot:
    """The account as IBKR holds it: ``cash`` (total cash value), ``value`` (net
    liquidation), positions by conid, read at ``time`` (the gateway's clock: executions up to
    then are in it)."""

    cash: float
    value: float
    positions: dict[int, Position] = field(default_factory=dict)
    time: datetime | None = None


@dataclass(frozen=True)
class StoreNote:
    """A message for ``notify_store``."""

    message: str


WorkerOutput = Output | AccountSnapshot | StoreNote


@dataclass(frozen=True)
class WorkerSettings:
    """How the worker runs (seconds)."""

    questions: QuestionPolicy = field(default_factory=QuestionPolicy)
    orders_every: float = 5.0
    account_every: float = 30.0


class BrokerWorker:
    """Runs a broker's I/O on its own thread; see the module docstring.

    Args:
        api: the store's ApiClient.
        account: the account traded (a secret: never in messages).
        settings: question policy and poll intervals.
        clock: time and waits.
        cancel: the owner's token (the worker takes a child).
    """

    def __init__(
        self,
        api: OrdersApi,
        account: str,
        settings: WorkerSettings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        cancel: CancelToken | None = None,
    ) -> None:
        self._api = api
        self._account = account
        self._settings = settings
        self._clock = clock
        self._token = cancel.child() if cancel is not None else CancelToken()
        self.book = OrderBook()
        self.commands: Channel[Command] = Channel(10_000, clock=clock)
        self.outputs: Channel[WorkerOutput] = Channel(100_000, clock=clock)
        self._thread: threading.Thread | None = None
        self._next_orders = 0.0
        self._next_account = 0.0
        self._fills_since_account = False
        self._external_orders: set[int] = set()
        self._failing: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        now = self._clock.now()
        self._next_orders = now + self._settings.orders_every
        self._next_account = now + self._settings.account_every
        self._thread = threading.Thread(target=self._run, name="ibkr-cp-broker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        self._token.cancel("the broker stopped")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and timeout != 0:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- start-up (called on the broker's start, before the thread runs) ----------------------

    def account_snapshot(self) -> AccountSnapshot:
        """Cash, value and positions, read now (``/portfolio/accounts`` first, IBKR's rule)."""
        self._api.portfolio_accounts()
        return self._read_account()

    def mark_history(self) -> None:
        """Executions of the day so far happened before this run: never applied here."""
        self.book.seen(e.execution_id for e in self._api.trades())

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._token.cancelled:
            try:
                self._cycle()
            except Cancelled:
                return
            except Exception as exc:  # a bug must not stop order handling
                if self._token.cancelled:
                    return
                log.exception("broker worker step failed")
                self._say(f"the broker's worker failed unexpectedly ({exc}); it keeps going")
            self._flush()

    def _cycle(self) -> None:
        now = self._clock.now()
        due = min(self._next_orders, self._next_account)
        if self.commands.empty() and now < due:
            self._clock.wait(due - now, self.commands.readable, self._token)
        self._token.raise_if_cancelled("the broker")
        for command in self.commands.drain():
            self._do(command)
            self._flush()
        now = self._clock.now()
        if now >= self._next_orders:
            self._next_orders = now + self._settings.orders_every
            self._guarded("order status", self._poll_orders)
        if now >= self._next_account:
            self._next_account = now + self._settings.account_every
            self._guarded("account", self._poll_account)

    def _guarded(self, what: str, step: Callable[[], None]) -> None:
        """Run a poll; a failure is reported once per change of state, and retried on the
        next cycle."""
        try:
            step()
        except Cancelled:
            raise
        except MarketError as exc:
            if self._token.cancelled:
                raise Cancelled("the broker stopped") from exc
            if self._failing != what:
                self._failing = what
                self._say(f"reading the {what} failed, retrying every cycle: {exc}")
            return
        if self._failing == what:
            self._failing = None
            self._say(f"reading the {what} works again")

    def _do(self, command: Command) -> None:
        if isinstance(command, Place):
            self._place(command.legs)
        elif isinstance(command, Cancel):
            self._cancel(command.ref)
        else:
            for order in command.orders:
                self._status(order)
            for execution in command.executions:
                self.book.execution(execution)
                self._fills_since_account = True
            self.book.status_round(complete=False)

    def _flush(self) -> None:
        for output in self.book.take():
            self.outputs.put(output, self._token)

    def _say(self, message: str) -> None:
        self.outputs.put(StoreNote(message), self._token)

    # -- placing ---------------------------------------------------------------------------

    def _place(self, legs: tuple[Leg, ...]) -> None:
        for leg in legs:
            self.book.track(leg.request, leg.coid)
        tickets: list[OrderTicket] = []
        for leg in legs:
            ticket = ticket_for(
                leg.request, coid=leg.coid, parent_coid=leg.parent_coid, oca=leg.oca
            )
            if isinstance(ticket, Unsupported):
                self._refuse(legs, ticket.reason)
                return
            tickets.append(ticket)
        try:
            answer = self._send(legs, tickets)
        except Cancelled:
            raise
        except MarketError as exc:
            self._refuse(legs, str(exc))
            return
        self._take(legs, answer)

    def _send(self, legs: tuple[Leg, ...], tickets: list[OrderTicket]) -> PlaceAnswer:
        """Place, answer the questions; a lost answer is found out, never sent blindly."""
        try:
            answer = self._unrefused(lambda: self._api.place_orders(self._account, tickets))
        except OrderOutcomeUnknown:
            return self._find_out(legs, tickets, resends=RESENDS)
        return self._answer_questions(legs, tickets, answer)

    def _unrefused(self, send: Callable[[], T]) -> T:
        """``send()``, sent again (after :data:`REFUSED_BACKOFF`) while the gateway refuses it
        without carrying it out: pacing (429) or a session the client could not reopen
        (401). The last refusal propagates."""
        retry = 0
        while True:
            try:
                return send()
            except (RateLimitExceeded, AuthenticationError):
                retry += 1
                if not REFUSED_BACKOFF.allows(retry):
                    raise
                self._clock.wait(REFUSED_BACKOFF.delay(retry), self._token)
                self._token.raise_if_cancelled("the broker")

    def _answer_questions(
        self,
        legs: tuple[Leg, ...],
        tickets: list[OrderTicket],
        answer: PlaceAnswer,
        *,
        resends: int = RESENDS,
    ) -> PlaceAnswer:
        for _ in range(MAX_QUESTIONS):
            if not isinstance(answer, Question):
                return answer
            confirm = self._settings.questions.decide(answer.message_ids, answer.text)
            ids = ", ".join(answer.message_ids) or "no id"
            reply_id = answer.reply_id
            try:
                reply = self._unrefused(partial(self._api.reply, reply_id, confirm))
            except (OrderOutcomeUnknown, AuthenticationError):
                # A lost answer, or a session lost between question and answer (IBKR drops
                # a pending reply with the session): the order may or may not exist.
                return self._find_out(legs, tickets, resends=resends)
            if isinstance(reply, ReplyExpired) and confirm:
                # The question's order was discarded (the session was reopened between
                # question and answer): find it, or send it again.
                return self._find_out(legs, tickets, resends=resends)
            if not confirm:
                return Rejected(f"declined IBKR's question ({ids}): {answer.text}")
            self._say(
                f"order {legs[0].request.ref}: confirmed IBKR's question ({ids}): {answer.text}"
            )
            answer = reply
        return Rejected(f"IBKR kept asking questions ({MAX_QUESTIONS}); the order is not placed")

    def _find_out(
        self, legs: tuple[Leg, ...], tickets: list[OrderTicket], *, resends: int
    ) -> PlaceAnswer:
        """The answer to placing (or confirming) ``legs`` was lost: IBKR may or may not have
        the order. Look it up by its cOID in the live orders (the first call of a session
        answers an empty book, so a real snapshot decides); absent, send it again with the
        same cOID (IBKR refuses a second order with it: DuplicateOrderId), at most
        ``resends`` times."""
        coid = legs[0].coid
        if coid is None:
            return Rejected("the order's answer was lost and it has no cOID to look it up by")
        for _ in range(LOOKUP_ROUNDS):
            live = self._api.live_orders()
            found = live.by_coid(coid)
            if found is not None:
                return self._found(legs, live, found)
            if live.snapshot:
                break
        if any(e.coid == coid for e in self._api.trades()):
            live = self._api.live_orders()
            found = live.by_coid(coid)
            if found is not None:
                return self._found(legs, live, found)
        if resends <= 0:
            return Rejected(
                f"IBKR did not answer and the order (cOID {coid}) cannot be found after "
                f"{RESENDS + 1} attempts; check the open orders in Client Portal before "
                "sending it again"
            )
        self._say(f"order {legs[0].request.ref}: the answer was lost and IBKR has no order "
                  f"with cOID {coid}; sending it again with the same cOID")  # fmt: skip
        try:
            answer = self._unrefused(lambda: self._api.place_orders(self._account, tickets))
        except OrderOutcomeUnknown:
            return self._find_out(legs, tickets, resends=resends - 1)
        if isinstance(answer, DuplicateOrderId):
            return self._find_out(legs, tickets, resends=0)
        return self._answer_questions(legs, tickets, answer, resends=resends - 1)

    def _found(self, legs: tuple[Leg, ...], live: LiveOrders, parent: LiveOrder) -> PlaceAnswer:
        """The accepted answer rebuilt from the live orders: the parent by its cOID, bracket
        children (no cOID) by contract, side, size and order type."""
        ids = [AcceptedOrder(parent.order_id, parent.status, parent.status_text, parent.coid)]
        taken = {parent.order_id}
        for leg in legs[1:]:
            match = next(
                (
                    o
                    for o in sorted(live.orders, key=lambda o: o.order_id)
                    if o.order_id not in taken
                    and not self.book.knows_order_id(o.order_id)
                    and o.conid == leg.request.conid
                    and o.side == leg.request.side
                    and math.isclose(o.total_size, leg.request.size)
                ),
                None,
            )
            if match is None:
                break
            taken.add(match.order_id)
            ids.append(AcceptedOrder(match.order_id, match.status, match.status_text, None))
        return PlacedAnswer(tuple(ids))

    def _take(self, legs: tuple[Leg, ...], answer: PlaceAnswer) -> None:
        if isinstance(answer, PlacedAnswer):
            orders = list(answer.orders)
            for index, leg in enumerate(legs):
                accepted = next((o for o in orders if o.coid and o.coid == leg.coid), None)
                if accepted is None and index < len(orders):
                    accepted = orders[index]
                if accepted is None:
                    self.book.lost(
                        leg.request.ref,
                        "IBKR accepted the group but did not say this order's id; check the "
                        "open orders in Client Portal",
                    )
                    continue
                self.book.accepted(leg.request.ref, accepted.order_id)
            return
        if isinstance(answer, DuplicateOrderId):
            self._refuse(legs, f"IBKR already has an order with this cOID: {answer.text}")
        elif isinstance(answer, Rejected):
            self._refuse(legs, answer.text)
        elif isinstance(answer, Prompt):
            self._refuse(
                legs,
                f"IBKR asks ({answer.message_id}): {answer.text}; answer such prompts once in "
                "Client Portal (or suppress them), then send the order again",
            )
        else:
            self._refuse(legs, "IBKR asked a question that was not answered")

    def _refuse(self, legs: tuple[Leg, ...], reason: str) -> None:
        for leg in legs:
            self.book.refused(leg.request.ref, reason)

    # -- cancelling ------------------------------------------------------------------------

    def _cancel(self, ref: int) -> None:
        if not self.book.cancel_requested(ref):
            return
        order_id = self.book.order_id(ref)
        assert order_id is not None
        for _ in range(2):  # a cancel is idempotent: a lost answer is sent again once
            try:
                answer = self._unrefused(lambda: self._api.cancel_order(self._account, order_id))
            except OrderOutcomeUnknown:
                continue
            except MarketError as exc:
                self.book.cancel_failed(ref)
                self._say(
                    f"order {ref}: cancelling failed ({exc}); the order is still working at "
                    "IBKR and may fill: cancel it again"
                )
                return
            if isinstance(answer, Rejected):
                self._say(f"order {ref}: IBKR refused to cancel it ({answer.text})")
            self._next_orders = min(self._next_orders, self._clock.now())  # look soon
            return
        self.book.cancel_failed(ref)
        self._say(
            f"order {ref}: the cancel's answer was lost twice; the order may still be working "
            "at IBKR: cancel it again"
        )

    # -- polling ---------------------------------------------------------------------------

    def _status(self, order: LiveOrder) -> None:
        known = self.book.knows_order_id(order.order_id) or (
            order.coid is not None and self.book.knows_coid(order.coid)
        )
        if known:
            self.book.status(
                order_id=order.order_id,
                coid=order.coid,
                status=order.status,
                filled=order.filled_quantity,
            )
        elif not order.status.final and order.order_id not in self._external_orders:
            self._external_orders.add(order.order_id)
            self._say(
                f"an order not placed by this run is open at IBKR (order id {order.order_id}, "
                f"{order.side} {order.total_size:g} of conid {order.conid}); it is left alone"
            )

    def _poll_orders(self) -> None:
        live = self._api.live_orders()
        for order in live.orders:
            self._status(order)
        executions = self._api.trades()
        for execution in executions:
            self.book.execution(execution)
        if executions:
            self._fills_since_account = True
        self.book.status_round(complete=live.snapshot)

    def _poll_account(self) -> None:
        if self._fills_since_account:
            self._api.invalidate_positions(self._account)
            self._fills_since_account = False
        self.outputs.put(self._read_account(), self._token)

    def _read_account(self) -> AccountSnapshot:
        read_at = self._api.server_time()
        summary = self._api.portfolio_summary(self._account)
        positions: dict[int, Position] = {}
        page = 0
        while True:
            batch = self._api.positions(self._account, page)
            for position in batch:
                positions[position.conid] = position
            if len(batch) < POSITIONS_PAGE:
                break
            page += 1
        cash = summary.total_cash_value
        value = summary.net_liquidation
        if cash is None or value is None:
            raise DataIntegrityError(
                "IBKR's account summary has no total cash value or net liquidation; is this "
                "account allowed to trade through the gateway?",
                endpoint="/portfolio/{account}/summary",
            )
        return AccountSnapshot(cash, value, positions, _computed_at(summary, read_at))

    def __repr__(self) -> str:
        return f"BrokerWorker({'running' if self.running else 'stopped'})"


def _computed_at(summary: AccountSummary, read_at: datetime) -> datetime:
    """When IBKR computed the summary's cash: its entries' own timestamp when later than
    ``read_at`` (the client's clock estimate, a lower bound taken before the request). A fill
    between the two is already in the cash; stamping the snapshot ``read_at`` would add it
    again (the broker counts only fills after the snapshot time)."""
    stamps = [
        entry.timestamp
        for key in ("totalcashvalue", "netliquidation")
        if (entry := summary.values.get(key)) is not None and entry.timestamp is not None
    ]
    return max([read_at, *stamps])
