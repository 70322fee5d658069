"""IBKRCPBroker through IBKR's real Client Portal Gateway, in front of the simulator's order
engine: a live run that trades (market, limit, cancel, bracket) ends with the broker's state
equal to the account IBKR (the simulator) holds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import backtrader as bt
import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.simulator.realgateway import RealGateway
from tests.broker.trading import ACCOUNT, RELAXED_SIM, SPEED, run_script
from tests.gateway.stack import RELAXED_LIMITS, new_simulator

AAPL = 265598


@pytest.fixture
def trading_stack(real_gateway_dist: Path) -> Iterator[tuple[GatewaySimulator, RealGateway]]:
    limits = replace(
        RELAXED_LIMITS,
        live_orders_per_5s=RELAXED_SIM.live_orders_per_5s,
        trades_per_5s=RELAXED_SIM.trades_per_5s,
        portfolio_accounts_per_5s=RELAXED_SIM.portfolio_accounts_per_5s,
    )
    with (
        new_simulator(seed=3, speed=SPEED, limits=limits, account=ACCOUNT) as sim,
        RealGateway(sim.port, dist=real_gateway_dist) as gw,
    ):
        yield sim, gw


def test_a_live_run_trades_through_the_real_gateway(
    trading_stack: tuple[GatewaySimulator, RealGateway],
) -> None:
    sim, gw = trading_stack

    def open_positions(strategy: Any) -> None:
        close = strategy.data.close[0]
        orders = strategy.seen.orders
        orders["market"] = strategy.buy(size=10)
        orders["limit"] = strategy.buy(size=5, exectype=bt.Order.Limit, price=round(close * 0.8, 2))

    def bracket(strategy: Any) -> None:
        close = strategy.data.close[0]
        strategy.cancel(strategy.seen.orders["limit"])
        parent, stop, limit = strategy.buy_bracket(
            size=7,
            exectype=bt.Order.Market,
            stopprice=round(close * 0.5, 2),
            limitprice=round(close * 0.999, 2),  # marketable: fills once the parent has
        )
        strategy.seen.orders.update(parent=parent, stop=stop, take=limit)

    seen = run_script(
        sim, [(1, open_positions), (3, bracket)], store={"gateway_url": gw.url}, after=2
    )
    names = {name: order.ref for name, order in seen.orders.items()}
    assert seen.statuses[names["market"]] == ["Submitted", "Accepted", "Completed"]
    assert seen.statuses[names["limit"]] == ["Submitted", "Accepted", "Canceled"]
    assert seen.statuses[names["parent"]] == ["Submitted", "Accepted", "Completed"]
    assert seen.statuses[names["take"]] == ["Submitted", "Accepted", "Completed"]
    assert seen.statuses[names["stop"]] == ["Submitted", "Accepted", "Canceled"]
    account = sim.account
    assert account.positions == {AAPL: 10}
    assert seen.position == 10
    assert seen.cash == pytest.approx(account.cash, abs=0.01)
    coids = [o.coid for o in account.orders if o.coid is not None]
    assert len(coids) == len(set(coids)) == 3  # market, limit, bracket parent: none twice
    assert sum(e.quantity for e in account.executions) == 10 + 7 + 7
