"""Brackets (parent ``cOID`` + children with ``parentId``) and OCA groups (``isSingleGroup``),
from IBKR's own request bodies."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.simulator.sim_trading import AAPL, ACCOUNT, TUESDAY, Oracle, Trader, sample, ticket

SECOND = timedelta(seconds=1)


@pytest.fixture
def quiet(trader: Trader) -> Iterator[Trader]:
    trader.post("/iserver/questions/suppress", json={"messageIds": ["o0", "o163", "o10331"]})
    yield trader


def _bracket(stop: float, target: float) -> list[dict[str, Any]]:
    """IBKR's V1 bracket example (MKT BUY 50 + STP and LMT SELL), around today's price."""
    orders = copy.deepcopy(sample("bracket_order_request_v1_doc")["orders"])
    for order in orders:
        order["acctId"] = ACCOUNT
    orders[1]["price"], orders[2]["price"] = stop, target
    return orders


def _ids(answer: list[dict[str, Any]]) -> list[int]:
    return [int(element["order_id"]) for element in answer]


def test_bracket_children_wait_for_the_parent_and_one_exit_cancels_the_other(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    oracle = Oracle(trading_sim)
    now = oracle.last(AAPL, TUESDAY)
    stop, target = now - 40, now + 40
    answer = quiet.place(*_bracket(stop / 100, target / 100))  # "side": "Buy" as V1 writes it
    assert len(answer) == 3 and answer[0]["local_order_id"] == "Parent"
    parent, stop_child, target_child = _ids(answer)
    truth = trading_sim.account
    assert truth.order(parent).status == "Filled"
    assert truth.order(stop_child).parent_id == parent == truth.order(target_child).parent_id
    assert quiet.status(stop_child)["child_order_type"] == "A"
    assert quiet.status(stop_child)["order_status"] == "PreSubmitted"  # stop not triggered
    assert quiet.status(target_child)["order_status"] == "Submitted"  # limit working

    horizon = TUESDAY + timedelta(hours=6)
    stop_at = oracle.find(AAPL, TUESDAY, horizon, lambda last: last <= stop)
    target_at = oracle.find(AAPL, TUESDAY, horizon, lambda last: last - 1 >= target)
    first, winner, loser = min(
        (t, w, lose)
        for t, w, lose in (
            (stop_at, stop_child, target_child),
            (target_at, target_child, stop_child),
        )
        if t is not None
    )
    trading_sim.set_time(first - SECOND)
    assert {trading_sim.account.order(i).status for i in (stop_child, target_child)} <= {
        "PreSubmitted",
        "Submitted",
    }
    trading_sim.advance(1)
    truth = trading_sim.account
    assert truth.order(winner).status == "Filled"
    assert truth.order(loser).status == "Cancelled" and truth.order(loser).filled == 0
    assert truth.positions == {}


def test_children_of_an_unfilled_parent_never_trade_and_go_with_it(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    parent = ticket(order_type="LMT", price=100.0, cOID="entry", tif="GTC")
    # A SELL stop above the market would trigger at once if it were active.
    child = ticket(side="SELL", order_type="STP", price=500.0, parentId="entry", tif="GTC")
    ids = _ids(quiet.place(parent, child))
    trading_sim.advance(3600)
    assert [trading_sim.account.order(i).status for i in ids] == ["Submitted", "PreSubmitted"]
    assert trading_sim.account.executions == ()
    answer = quiet.cancel(ids[0]).json()
    assert (answer["order_id"], answer["conid"]) == (ids[0], AAPL)  # working: PendingCancel
    trading_sim.advance(1)
    assert [trading_sim.account.order(i).status for i in ids] == ["Cancelled", "Cancelled"]

    day_parent = ticket(order_type="LMT", price=100.0, cOID="day")
    again = _ids(quiet.place(day_parent, {**child, "parentId": "day", "tif": "DAY"}))
    trading_sim.set_time(TUESDAY.replace(hour=21, minute=0, second=0))  # the DAY parent expires
    assert [trading_sim.account.order(i).status for i in again] == ["Cancelled", "Cancelled"]


def test_cancelling_a_child_cancels_its_sibling(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    ids = _ids(
        quiet.place(
            ticket(order_type="LMT", price=100.0, cOID="p", tif="GTC"),
            ticket(side="SELL", order_type="LMT", price=500.0, parentId="p", tif="GTC"),
            ticket(side="SELL", order_type="STP", price=50.0, parentId="p", tif="GTC"),
        )
    )
    quiet.cancel(ids[1])
    truth = trading_sim.account
    assert [truth.order(i).status for i in ids] == ["Submitted", "Cancelled", "Cancelled"]


def test_a_partly_filled_parent_releases_its_children_for_the_filled_quantity(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    _, _, _, ask_size = quiet.quote()
    ids = _ids(
        quiet.place(
            ticket(quantity=5000, cOID="big"),
            ticket(side="SELL", quantity=5000, order_type="LMT", price=500.0, parentId="big"),
        )
    )
    quiet.cancel(ids[0])  # frozen clock: only the first slice filled
    trading_sim.advance(1)
    truth = trading_sim.account
    assert (truth.order(ids[0]).status, truth.order(ids[0]).filled) == ("Cancelled", ask_size)
    child = truth.order(ids[1])
    assert (child.status, child.quantity) == ("Submitted", ask_size)


def test_oca_group_one_fill_cancels_the_others(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    oracle = Oracle(trading_sim)
    quiet.place(ticket(quantity=100))
    now = oracle.last(AAPL, TUESDAY)
    stop, target = now - 40, now + 40
    ids = _ids(
        quiet.place(
            ticket(side="SELL", order_type="LMT", price=target / 100, isSingleGroup=True),
            ticket(side="SELL", order_type="STP", price=stop / 100, isSingleGroup=True),
        )
    )
    groups = {quiet.status(i)["oca_group_id"] for i in ids}
    assert len(groups) == 1
    horizon = TUESDAY + timedelta(hours=6)
    target_at = oracle.find(AAPL, TUESDAY, horizon, lambda last: last - 1 >= target)
    stop_at = oracle.find(AAPL, TUESDAY, horizon, lambda last: last <= stop)
    trading_sim.set_time(min(t for t in (target_at, stop_at) if t is not None))
    statuses = sorted(trading_sim.account.order(i).status for i in ids)
    assert statuses == ["Cancelled", "Filled"]
    assert trading_sim.account.positions == {}


def test_ibkr_oca_and_trailing_bracket_examples_are_accepted(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    oca = copy.deepcopy(sample("oca_order_request_v1_doc")["orders"])
    for order in oca:
        order["acctId"] = ACCOUNT
    oca[1]["price"], oca[2]["price"] = 100.0, 500.0
    ids = _ids(quiet.place(*oca))
    truth = trading_sim.account
    assert [truth.order(i).status for i in ids] == ["Filled", "PreSubmitted", "Submitted"]
    assert truth.order(ids[1]).oca_group is None  # children keep bracket semantics

    trail = copy.deepcopy(sample("bracket_order_request_trail_awiseib")["orders"])
    for order in trail:
        order["conid"] = AAPL
    trail[1]["price"] = 100.0  # a SELL limit far below: marketable once the parent fills
    ids = _ids(quiet.place(*trail))
    assert trading_sim.account.order(ids[1]).status == "Submitted"  # evaluated from next second
    trading_sim.advance(1)
    truth = trading_sim.account
    assert [truth.order(i).status for i in ids] == ["Filled", "Filled", "Cancelled"]
