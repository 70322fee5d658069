"""IBKRCPBroker against the simulator's order engine: the exact notification sequences a
strategy sees for every order type, and the account as IBKR holds it at the end."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import backtrader as bt
import pytest

from backtrader_ibkr_cp import IBKRCPStore, LiveTradingRefused
from backtrader_ibkr_cp.cassettes import ACCOUNT_PLACEHOLDER
from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.wire import ACCOUNT_ID, COID_PLACEHOLDER, COID_PREFIX
from tests.broker.trading import RELAXED_SIM, run_script, trading_sim
from tests.simulator.sim_trading import Trader
from tests.support.instants import NY

AAPL = 265598
SUBMITTED_ACCEPTED = ["Submitted", "Accepted"]


@pytest.fixture
def sim() -> Any:
    with trading_sim() as simulator:
        yield simulator


def place(name: str, **kwargs: Any) -> Any:
    """A script action: ``strategy.buy``/``sell`` (``side``) with ``kwargs``; prices given as
    a factor of the last close (``price_x``, ``plimit_x``)."""

    def action(strategy: Any) -> None:
        args = dict(kwargs)
        side = args.pop("side", "buy")
        close = strategy.data.close[0]
        for key in ("price", "plimit"):
            factor = args.pop(f"{key}_x", None)
            if factor is not None:
                args[key] = round(close * factor, 2)
        strategy.seen.orders[name] = getattr(strategy, side)(**args)

    return action


def cancel(name: str) -> Any:
    def action(strategy: Any) -> None:
        strategy.cancel(strategy.seen.orders[name])

    return action


def ref(seen: Any, name: str) -> int:
    return int(seen.orders[name].ref)


def test_a_market_buy_is_submitted_accepted_and_completed_at_ibkrs_price(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    seen = run_script(sim, [(1, place("buy", size=10))])
    assert seen.statuses[ref(seen, "buy")] == [*SUBMITTED_ACCEPTED, "Completed"]
    account = sim.account
    assert account.positions == {AAPL: 10}
    (execution,) = account.executions
    assert seen.executed[ref(seen, "buy")] == (10, execution.price, execution.commission)
    assert seen.position == 10
    assert seen.cash == pytest.approx(account.cash)
    (order,) = account.orders
    assert order.coid is not None and order.coid.endswith(f"-{ref(seen, 'buy')}")


def test_a_limit_order_far_from_the_market_is_cancelled(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    seen = run_script(
        sim,
        [(1, place("limit", size=5, exectype=bt.Order.Limit, price_x=0.8)), (3, cancel("limit"))],
    )
    assert seen.statuses[ref(seen, "limit")] == [*SUBMITTED_ACCEPTED, "Canceled"]
    assert sim.account.positions == {}
    assert [o.status for o in sim.account.orders] == ["Cancelled"]


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("limit", {"exectype": bt.Order.Limit, "price_x": 1.02}),
        ("stop", {"exectype": bt.Order.Stop, "price_x": 0.999}),
        ("stoplimit", {"exectype": bt.Order.StopLimit, "price_x": 0.999, "plimit_x": 1.02}),
        ("trail", {"exectype": bt.Order.StopTrail, "trailamount": 0.01}),
        (
            "traillimit",
            {"exectype": bt.Order.StopTrailLimit, "trailpercent": 0.0001, "plimit_x": 1.05},
        ),
        ("close", {"exectype": bt.Order.Close, "valid": 0}),
    ],
)
def test_every_order_type_fills_through_ibkr(
    no_thread_leak: None, sim: GatewaySimulator, kind: str, kwargs: dict[str, Any]
) -> None:
    """A buy of each type that the market reaches at once (a limit above it, stops just
    below the last price so a buy stop triggers on the next up-tick...)."""
    if kind == "close":  # market on close: let the clock reach 16:00
        sim.set_time(dt.datetime(2024, 3, 5, 15, 50, tzinfo=NY))
    seen = run_script(sim, [(1, place(kind, size=10, **kwargs))], after=0)
    assert seen.statuses[ref(seen, kind)] == [*SUBMITTED_ACCEPTED, "Completed"]
    assert sim.account.positions == {AAPL: 10}


def test_partial_fills_are_notified_once_each_then_completed(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    seen = run_script(sim, [(1, place("big", size=4_000))])
    statuses = seen.statuses[ref(seen, "big")]
    executions = sim.account.executions
    assert len(executions) >= 2  # IBKR filled it in pieces
    assert statuses == [*SUBMITTED_ACCEPTED, *["Partial"] * (len(executions) - 1), "Completed"]
    size, price, comm = seen.executed[ref(seen, "big")]
    assert size == 4_000
    assert price == pytest.approx(sum(e.quantity * e.price for e in executions) / 4_000)
    assert comm == pytest.approx(sum(e.commission for e in executions))


def test_a_question_declined_by_policy_rejects_the_order(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    seen = run_script(
        sim, [(1, place("mkt", size=10))], broker={"questions": "reject", "suppress": False}
    )
    assert seen.statuses[ref(seen, "mkt")] == ["Submitted", "Rejected"]
    assert sim.account.orders == ()
    assert any("declined IBKR's question" in m and "o0" in m for m in seen.messages)


def test_questions_are_confirmed_and_reported_by_default(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    seen = run_script(sim, [(1, place("mkt", size=10))], broker={"suppress": False})
    assert seen.statuses[ref(seen, "mkt")] == [*SUBMITTED_ACCEPTED, "Completed"]
    assert any("confirmed IBKR's question (o0" in m for m in seen.messages)


def test_not_enough_money_is_margin_with_ibkrs_reason(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    seen = run_script(sim, [(1, place("huge", size=100_000))])
    assert seen.statuses[ref(seen, "huge")] == ["Submitted", "Margin"]
    assert sim.account.orders == ()
    assert any("EQUITY WITH LOAN" in m.upper() for m in seen.messages)


def test_a_day_order_expires_at_the_close(no_thread_leak: None, sim: GatewaySimulator) -> None:
    sim.set_time(dt.datetime(2024, 3, 5, 15, 50, tzinfo=NY))
    seen = run_script(
        sim,
        [(1, place("day", size=5, exectype=bt.Order.Limit, price_x=0.8, valid=bt.Order.DAY))],
        after=0,
    )
    assert seen.statuses[ref(seen, "day")] == [*SUBMITTED_ACCEPTED, "Expired"]
    (order,) = sim.account.orders
    assert order.status == "Cancelled"


def test_an_unsupported_order_is_rejected_in_next_not_raised(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    seen = run_script(sim, [(1, place("bad", size=10, exectype=bt.Order.Limit))])  # no price
    assert seen.statuses[ref(seen, "bad")] == ["Submitted", "Rejected"]
    assert any("needs a price" in m for m in seen.messages)


def test_a_three_leg_bracket_fills_the_parent_then_one_child_and_cancels_the_other(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    def bracket(strategy: Any) -> None:
        close = strategy.data.close[0]
        parent, stop, limit = strategy.buy_bracket(
            size=10,
            exectype=bt.Order.Market,
            stopprice=round(close * 0.5, 2),
            limitprice=round(close * 0.999, 2),
        )
        strategy.seen.orders.update(parent=parent, stop=stop, limit=limit)

    seen = run_script(sim, [(1, bracket)])
    assert seen.statuses[ref(seen, "parent")] == [*SUBMITTED_ACCEPTED, "Completed"]
    assert seen.statuses[ref(seen, "limit")] == [*SUBMITTED_ACCEPTED, "Completed"]
    assert seen.statuses[ref(seen, "stop")] == [*SUBMITTED_ACCEPTED, "Canceled"]
    assert sim.account.positions == {}
    assert ("closed", pytest.approx(seen.trades[-1][1])) == seen.trades[-1]
    orders = {o.order_type: o for o in sim.account.orders}
    assert orders["STP"].parent_id == orders["MKT"].order_id  # one request (parentId = cOID)


def test_a_two_leg_bracket(no_thread_leak: None, sim: GatewaySimulator) -> None:
    def bracket(strategy: Any) -> None:
        close = strategy.data.close[0]
        parent, _none, limit = strategy.buy_bracket(
            size=10, exectype=bt.Order.Market, stopexec=None, limitprice=round(close * 0.999, 2)
        )
        strategy.seen.orders.update(parent=parent, limit=limit)

    seen = run_script(sim, [(1, bracket)])
    assert seen.statuses[ref(seen, "parent")] == [*SUBMITTED_ACCEPTED, "Completed"]
    assert seen.statuses[ref(seen, "limit")] == [*SUBMITTED_ACCEPTED, "Completed"]
    assert sim.account.positions == {}


def test_cancelling_a_bracket_parent_cancels_its_children(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    def bracket(strategy: Any) -> None:
        close = strategy.data.close[0]
        parent, stop, limit = strategy.buy_bracket(
            size=10, price=round(close * 0.8, 2), stopprice=round(close * 0.7, 2),
            limitprice=round(close * 0.9, 2),
        )  # fmt: skip
        strategy.seen.orders.update(parent=parent, stop=stop, limit=limit)

    seen = run_script(sim, [(1, bracket), (3, cancel("parent"))])
    for name in ("parent", "stop", "limit"):
        assert seen.statuses[ref(seen, name)] == [*SUBMITTED_ACCEPTED, "Canceled"], name
    assert {o.status for o in sim.account.orders} == {"Cancelled"}


def test_oco_orders_created_together_cancel_each_other(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    def oco(strategy: Any) -> None:
        close = strategy.data.close[0]
        first = strategy.buy(size=10, exectype=bt.Order.Limit, price=round(close * 1.02, 2))
        second = strategy.buy(
            size=10, exectype=bt.Order.Limit, price=round(close * 0.8, 2), oco=first
        )
        strategy.seen.orders.update(first=first, second=second)

    seen = run_script(sim, [(1, oco)])
    assert seen.statuses[ref(seen, "first")] == [*SUBMITTED_ACCEPTED, "Completed"]
    assert seen.statuses[ref(seen, "second")] == [*SUBMITTED_ACCEPTED, "Canceled"]
    assert sim.account.positions == {AAPL: 10}


def test_a_late_oco_order_is_rejected_with_how_to(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    def first(strategy: Any) -> None:
        close = strategy.data.close[0]
        strategy.seen.orders["first"] = strategy.buy(
            size=10, exectype=bt.Order.Limit, price=round(close * 0.8, 2)
        )

    def late(strategy: Any) -> None:
        close = strategy.data.close[0]
        strategy.seen.orders["late"] = strategy.buy(
            size=10, exectype=bt.Order.Limit, price=round(close * 0.7, 2),
            oco=strategy.seen.orders["first"],
        )  # fmt: skip

    seen = run_script(sim, [(1, first), (3, late), (4, cancel("first"))])
    assert seen.statuses[ref(seen, "late")] == ["Submitted", "Rejected"]
    assert any("same next()" in m for m in seen.messages)


def test_a_round_trip_gives_a_closed_trade_with_ibkrs_prices(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    seen = run_script(sim, [(1, place("buy", size=10)), (3, place("sell", side="sell", size=10))])
    assert [kind for kind, _ in seen.trades] == ["open", "closed"]
    buy, sell = sim.account.executions
    assert seen.trades[-1][1] == pytest.approx((sell.price - buy.price) * 10)
    assert sim.account.positions == {}
    assert seen.cash == pytest.approx(sim.account.cash)


def test_a_restart_loads_the_accounts_position_and_close_sells_it(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    run_script(sim, [(1, place("buy", size=10))])
    assert sim.account.positions == {AAPL: 10}
    IBKRCPStore._reset()

    def close(strategy: Any) -> None:
        strategy.seen.orders["close"] = strategy.close()

    seen = run_script(sim, [(1, close)])
    assert seen.statuses[ref(seen, "close")] == [*SUBMITTED_ACCEPTED, "Completed"]
    assert sim.account.positions == {}
    assert any("the account holds 10" in m for m in seen.messages)


def test_a_live_account_is_refused_before_anything_is_sent(no_thread_leak: None) -> None:
    with trading_sim(account="U0000000", paper=False) as live:
        with pytest.raises(LiveTradingRefused, match="allow_live=True"):
            run_script(live, [])
        assert live.account.orders == ()


def test_orders_and_fills_made_outside_the_strategy_are_reported_and_adopted(
    no_thread_leak: None,
) -> None:
    """Someone trades the account in the IBKR app during the run: the open order and the
    execution are reported, and the strategy's position follows the account. (The other
    program's requests are not paced with the store's: the simulator's limit on the total
    rate is lifted so they cause no 429.)"""

    def outside(strategy: Any) -> None:
        trader = Trader(sim)
        trader.place_one(conid=AAPL, side="BUY", quantity=5, orderType="MKT", tif="DAY")
        close = strategy.data.close[0]
        trader.place_one(
            conid=AAPL, side="BUY", quantity=1, orderType="LMT", price=round(close * 0.8, 2),
            tif="GTC",
        )  # fmt: skip
        strategy.seen.orders["mine"] = strategy.buy(size=1)

    with trading_sim(limits=replace(RELAXED_SIM, total_per_second=1000)) as sim:
        seen = run_script(sim, [(1, outside)], after=8)
        held = sim.account.positions[AAPL]
    assert seen.statuses[ref(seen, "mine")] == [*SUBMITTED_ACCEPTED, "Completed"]
    assert any("an order not placed by this run is open at IBKR" in m for m in seen.messages)
    assert any("an execution not caused by this run: BUY 5" in m for m in seen.messages)
    assert any("the account holds 6, the strategy 1" in m for m in seen.messages)
    assert seen.position == held == 6


def test_a_recorded_trading_run_keeps_no_account_cookie_or_run_prefix(
    no_thread_leak: None, sim: GatewaySimulator, tmp_path: Path
) -> None:
    cassette = tmp_path / "trading.json"
    seen = run_script(
        sim,
        [(1, place("buy", size=10))],
        store={"cassette": str(cassette), "record_mode": "once"},
    )
    assert seen.statuses[ref(seen, "buy")] == [*SUBMITTED_ACCEPTED, "Completed"]
    raw = cassette.read_text()
    (order,) = sim.account.orders
    assert order.coid is not None and COID_PREFIX.match(order.coid)
    prefix = order.coid.rpartition("-")[0]
    assert f"/iserver/account/{ACCOUNT_PLACEHOLDER}/orders" in raw  # the order was recorded
    assert f"{COID_PLACEHOLDER}{ref(seen, 'buy')}" in raw
    assert prefix not in raw
    assert ACCOUNT_ID.search(raw) is None
    assert "cookie" not in raw.lower()


def test_order_updates_are_pushed_over_the_socket(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    """With the store streaming (the default), IBKR's order and trade pushes reach the
    strategy without waiting for a poll: the broker's polls are set a minute apart here."""
    seen = run_script(
        sim,
        [(1, place("buy", size=10))],
        broker={"orders_every": 60.0, "account_every": 60.0},
    )
    assert seen.statuses[ref(seen, "buy")] == [*SUBMITTED_ACCEPTED, "Completed"]
    assert sim.stats.ws_messages["sor"] > 0 and sim.stats.ws_messages["str"] > 0
    assert sim.stats.requests.get("/iserver/account/trades", 0) == 1  # the start's only
    (execution,) = sim.account.executions
    assert seen.executed[ref(seen, "buy")] == (10, execution.price, execution.commission)
    assert seen.position == 10 and seen.cash == pytest.approx(sim.account.cash)
