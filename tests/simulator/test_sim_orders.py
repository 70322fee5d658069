"""Order endpoints over HTTPS: answers, questions and replies, refusals, modify, cancel, live
orders, order status and trades, each shaped like IBKR's sample bodies and schemas."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.simulator.sim_trading import (
    AAPL,
    ACCOUNT,
    RELAXED,
    TUESDAY,
    Trader,
    assert_like,
    sample,
    ticket,
    validate,
)

QUERY_ACCOUNTS_FIRST = {"error": "Bad Request: Please query /accounts first", "statusCode": 400}


def test_order_endpoints_need_iserver_accounts_first() -> None:
    with GatewaySimulator(speed=0, start=TUESDAY, limits=RELAXED) as sim:
        trader = Trader(sim, query_accounts=False)
        calls = [
            trader.submit(ticket()),
            trader.get("/iserver/account/orders"),
            trader.get("/iserver/account/order/status/1149000001"),
            trader.get("/iserver/account/trades"),
            trader.cancel(1149000001),
            trader.modify(1149000001, price=1.0),
        ]
        for response in calls:
            assert (response.status_code, response.json()) == (400, QUERY_ACCOUNTS_FIRST)
        assert sim.account.orders == ()
        trader.get("/iserver/accounts")
        assert trader.place(ticket())[0]["order_status"] == "PreSubmitted"
        trader.close()


def test_market_order_question_answer_and_fill_at_the_ask(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    bid, ask, _, _ = trader.quote()
    question = trader.submit(ticket(cOID="buy-1"))
    assert question.status_code == 200
    body = question.json()
    validate(body, "orderReplyMessage")
    recorded = sample("place_order_reply_question_o0_recorded_2023-09")
    assert_like(body[0], recorded[0])
    assert body[0]["message"] == recorded[0]["message"]
    assert body[0]["messageIds"] == ["o0"] and body[0]["isSuppressed"] is False
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", body[0]["id"]
    )

    placed = trader.reply(body[0]["id"])
    answer = placed.json()
    validate(answer, "orderSubmitSuccess")
    assert_like(answer[0], sample("place_order_success_recorded_2023-09")[0])
    assert answer[0]["order_status"] == "PreSubmitted"  # as real paper answers, even for MKT
    assert answer[0]["local_order_id"] == "buy-1"
    assert answer[0]["order_id"].isdigit()

    truth = trading_sim.account
    (execution,) = truth.executions
    assert (execution.side, execution.quantity, execution.price) == ("BUY", 100, ask)
    assert truth.order(int(answer[0]["order_id"])).status == "Filled"

    sold = trader.place(ticket(side="SELL"))
    assert trading_sim.account.order(int(sold[0]["order_id"])).avg_price == bid
    assert ask == pytest.approx(bid + 0.01)


def test_reply_ids_are_single_use_and_a_new_submission_drops_them(trader: Trader) -> None:
    first = trader.submit(ticket()).json()[0]["id"]
    assert trader.reply(first).ok
    stale = trader.reply(first)
    assert stale.status_code == 400
    assert stale.json() == {"error": f"reply id not found: '{first}'"}
    validate(stale.json(), "orderSubmitError")
    assert_like(stale.json(), sample("reply_not_found_ibkr_spec"))

    pending = trader.submit(ticket()).json()[0]["id"]
    other = trader.submit(ticket(side="SELL")).json()[0]["id"]
    assert pending != other
    assert trader.reply(pending).status_code == 400  # dropped by the second submission
    assert trader.reply(other).ok
    assert trader.reply("not-a-reply-id").json() == {
        "error": "reply id not found: 'not-a-reply-id'"
    }
    assert trader.post(f"/iserver/reply/{other}", json={}).status_code == 400


def test_declining_a_question_discards_the_order(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    reply_id = trader.submit(ticket(cOID="maybe")).json()[0]["id"]
    declined = trader.reply(reply_id, confirmed=False)
    assert (declined.status_code, declined.json()) == (
        200,
        sample("place_order_error_not_confirmed_ibkr_spec"),
    )
    assert trading_sim.account.orders == ()
    assert trader.reply(reply_id).status_code == 400
    assert trader.place(ticket(cOID="maybe"))[0]["local_order_id"] == "maybe"  # cOID still free


def test_question_chain_for_a_stop_limit_far_from_the_market(trader: Trader) -> None:
    bid, ask, _, _ = trader.quote()
    far = round(ask * 0.9, 2)  # a limit 10% away: IBKR's 3% percentage constraint asks o163
    response = trader.submit(
        ticket(order_type="STOP_LIMIT", side="SELL", price=far, auxPrice=round(bid - 0.5, 2))
    )
    first = response.json()[0]
    assert first["messageIds"] == ["o163"]
    expected = (
        f'The following order "SELL 100 AAPL NASDAQ.NMS @ {far}" price exceeds \n'
        "the Percentage constraint of 3%.\nAre you sure you want to submit this order?"
    )
    assert first["message"] == [expected]
    assert_like(first, sample("place_order_reply_question_o163_v1_doc")[0])
    second = trader.reply(first["id"]).json()[0]
    assert second["messageIds"] == ["o10331"] and second["id"] != first["id"]
    assert second["message"][0].startswith("You are about to submit a stop order.")
    done = trader.reply(second["id"]).json()
    assert done[0]["order_status"] == "PreSubmitted"


def test_suppressed_questions_are_not_asked_until_reset(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    answer = trader.post("/iserver/questions/suppress", json={"messageIds": ["o0", "o163"]})
    assert answer.json() == sample("suppress_ibkr_spec")
    assert trader.submit(ticket()).json()[0]["order_status"] == "PreSubmitted"

    assert trader.post("/iserver/questions/suppress/reset").json() == sample(
        "suppress_reset_ibkr_spec"
    )
    assert trader.submit(ticket()).json()[0]["messageIds"] == ["o0"]

    # o403 is the suppressible id V1 lists for the same text: it silences o0 too.
    trader.post("/iserver/questions/suppress", json={"messageIds": ["o403"]})
    assert "order_id" in trader.submit(ticket()).json()[0]
    # Suppression lasts for the brokerage session.
    trader.post("/iserver/reauthenticate")
    trader.get("/iserver/accounts")
    assert trader.submit(ticket()).json()[0]["messageIds"] == ["o0"]

    refused = trader.post("/iserver/questions/suppress", json={"messageIds": ["o9999"]})
    assert refused.status_code == 400 and "o163" in refused.json()["error"]
    too_many = trader.post("/iserver/questions/suppress", json={"messageIds": ["o0"] * 52})
    assert too_many.status_code == 500


def test_no_market_data_asks_o354(trader: Trader, trading_sim: GatewaySimulator) -> None:
    trading_sim.set_availability(AAPL, "N")
    body = trader.submit(ticket(order_type="LMT", price=1.0)).json()[0]
    expected = sample("place_order_reply_question_o354_ibkr_spec")[0]
    assert (body["messageIds"], body["message"]) == (expected["messageIds"], expected["message"])


def test_duplicate_coid_is_refused_for_24_hours(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    trader.place(ticket(cOID="once"))
    again = trader.submit(ticket(cOID="once"))
    refusal = {"error": "Order couldn't be submitted: Local order ID=once is already registered."}
    assert (again.status_code, again.json()) == (200, refusal)
    twice = trader.submit(ticket(cOID="twin"), ticket(side="SELL", cOID="twin"))
    assert twice.json() == {
        "error": "Order couldn't be submitted: Local order ID=twin is already registered."
    }
    assert len(trading_sim.account.orders) == 1
    trading_sim.advance(86_400)  # a day later (Wednesday 10:00:30) the cOID is free again
    assert trader.place(ticket(cOID="once"))[0]["local_order_id"] == "once"


def test_insufficient_funds_is_a_200_reject_with_ibkr_text() -> None:
    with GatewaySimulator(seed=7, speed=0, start=TUESDAY, limits=RELAXED, cash=10_000) as sim:
        trader = Trader(sim)
        trader.post("/iserver/questions/suppress", json={"messageIds": ["o0", "o163"]})
        refused = trader.submit(ticket(quantity=100))  # about USD 15,800 of AAPL
        assert refused.status_code == 200
        text = refused.json()["error"]
        assert re.fullmatch(
            r"YOUR ORDER IS NOT ACCEPTED\. IN ORDER TO OBTAIN THE DESIRED POSITION YOUR EQUITY "
            r"WITH LOAN VALUE \[10000\.00 USD\] MUST EXCEED THE INITIAL MARGIN \[\d+\.\d\d USD\]",
            text,
        )
        assert "error" in trader.submit(ticket(quantity=100, side="SELL")).json()  # a short too
        assert sim.account.orders == ()
        # A working buy reserves its value (60 x USD 100): 30 more shares no longer fit.
        trader.place(ticket(order_type="LMT", price=100.0, quantity=60))
        assert "error" in trader.submit(ticket(quantity=30)).json()
        assert trader.place(ticket(quantity=20))[0]["order_status"] == "PreSubmitted"
        assert trader.place(ticket(quantity=20, side="SELL"))  # closing always passes
        assert sim.account.positions == {}
        trader.close()


@pytest.mark.parametrize(
    ("fields", "status", "error"),
    [
        ({"side": None}, 400, "side is required in every order ticket"),
        ({"orderType": "LIMIT"}, 500, "orderType 'LIMIT' is not supported; use one of"),
        ({"quantity": "10"}, 400, "quantity must be a number, got '10'"),
        ({"orderType": "LMT"}, 400, "LMT orders need price"),
        ({"orderType": "LMT", "price": 150.005}, 200, "The price does not conform to the"),
        ({"quantity": 1.5}, 200, "quantity must be a whole number of shares > 0, got 1.5"),
        ({"orderType": "MOC", "tif": "GTC"}, 200, "Invalid time-in-force for at-the-closing"),
        ({"conid": 1}, 200, "No security definition has been found for the request"),
        ({"conid": 38708077}, 200, "trades in MXN; the simulated account trades USD"),
        ({"tif": "FOK"}, 200, "tif 'FOK' is not supported; use one of DAY, GTC, IOC, OPG, GTD"),
        ({"parentId": "nobody"}, 200, "parentId 'nobody' matches no cOID"),
        ({"acctId": "DU1"}, 400, "acctId 'DU1' is not an account of this session"),
    ],
)
def test_bad_tickets_are_refused_as_ibkr_refuses_them(
    trader: Trader, fields: dict[str, Any], status: int, error: str
) -> None:
    body = {k: v for k, v in {**ticket(), **fields}.items() if v is not None}
    response = trader.submit(body)
    assert response.status_code == status
    assert response.json()["error"].startswith(error) or error in response.json()["error"]
    if status == 400:
        assert response.json()["statusCode"] == 400


def test_bodies_and_paths_ibkr_does_not_take(trader: Trader) -> None:
    path = f"/iserver/account/{ACCOUNT}/orders"
    assert (
        trader.post(path, data=b"{", headers={"Content-Type": "application/json"}).json()[
            "statusCode"
        ]
        == 400
    )
    assert trader.post(path, json={"orders": []}).status_code == 400
    bare = trader.post(path, json=[ticket(order_type="LMT", price=155.0)])  # IBKR 2.13's form
    assert "order_id" in trader.confirm_all(bare)[0][0]
    wrong = trader.post("/iserver/account/DU9999999/orders", json={"orders": [ticket()]})
    assert wrong.json() == {
        "error": "Bad Request: accountId is not valid: DU9999999",
        "statusCode": 400,
    }
    assert trader.get(path).status_code == 405


def test_live_orders_first_call_empty_then_the_book_and_force(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    oid = trader.place_one(order_type="LMT", price=100.0, tif="GTC", cOID="far-away")
    filled = trader.place_one(cOID="mkt")
    first = trader.get("/iserver/account/orders")
    assert first.json() == sample("live_orders_first_call_recorded_2023-09")
    validate(first.json(), "liveOrdersResponse")
    book = trader.get("/iserver/account/orders").json()
    assert book["snapshot"] is True
    assert [o["orderId"] for o in book["orders"]] == [filled, oid]  # newest first
    done, working = book["orders"]
    recorded = sample("live_orders_second_call_recorded_2023-09")["orders"][0]
    assert_like(done, recorded, {"acct": "same type", "conidex": "same type"})
    assert (done["status"], done["timeInForce"], done["orderDesc"]) == (
        "Filled",
        "CLOSE",  # IBKR shows DAY orders as CLOSE here
        "Bought 100 Market, Day",
    )
    assert done["sizeAndFills"] == "100" and done["order_ref"] == "mkt"
    assert_like(working, sample("live_orders_orders_array_ibind")[0])
    assert (working["status"], working["price"], working["sizeAndFills"]) == (
        "Submitted",
        "100.00",
        "0/100",
    )
    assert working["orderDesc"] == "Buy 100 Limit 100.00, GTC"

    assert trader.get("/iserver/account/orders", params={"force": "true"}).json() == {
        "orders": [],
        "snapshot": False,
    }
    assert len(trader.get("/iserver/account/orders").json()["orders"]) == 2
    filtered = trader.get("/iserver/account/orders", params={"filters": "filled"}).json()
    assert [o["orderId"] for o in filtered["orders"]] == [filled]
    by_time = trader.get("/iserver/account/orders", params={"filters": "sort_by_time"}).json()
    assert [o["orderId"] for o in by_time["orders"]] == [oid, filled]  # working first
    bad = trader.get("/iserver/account/orders", params={"filters": "Whatever"})
    assert bad.status_code == 400 and "pre_submitted" in bad.json()["error"]

    trading_sim.advance(86_400)  # the next day: yesterday's filled order is gone
    assert [o["orderId"] for o in trader.live_orders()["orders"]] == [oid]


def test_order_status_shape_and_unknown_order(trader: Trader) -> None:
    oid = trader.place_one(order_type="LMT", price=100.0, tif="GTC")
    body = trader.status(oid)
    assert_like(body, sample("order_status_presubmitted_ibind"))
    assert (body["order_id"], body["order_status"], body["limit_price"]) == (
        oid,
        "Submitted",
        "100.00",
    )
    assert body["side"] == "B" and body["tif"] == "GTC" and body["size"] == "100.0"
    assert body["order_not_editable"] is False and body["cannot_cancel_order"] is False

    filled = trader.place_one(cOID="status-mkt")
    done = trader.status(filled)
    assert_like(done, sample("order_status_ibkr_spec"))
    assert (done["order_status"], done["order_ccp_status"], done["cum_fill"]) == (
        "Filled",
        "2",
        "100.0",
    )
    assert done["size"] == "0.0" and done["order_type"] == "MARKET" and done["tif"] == "DAY"
    assert done["order_description"] == "Bought 100 Market, Day"
    missing = trader.get("/iserver/account/order/status/42")
    assert missing.status_code == 503
    assert missing.json() == {"error": "Order 42 is not found", "statusCode": 503}


def test_trades_shape_commission_and_days(trader: Trader, trading_sim: GatewaySimulator) -> None:
    trader.place(ticket(cOID="first-fill"))
    trades = trader.get("/iserver/account/trades").json()
    (execution,) = trades
    assert_like(execution, sample("trades_ibkr_spec")[0])
    truth = trading_sim.account.executions[0]
    assert execution["execution_id"] == truth.execution_id
    assert execution["order_ref"] == "first-fill"
    assert execution["commission"] == "1.00" and execution["side"] == "B"
    assert execution["price"] == f"{truth.price:.2f}"
    assert execution["trade_time"] == "20240305-15:00:30"
    assert execution["trade_time_r"] == int(TUESDAY.timestamp() * 1000)
    assert execution["order_description"] == f"Bot 100 @ {truth.price:.2f} on ISLAND"
    assert execution["net_amount"] == pytest.approx(100 * truth.price)

    trading_sim.advance(86_400)
    assert trader.get("/iserver/account/trades/").json() == []  # ibind's trailing slash
    assert len(trader.get("/iserver/account/trades", params={"days": "2"}).json()) == 1
    assert trader.get("/iserver/account/trades", params={"days": "8"}).status_code == 400


def test_modify_keeps_the_id_and_can_make_an_order_fill(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    _, ask, _, _ = trader.quote()
    oid = trader.place_one(order_type="LMT", price=round(ask - 1, 2), cOID="mod")
    answer = trader.modify(oid, price=round(ask - 0.5, 2))
    assert answer.json() == [
        {"order_id": str(oid), "local_order_id": "mod", "order_status": "Submitted",
         "encrypt_message": "1"}
    ]  # fmt: skip
    validate(answer.json(), "orderSubmitSuccess")
    assert trading_sim.account.order(oid).price == round(ask - 0.5, 2)
    marketable = trader.modify(oid, price=round(ask + 0.05, 2))
    assert marketable.json()[0]["order_status"] == "Filled"
    assert trading_sim.account.order(oid).avg_price == ask

    assert trader.modify(oid, price=1.0).json() == {
        "error": f"Order {oid} cannot be modified: it is Filled."
    }
    assert trader.modify(1, price=1.0).json() == {"error": "OrderID 1 doesn't exist"}
    other = trader.place_one(order_type="LMT", price=100.0)
    assert trader.modify(other, side="SELL").json() == {
        "error": "side cannot be modified (BUY -> SELL)"
    }
    asked = trader.modify(other, price=round(ask * 0.5, 2)).json()
    assert asked[0]["messageIds"] == ["o163"]
    assert trader.reply(asked[0]["id"]).json()[0]["order_id"] == str(other)


def test_cancel_working_pending_then_cancelled_and_held_at_once(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    working = trader.place_one(order_type="LMT", price=100.0, tif="GTC")
    answer = trader.cancel(working)
    assert answer.json() == {
        "msg": "Request was submitted",
        "order_id": working,
        "conid": AAPL,
        "account": ACCOUNT,
    }
    assert_like(answer.json(), sample("cancel_order_success_v1_doc"))
    assert trading_sim.account.order(working).status == "PendingCancel"
    assert trader.cancel(working).json()["order_id"] == working  # asking twice is harmless
    trading_sim.advance(1)
    assert trading_sim.account.order(working).status == "Cancelled"

    _, ask, _, _ = trader.quote()
    held = trader.place_one(order_type="STP", side="BUY", price=round(ask + 5, 2))
    assert trading_sim.account.order(held).status == "PreSubmitted"
    immediate = trader.cancel(held).json()
    assert immediate == {"msg": "Request was submitted", "order_id": held, "conid": -1,
                         "account": None}  # fmt: skip
    assert_like(immediate, sample("cancel_order_immediate_conduit_fixture"))
    assert trading_sim.account.order(held).status == "Cancelled"

    assert trader.cancel(1).json() == sample("cancel_order_error_v1_doc")
    assert trader.cancel(held).json() == {
        "error": f"OrderId {held} that needs to be cancelled cannot be cancelled, state: Cancelled."
    }
    a = trader.place_one(order_type="LMT", price=100.0)
    b = trader.place_one(order_type="LMT", price=101.0)
    assert trader.cancel(-1).json()["order_id"] == -1
    trading_sim.advance(1)
    assert {trading_sim.account.order(i).status for i in (a, b)} == {"Cancelled"}


def test_order_statuses_follow_the_session(trader: Trader, trading_sim: GatewaySimulator) -> None:
    oid = trader.place_one(order_type="LMT", price=100.0, tif="GTC")
    assert trader.status(oid)["order_status"] == "Submitted"
    trading_sim.set_time(TUESDAY.replace(hour=21, minute=0, second=0))  # 16:00 New York
    assert trader.status(oid)["order_status"] == "PreSubmitted"
    trading_sim.advance(timedelta(hours=17, minutes=30).total_seconds())  # Wed 09:30
    assert trader.status(oid)["order_status"] == "Submitted"
    saved = trader.place_one(order_type="LMT", price=100.0, deactivated=True)
    assert trader.status(saved)["order_status"] == "Inactive"
    answer, asked = trader.confirm_all(trader.modify(saved, deactivated=False))
    assert (answer[0]["order_status"], asked) == ("Submitted", ["o163"])


def test_orders_live_on_while_the_session_is_lost_and_the_new_session_starts_cold(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    trader.post("/iserver/questions/suppress", json={"messageIds": ["o0", "o163"]})
    trader.live_orders()  # primed in this session
    working = trader.place_one(order_type="LMT", price=100.0)
    pending = trader.submit(ticket(order_type="STP", price=500.0)).json()[0]["id"]  # o10331
    trading_sim.expire_session()
    assert trader.get("/iserver/account/orders").status_code == 401
    trading_sim.set_time(TUESDAY.replace(hour=21, minute=0, second=0))
    assert trading_sim.account.order(working).status == "Cancelled"  # expired meanwhile
    trader.post("/iserver/reauthenticate")
    assert trader.get("/iserver/account/orders").json() == QUERY_ACCOUNTS_FIRST
    trader.get("/iserver/accounts")
    assert trader.reply(pending).status_code == 400  # replies die with the session
    assert trader.get("/iserver/account/orders").json() == {"orders": [], "snapshot": False}
    (order,) = trader.get("/iserver/account/orders").json()["orders"]
    assert (order["orderId"], order["status"]) == (working, "Cancelled")
    assert trader.submit(ticket(order_type="LMT", price=100.0)).json()[0]["messageIds"] == ["o163"]
