"""IBKRCPBroker against the simulator's order engine: the exact notification sequences a
strategy sees, and the account as IBKR holds it at the end."""

from __future__ import annotations

from typing import Any

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.broker.trading import ACCOUNT, run_script, trading_sim

AAPL = 265598


@pytest.fixture
def sim() -> Any:
    with trading_sim() as simulator:
        yield simulator


def test_a_market_buy_is_submitted_accepted_and_completed_at_ibkrs_price(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    def buy(strategy: Any) -> None:
        strategy.seen.orders["buy"] = strategy.buy(size=10)

    seen = run_script(sim, [(1, buy)])
    ref = seen.orders["buy"].ref
    assert seen.statuses[ref] == ["Submitted", "Accepted", "Completed"]
    account = sim.account
    assert account.positions == {AAPL: 10}
    (execution,) = account.executions
    size, price, comm = seen.executed[ref]
    assert (size, price, comm) == (10, execution.price, execution.commission)
    assert seen.position == 10
    assert seen.cash == pytest.approx(account.cash)
    (order,) = account.orders
    assert order.coid is not None and order.coid.endswith(f"-{ref}")


def test_a_limit_order_far_from_the_market_is_cancelled(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    def place(strategy: Any) -> None:
        price = round(strategy.data.close[0] * 0.8, 2)
        strategy.seen.orders["limit"] = strategy.buy(size=5, exectype=2, price=price)  # Limit

    def cancel(strategy: Any) -> None:
        strategy.cancel(strategy.seen.orders["limit"])

    seen = run_script(sim, [(1, place), (3, cancel)])
    ref = seen.orders["limit"].ref
    assert seen.statuses[ref] == ["Submitted", "Accepted", "Canceled"]
    assert sim.account.positions == {}
    assert [o.status for o in sim.account.orders] == ["Cancelled"]


def test_a_live_account_is_refused_before_anything_is_sent(no_thread_leak: None) -> None:
    from backtrader_ibkr_cp import LiveTradingRefused

    with trading_sim(account="U0000000", paper=False) as live:
        with pytest.raises(LiveTradingRefused, match="allow_live=True"):
            run_script(live, [])
        assert live.account.orders == ()
    _ = ACCOUNT
