"""The order fault matrix: every fault kind at each step of an order's life.

A cell is one Cerebro run on the simulator with one fault injected at one step:

- ``submit``: on the place-order request of a market buy.
- ``reply``: on the answer to IBKR's question about a market buy (questions not suppressed).
- ``working``: once a resting limit buy is Accepted, on the order and execution lists (and a
  cancel); the strategy cancels it once the fault was met (it may have filled by then).
- ``partial``: once a large market buy reported its first partial fill, on the order and
  execution lists while IBKR keeps filling it.
- ``cancel``: on the cancel request of a resting limit buy.

Kinds: every simulator fault that can hit an order endpoint, plus ``expire`` (the brokerage
session expires at that moment, ``sim.expire_session()``) and ``ws_drop`` (the WebSocket that
pushes order and trade updates is cut: ``sim.drop_websockets()``). The ``ws_drop`` cells
stream (the store's default); the others poll (``streaming="poll"``), so their faults hit the
polls that are the only path. Every cell must end with: no cOID
twice at IBKR, every order final, the fills the broker applied equal to IBKR's executions
(none lost, none twice), the broker's position and cash equal to ``sim.account``, and the
outcome the step calls for (:func:`expected`): every fault here is one the broker must get
through (a lost answer is found out, a refusal that carried nothing out is sent again).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import backtrader as bt
import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.broker.trading import ACCOUNT, Seen, run_script, trading_sim

pytestmark = pytest.mark.slow

AAPL = 265598
PLACE_PATH = f"/iserver/account/{ACCOUNT}/orders"
CANCEL_PATH = f"/iserver/account/{ACCOUNT}/order/"
REPLY_PATH = "/iserver/reply/"
#: Order and execution lists, cancels and modifies (not the place request).
STATUS_PATH = "/iserver/account/"
STEPS = ("submit", "reply", "working", "partial", "cancel")
KINDS = (
    "latency",
    "http_500",
    "http_503",
    "http_429",
    "reset",
    "timeout",
    "malformed",
    "answer_lost",
    "competing",
    "daily_reset",
    "expire",
    "ws_drop",
)
#: Client timeout of every cell, and how long the ``timeout`` fault holds (longer).
CLIENT_TIMEOUT = 1.0
FAULT_SECONDS = {"latency": 0.3, "timeout": 2.0}
#: A market buy IBKR fills in many pieces (a displayed size of at most 3,000 a second).
BIG = 150_000
FINAL = {"Completed", "Canceled", "Expired", "Margin", "Rejected"}


@dataclass
class Cell:
    """One cell's fault and whether it has been injected and met."""

    sim: GatewaySimulator
    kind: str
    path: str
    injected: bool = False
    cancelled: bool = False
    dropped: int = 0

    def inject(self) -> None:
        if self.injected:
            return
        self.injected = True
        if self.kind == "expire":
            self.sim.expire_session()
        elif self.kind == "ws_drop":
            self.dropped = self.sim.drop_websockets()
        else:
            seconds = FAULT_SECONDS.get(self.kind)
            self.sim.inject(self.kind, 1, path=self.path, seconds=seconds)

    @property
    def met(self) -> bool:
        if not self.injected:
            return False
        if self.kind == "expire":
            return self.sim.authenticated
        if self.kind == "ws_drop":
            return self.dropped > 0  # a socket was open, and cut
        return self.sim.pending_faults == 0


def expected(step: str) -> set[str]:
    """The final states a step's order may end in when the broker gets through the fault."""
    return {
        "submit": {"Completed"},
        "reply": {"Completed"},
        "working": {"Canceled", "Completed"},
        "partial": {"Completed"},
        "cancel": {"Canceled"},
    }[step]


def run_cell(sim: GatewaySimulator, step: str, kind: str) -> tuple[Seen, Cell]:
    path = {
        "submit": PLACE_PATH,
        "reply": REPLY_PATH,
        "working": STATUS_PATH,
        "partial": STATUS_PATH,
        "cancel": CANCEL_PATH,
    }[step]
    cell = Cell(sim, kind, path)
    broker: dict[str, Any] = {}
    store: dict[str, Any] = {
        "timeout": CLIENT_TIMEOUT,
        "streaming": "auto" if kind == "ws_drop" else "poll",
    }

    def market(size: int) -> Any:
        def action(strategy: Any) -> None:
            if step in ("submit", "reply"):
                cell.inject()
            strategy.seen.orders["order"] = strategy.buy(size=size)

        return action

    def resting(factor: float) -> Any:
        def action(strategy: Any) -> None:
            price = round(strategy.data.close[0] * factor, 2)
            strategy.seen.orders["order"] = strategy.buy(
                size=10, exectype=bt.Order.Limit, price=price
            )

        return action

    def react(strategy: Any, order: Any) -> None:
        if step == "working" and order.status == order.Accepted:
            cell.inject()
        if step == "partial" and order.status == order.Partial:
            cell.inject()

    def each(strategy: Any) -> None:
        order = strategy.seen.orders.get("order")
        if order is None or not order.alive() or cell.cancelled:
            return
        ready = (step == "working" and cell.met) or (
            step == "cancel" and order.status == order.Accepted
        )
        if ready:
            cell.cancelled = True
            if step == "cancel":
                cell.inject()
            strategy.cancel(order)

    if step == "reply":
        broker["suppress"] = False  # IBKR asks its "fills immediately" question (o0)
    if step in ("submit", "reply"):
        script = [(1, market(10))]
    elif step == "partial":
        script = [(1, market(BIG))]
    elif step == "working":
        script = [(1, resting(0.995))]
    else:
        script = [(1, resting(0.9))]
    seen = run_script(sim, script, broker=broker, store=store, react=react, each=each)
    return seen, cell


def check(seen: Seen, cell: Cell, step: str) -> None:
    sim = cell.sim
    account = sim.account
    assert cell.injected, "the cell never reached the step of its fault"
    assert cell.met, "the fault was injected but no request took it"
    # No order twice at IBKR.
    coids = Counter(o.coid for o in account.orders)
    assert all(count == 1 for count in coids.values()), f"duplicate orders: {coids}"
    order = seen.orders["order"]
    statuses = seen.statuses.get(order.ref, [])
    assert statuses and statuses[0] == "Submitted", statuses
    assert statuses[-1] in FINAL, f"the order never ended: {statuses}"
    once = [s for s in statuses if s != "Partial"]
    assert len(once) == len(set(once)), f"a state notified twice: {statuses}"
    assert sum(s in FINAL for s in statuses) == 1, statuses
    # Fills: what the broker applied is what IBKR executed, none lost, none twice.
    mine = [o for o in account.orders if o.coid is not None and o.coid.endswith(f"-{order.ref}")]
    ids = {o.order_id for o in mine}
    executed = sum(e.quantity for e in account.executions if e.order_id in ids)
    assert order.executed.size == pytest.approx(executed)
    assert seen.position == account.positions.get(AAPL, 0)
    assert seen.cash == pytest.approx(account.cash, abs=0.01)
    # Every fault here is one the broker gets through: the order ends as without it.
    assert statuses[-1] in expected(step), f"{statuses}; messages: {seen.messages}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("step", STEPS)
def test_order_fault_cell(no_thread_leak: None, step: str, kind: str) -> None:
    with trading_sim(cash=100_000_000.0) as sim:
        seen, cell = run_cell(sim, step, kind)
        check(seen, cell, step)
