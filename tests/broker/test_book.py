"""The order book, pure: duplicate and out-of-order IBKR events, fills as deltas, bracket
children's fills matched through their status, external executions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from backtrader_ibkr_cp.models.orders import Execution, OrderStatus
from backtrader_ibkr_cp.trading import (
    Accepted,
    ExecType,
    External,
    Fill,
    Finished,
    OrderBook,
    OrderRequest,
    State,
    Tif,
)
from backtrader_ibkr_cp.trading.book import CLAIM_ROUNDS

T0 = datetime(2024, 3, 5, 15, 0, tzinfo=timezone.utc)
AAPL = 265598


def request(ref: int, size: float = 10, *, buy: bool = True, **kwargs: object) -> OrderRequest:
    return OrderRequest(ref, AAPL, buy, size, ExecType.MARKET, **kwargs)  # type: ignore[arg-type]


def execution(eid: str, size: float, *, coid: str | None, side: str = "BUY") -> Execution:
    return Execution(eid, coid, AAPL, side, size, 190.0, T0 + timedelta(seconds=len(eid)), 1.0)


def test_an_execution_is_applied_once_however_often_it_is_reported() -> None:
    book = OrderBook()
    book.track(request(1), "p-1")
    book.accepted(1, 101)
    for _ in range(3):
        book.execution(execution("e1", 4, coid="p-1"))
    fills = [o for o in book.take() if isinstance(o, Fill)]
    assert [f.size for f in fills] == [4]


def test_accepted_is_notified_once_and_before_a_fill_that_beats_it() -> None:
    book = OrderBook()
    book.track(request(1), "p-1")
    book.execution(execution("e1", 10, coid="p-1"))  # the fill arrives first
    book.accepted(1, 101)
    book.status(order_id=101, coid="p-1", status=OrderStatus.FILLED, filled=10)
    book.status_round()
    out = book.take()
    assert [type(o) for o in out] == [Accepted, Fill]
    assert book.state(1) is State.COMPLETED


def test_an_older_status_with_a_smaller_fill_changes_nothing() -> None:
    book = OrderBook()
    book.track(request(1), "p-1")
    book.accepted(1, 101)
    book.status(order_id=101, coid=None, status=OrderStatus.SUBMITTED, filled=6)
    book.status(order_id=101, coid=None, status=OrderStatus.SUBMITTED, filled=2)  # late
    book.execution(execution("e1", 6, coid="p-1"))
    book.status_round()
    assert [f.size for f in book.take() if isinstance(f, Fill)] == [6]
    assert book.state(1) is State.PARTIAL


def test_a_cancel_ends_only_after_every_reported_fill_is_applied() -> None:
    book = OrderBook()
    book.track(request(1), "p-1")
    book.accepted(1, 101)
    assert book.cancel_requested(1) is True
    assert book.cancel_requested(1) is False  # asked once
    book.status(order_id=101, coid="p-1", status=OrderStatus.CANCELLED, filled=3)
    book.status_round()
    assert not any(isinstance(o, Finished) for o in book.take())  # 3 filled, not applied yet
    book.execution(execution("e1", 3, coid="p-1"))
    out = book.take()
    assert [type(o) for o in out] == [Fill, Finished]
    assert out[-1].state is State.CANCELED  # type: ignore[union-attr]


def test_terminal_states_are_final() -> None:
    book = OrderBook()
    book.track(request(1), "p-1")
    book.refused(1, "no trading permissions")
    book.accepted(1, 101)
    book.status(order_id=101, coid=None, status=OrderStatus.CANCELLED, filled=0)
    book.status_round()
    out = book.take()
    assert out == [Finished(1, State.REJECTED, "no trading permissions")]


def test_money_refusals_are_margin() -> None:
    book = OrderBook()
    book.track(request(1), "p-1")
    book.refused(1, "YOUR ORDER IS NOT ACCEPTED... EQUITY WITH LOAN VALUE ... MUST EXCEED")
    assert book.take()[0].state is State.MARGIN  # type: ignore[union-attr]


def test_day_orders_cancelled_by_ibkr_expire_and_gtc_ones_are_cancelled() -> None:
    book = OrderBook()
    book.track(request(1, tif=Tif.DAY), "p-1")
    book.track(request(2, tif=Tif.GTC), "p-2")
    book.accepted(1, 101)
    book.accepted(2, 102)
    book.status(order_id=101, coid=None, status=OrderStatus.CANCELLED, filled=0)
    book.status(order_id=102, coid=None, status=OrderStatus.CANCELLED, filled=0)
    book.status_round()
    finished = {o.ref: o.state for o in book.take() if isinstance(o, Finished)}
    assert finished == {1: State.EXPIRED, 2: State.CANCELED}


def test_a_bracket_childs_fill_is_matched_through_its_status_and_its_sibling_is_cancelled() -> None:
    book = OrderBook()
    book.track(request(1), "p-1")
    book.track(request(2, buy=False, parent_ref=1, tif=Tif.DAY), None)  # stop
    book.track(request(3, buy=False, parent_ref=1, tif=Tif.DAY), None)  # limit
    for ref, oid in ((1, 101), (2, 102), (3, 103)):
        book.accepted(ref, oid)
    book.execution(execution("e1", 10, coid="p-1"))
    # the limit child fills: its execution (no cOID) comes before its status
    book.execution(execution("e2", 10, coid=None, side="SELL"))
    book.status(order_id=103, coid=None, status=OrderStatus.FILLED, filled=10)
    book.status(order_id=102, coid=None, status=OrderStatus.CANCELLED, filled=0)
    book.status_round()
    out = book.take()
    fills = {o.ref: o.size for o in out if isinstance(o, Fill)}
    assert fills == {1: 10, 3: 10}
    finished = [o for o in out if isinstance(o, Finished)]
    assert finished == [Finished(2, State.CANCELED, "its bracket or OCA sibling filled")]


def test_executions_nobody_claims_are_reported_as_external() -> None:
    book = OrderBook()
    book.track(request(1), "p-1")
    book.accepted(1, 101)
    book.execution(execution("other", 5, coid="someone-else"))
    book.execution(execution("manual", 5, coid=None, side="SELL"))
    external = [o for o in book.take() if isinstance(o, External)]
    assert [e.execution.execution_id for e in external] == ["other"]
    for _ in range(CLAIM_ROUNDS):
        book.status_round()
    external = [o for o in book.take() if isinstance(o, External)]
    assert [e.execution.execution_id for e in external] == ["manual"]


def test_executions_before_the_run_are_ignored() -> None:
    book = OrderBook()
    book.seen(["old"])
    book.execution(execution("old", 5, coid=None))
    for _ in range(CLAIM_ROUNDS):
        book.status_round()
    assert book.take() == []
