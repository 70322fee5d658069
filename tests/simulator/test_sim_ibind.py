"""A client nobody here wrote: Voyz/ibind's ``IbkrClient`` trades against the simulator over
HTTPS, verifying the simulator's certificate (``cacert=sim.cert_path``), with its own question
answers, ``live_orders``, ``order_status``, ``positions``, ``portfolio_summary``,
``modify_order``, ``cancel_order`` and ``trades``."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.simulator.sim_trading import AAPL, ACCOUNT

os.environ.setdefault("IBIND_LOG_TO_FILE", "False")  # ibind reads it on import
from ibind import ExternalBrokerError, IbkrClient, OrderRequest, QuestionType

ANSWERS = {
    QuestionType.TRIGGER_AND_FILL: True,
    QuestionType.PRICE_PERCENTAGE_CONSTRAINT: True,
    QuestionType.STOP_ORDER_RISKS: True,
}


@pytest.fixture
def ibkr(trading_sim: GatewaySimulator) -> Iterator[IbkrClient]:
    client = IbkrClient(
        account_id=ACCOUNT,
        url=trading_sim.api_url + "/",
        cacert=trading_sim.cert_path,
        timeout=10,
        max_retries=0,
        use_session=True,
        auto_register_shutdown=False,
    )
    yield client
    client.close()


def _order(**fields: object) -> OrderRequest:
    values: dict[str, object] = {
        "conid": AAPL,
        "side": "BUY",
        "quantity": 10,
        "order_type": "MKT",
        "acct_id": ACCOUNT,
        "tif": "DAY",
    }
    values.update(fields)
    return OrderRequest(**values)  # type: ignore[arg-type]


def test_ibind_trades_against_the_simulator(
    ibkr: IbkrClient, trading_sim: GatewaySimulator
) -> None:
    assert ibkr.receive_brokerage_accounts().data["selectedAccount"] == ACCOUNT

    placed = ibkr.place_order(_order(coid="ibind-mkt"), ANSWERS).data
    order_id = int(placed["order_id"])  # ibind unwraps the one-element answer
    assert placed["order_status"] == "PreSubmitted"
    truth = trading_sim.account.order(order_id)
    assert (truth.coid, truth.status, truth.filled) == ("ibind-mkt", "Filled", 10)

    assert ibkr.live_orders().data == {"orders": [], "snapshot": False}  # IBKR's cold call
    (live,) = ibkr.live_orders().data["orders"]
    assert (live["orderId"], live["status"], live["order_ref"]) == (order_id, "Filled", "ibind-mkt")
    status = ibkr.order_status(str(order_id)).data
    assert (status["order_id"], status["order_status"]) == (order_id, "Filled")

    far = round(truth.avg_price * 0.9, 2)  # asks o163 (price constraint) then ibind answers
    resting = ibkr.place_order(_order(order_type="LMT", price=far, tif="GTC"), ANSWERS).data
    resting_id = int(resting["order_id"])
    modified = ibkr.modify_order(
        resting_id, _order(order_type="LMT", price=round(far - 1, 2), tif="GTC"), ANSWERS
    ).data
    assert modified["order_id"] == str(resting_id)
    assert trading_sim.account.order(resting_id).price == round(far - 1, 2)
    cancelled = ibkr.cancel_order(str(resting_id)).data
    assert cancelled == {
        "msg": "Request was submitted",
        "order_id": resting_id,
        "conid": AAPL,
        "account": ACCOUNT,
    }
    trading_sim.advance(1)
    assert trading_sim.account.order(resting_id).status == "Cancelled"

    with pytest.raises(ExternalBrokerError, match="already registered"):
        ibkr.place_order(_order(coid="ibind-mkt"), ANSWERS)

    (trade,) = ibkr.trades().data
    assert (trade["order_ref"], trade["size"], trade["commission"]) == ("ibind-mkt", 10.0, "1.00")


def test_ibind_reads_the_portfolio_after_portfolio_accounts(
    ibkr: IbkrClient, trading_sim: GatewaySimulator
) -> None:
    ibkr.receive_brokerage_accounts()
    ibkr.place_order(_order(quantity=25), ANSWERS)
    with pytest.raises(ExternalBrokerError) as refused:  # ibind does not pre-call it; IBKR asks
        ibkr.positions()
    assert refused.value.status_code == 400
    assert ibkr.portfolio_accounts().data[0]["accountId"] == ACCOUNT
    (position,) = ibkr.positions().data
    assert (position["conid"], position["position"]) == (AAPL, 25.0)
    summary = ibkr.portfolio_summary().data
    assert summary["totalcashvalue"]["amount"] == trading_sim.account.cash
    ledger = ibkr.get_ledger().data
    assert ledger["USD"]["cashbalance"] == trading_sim.account.cash
    assert ibkr.invalidate_backend_portfolio_cache().data == {"message": "success"}
    assert ibkr.positions_by_conid(ACCOUNT, str(AAPL)).data[0]["position"] == 25.0


def test_ibind_suppression_and_a_declined_question(ibkr: IbkrClient) -> None:
    ibkr.receive_brokerage_accounts()
    with pytest.raises(ValueError, match="No answer found"):  # ibind needs an answer per text
        ibkr.place_order(_order(), {})
    assert ibkr.suppress_messages(["o0"]).data == {"status": "submitted"}
    assert ibkr.place_order(_order(), {}).data["order_status"] == "PreSubmitted"
    assert ibkr.reset_suppressed_messages().data == {"status": "submitted"}
    with pytest.raises(RuntimeError, match="not given a positive reply"):
        ibkr.place_order(_order(), {QuestionType.TRIGGER_AND_FILL: False})
