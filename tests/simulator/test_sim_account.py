"""The account: ``/iserver/accounts``, the portfolio endpoints and their rules, the 1 request /
5 s limits, ground truth and order listeners, ``answer_lost``, and restarting on the same port."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from typing import Any

import pytest
import requests

from backtrader_ibkr_cp.simulator import GatewaySimulator, SimLimits
from backtrader_ibkr_cp.simulator.pacing import Pacer
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

PORTFOLIO_FIRST = {
    "error": "Bad Request: Please query /portfolio/accounts first",
    "statusCode": 400,
}


def _quiet(trader: Trader) -> Trader:
    trader.post("/iserver/questions/suppress", json={"messageIds": ["o0", "o163", "o10331"]})
    return trader


def test_iserver_accounts_serves_the_configured_account() -> None:
    with GatewaySimulator(speed=0, start=TUESDAY, account="U1234567", paper=False) as sim:
        trader = Trader(sim, query_accounts=False)
        body = trader.get("/iserver/accounts").json()
        assert (body["accounts"], body["selectedAccount"], body["isPaper"]) == (
            ["U1234567"],
            "U1234567",
            False,
        )
        trader.account = "U1234567"
        assert trader.place(ticket(order_type="LMT", price=100.0))[0]["order_id"].isdigit()
        assert sim.account.account_id == "U1234567"
        trader.close()
    with GatewaySimulator(speed=0, start=TUESDAY) as sim:
        trader = Trader(sim, query_accounts=False)
        body = trader.get("/iserver/accounts").json()
        assert (body["selectedAccount"], body["isPaper"]) == (ACCOUNT, True)
        selected = trader.post("/iserver/account", json={"acctId": ACCOUNT})
        assert selected.json() == sample("switch_account_already_set_conduit_fixture")
        invalid = trader.post("/iserver/account", json={"acctId": "DU1"})
        assert (invalid.status_code, invalid.json()) == (
            500,
            sample("switch_account_invalid_500_ibkr_spec"),
        )
        trader.close()
    with pytest.raises(ValueError, match="not an IBKR account id"):
        GatewaySimulator(account="paper-1")
    with pytest.raises(ValueError, match="cash"):
        GatewaySimulator(cash=-1.0)


def test_portfolio_endpoints_need_portfolio_accounts_first(trader: Trader) -> None:
    paths = ["summary", "ledger", "positions/0", f"position/{AAPL}"]
    for path in paths:
        response = trader.get(f"/portfolio/{ACCOUNT}/{path}")
        assert (response.status_code, response.json()) == (400, PORTFOLIO_FIRST)
    assert trader.post(f"/portfolio/{ACCOUNT}/positions/invalidate").json() == PORTFOLIO_FIRST
    accounts = trader.get("/portfolio/accounts").json()
    assert_like(accounts[0], sample("portfolio_accounts_ibkr_spec")[0])
    assert accounts[0]["id"] == accounts[0]["accountId"] == ACCOUNT
    for path in paths:
        assert trader.get(f"/portfolio/{ACCOUNT}/{path}").status_code == 200
    wrong = trader.get("/portfolio/DU1/summary")
    assert wrong.json() == {"error": "Bad Request: accountId is not valid: DU1", "statusCode": 400}


def test_summary_and_ledger_value_the_account(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    _quiet(trader).place(ticket(quantity=200))
    trader.get("/portfolio/accounts")
    truth = trading_sim.account
    price = truth.executions[0].price  # the last price is the ask the order paid, frozen clock
    summary = trader.get(f"/portfolio/{ACCOUNT}/summary").json()
    example = sample("portfolio_summary_ibkr_spec")
    assert set(summary) == set(example)
    for key, entry in summary.items():
        assert_like(entry, example[key], {"currency": "null for text values, as in the example"})
    assert summary["accountcode"]["value"] == ACCOUNT
    assert summary["totalcashvalue"]["amount"] == truth.cash
    assert summary["netliquidation"]["amount"] == pytest.approx(truth.cash + 200 * price)
    assert summary["grosspositionvalue"]["amount"] == pytest.approx(200 * price)
    assert summary["availablefunds"]["amount"] == pytest.approx(truth.cash)
    assert summary["netliquidation-c"]["amount"] == 0.0
    assert summary["totalcashvalue"]["timestamp"] == int(TUESDAY.timestamp() * 1000)

    ledger = trader.get(f"/portfolio/{ACCOUNT}/ledger").json()
    validate(ledger, "ledger")
    example_ledger = sample("portfolio_ledger_ibind")
    for currency in ("USD", "BASE"):
        assert_like(ledger[currency], example_ledger[currency])
    usd = ledger["USD"]
    assert usd["cashbalance"] == usd["settledcash"] == truth.cash
    assert usd["stockmarketvalue"] == pytest.approx(200 * price)
    assert usd["unrealizedpnl"] == pytest.approx(-1.0)  # the commission, at an unchanged price
    assert usd["timestamp"] == int(TUESDAY.timestamp())  # seconds here, not milliseconds


def test_positions_come_from_a_cache_until_invalidated(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    trader = _quiet(trader)
    trader.get("/portfolio/accounts")
    assert trader.get(f"/portfolio/{ACCOUNT}/positions/0").json() == []  # caches "nothing"
    trader.place(ticket(quantity=100))
    assert trader.get(f"/portfolio/{ACCOUNT}/positions/0").json() == []  # stale, as at IBKR
    invalidated = trader.post(f"/portfolio/{ACCOUNT}/positions/invalidate")
    assert invalidated.json() == sample("portfolio_positions_invalidate_ibkr_spec")
    (row,) = trader.get(f"/portfolio/{ACCOUNT}/positions/0").json()
    why = "IBKR fills it from its contract database; the simulator has none"
    assert_like(row, sample("portfolio_positions_ibind")[0], {"chineseName": why})
    execution = trading_sim.account.executions[0]
    assert (row["conid"], row["position"], row["acctId"]) == (AAPL, 100.0, ACCOUNT)
    assert row["avgCost"] == pytest.approx(execution.price + 0.01)  # commission included
    assert row["mktValue"] == pytest.approx(100 * execution.price)
    assert trader.get(f"/portfolio/{ACCOUNT}/positions/1").json() == []

    trader.place(ticket(quantity=100))
    assert trader.get(f"/portfolio/{ACCOUNT}/positions/0").json()[0]["position"] == 100.0
    trading_sim.advance(60)  # the cache is 60 simulated seconds old: refreshed
    assert trader.get(f"/portfolio/{ACCOUNT}/positions/0").json()[0]["position"] == 200.0


def test_position_by_conid_first_short_then_full(trader: Trader) -> None:
    _quiet(trader).place(ticket(quantity=100))
    trader.get("/portfolio/accounts")
    (short,) = trader.get(f"/portfolio/{ACCOUNT}/position/{AAPL}").json()
    recorded = sample("portfolio_position_by_conid_recorded_2023-09")[0]
    assert set(short) == set(recorded)
    assert_like(short, recorded)
    assert (short["multiplier"], short["strike"]) == (None, 0.0)
    (full,) = trader.get(f"/portfolio/{ACCOUNT}/position/{AAPL}").json()
    why = "IBKR fills these from its contract database; the simulator has none"
    assert_like(
        full,
        sample("portfolio_position_by_conid_stk_ibkr_spec")[0],
        {"chineseName": why, "group": why, "sector": why, "sectorGroup": why},
    )
    assert (full["multiplier"], full["strike"], full["avgCost"]) == (0.0, "0", short["avgCost"])
    assert trader.get(f"/portfolio/{ACCOUNT}/position/8314").json() == []


def test_one_request_per_5_seconds_limits() -> None:
    limits = SimLimits(total_per_second=1000)
    with GatewaySimulator(speed=0, start=TUESDAY, limits=limits, penalty_seconds=60) as sim:
        trader = Trader(sim)
        for path in ("/iserver/account/orders", "/iserver/account/trades", "/portfolio/accounts"):
            assert trader.get(path).status_code == 200
            limited = trader.get(path)
            assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
            sim.clear_penalty()
        assert sim.stats.rate_limited == 3
        trader.close()

    now = [0.0]
    pacer = Pacer(SimLimits(), 600.0, monotonic=lambda: now[0])
    assert pacer.admit("/iserver/account/orders").allowed
    now[0] = 4.9
    assert not pacer.admit("/iserver/account/orders").allowed
    pacer.clear_penalty()
    now[0] = 5.1  # five seconds after the first call
    assert pacer.admit("/iserver/account/orders").allowed
    assert pacer.admit("/iserver/account/trades").allowed  # its own window


def test_order_listeners_get_sor_and_str_messages_in_order(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    messages: list[dict[str, Any]] = []
    trading_sim.add_order_listener(messages.append)
    _quiet(trader)
    oid = trader.place_one(cOID="heard")
    assert [m["topic"] for m in messages] == ["sor", "sor", "str", "sor"]
    first, submitted, execution, filled = (m["args"][0] for m in messages)
    differ = {"price": "CW's example has a number; live orders send a string (or none for MKT)"}
    assert_like(first, sample("ws_sor_first_message_cw_doc")["args"][0], differ)
    assert (first["orderId"], first["status"], first["order_ref"]) == (oid, "PreSubmitted", "heard")
    assert submitted == {
        "acct": ACCOUNT,
        "orderId": oid,
        "status": "Submitted",
        "bgColor": "#000000",
        "fgColor": "#00F000",
    }
    str_differ = {
        "conid": "the CW example writes a string; /iserver/account/trades sends a number",
        "conidex": "the CW example writes conidex; /iserver/account/trades writes conidEx",
    }
    str_differ["size"] = "CW's example has an int; /iserver/account/trades sends 5.0"
    assert_like(execution, sample("ws_str_message_cw_doc")["args"][0], str_differ)
    assert execution["execution_id"] == trading_sim.account.executions[0].execution_id
    assert filled["status"] == "Filled" and filled["filledQuantity"] == 100.0
    assert {"acct", "orderId", "sizeAndFills", "remainingQuantity", "avgPrice"} <= set(filled)

    trading_sim.remove_order_listener(messages.append)
    trader.place_one()
    assert len(messages) == 4
    with pytest.raises(ValueError):
        trading_sim.remove_order_listener(messages.append)


def test_the_engine_keeps_time_without_requests() -> None:
    before_close = TUESDAY.replace(hour=20, minute=59, second=0)  # 15:59 New York
    with GatewaySimulator(seed=7, speed=20, start=before_close, limits=RELAXED) as sim:
        trader = _quiet(Trader(sim))
        expired = threading.Event()
        seen: list[dict[str, Any]] = []

        def listen(message: dict[str, Any]) -> None:
            seen.append(message)
            if message["args"][0].get("status") == "Cancelled":
                expired.set()

        oid = trader.place_one(order_type="LMT", price=100.0)
        assert sim.account.order(oid).status == "Submitted"  # placed before the close
        sim.add_order_listener(listen)
        requests_before = sum(sim.stats.requests.values())
        assert expired.wait(timeout=30), "the DAY order did not expire on the ticker"
        assert sum(sim.stats.requests.values()) == requests_before  # no request drove it
        last = seen[-1]["args"][0]
        assert (last["orderId"], last["lastExecutionTime"]) == (oid, "240305210000")
        trader.close()


def test_answer_lost_carries_out_the_request_then_drops_the_connection(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    _quiet(trader)
    orders_path = f"/iserver/account/{ACCOUNT}/orders"
    trading_sim.inject("answer_lost", path=orders_path)
    with pytest.raises(requests.ConnectionError):
        trader.submit(ticket(cOID="lost-1"))
    (placed,) = trading_sim.account.orders
    assert (placed.coid, placed.status) == ("lost-1", "Filled")
    again = trader.submit(ticket(cOID="lost-1"))  # a blind resend: refused, nothing doubled
    assert "Local order ID=lost-1 is already registered" in again.json()["error"]
    assert [o["order_ref"] for o in trader.live_orders()["orders"]] == ["lost-1"]

    trader.post("/iserver/questions/suppress/reset")
    reply_id = trader.submit(ticket(cOID="lost-2")).json()[0]["id"]
    trading_sim.inject("answer_lost", path="/iserver/reply")
    with pytest.raises(requests.ConnectionError):
        trader.reply(reply_id)
    assert trading_sim.account.orders[-1].coid == "lost-2"

    resting = trader.place_one(order_type="LMT", price=100.0, tif="GTC")
    trading_sim.inject("answer_lost", path="/iserver/account")
    with pytest.raises(requests.ConnectionError):
        trader.cancel(resting)
    assert trading_sim.account.order(resting).status == "PendingCancel"
    trading_sim.inject("answer_lost", path="/portfolio/accounts")
    with pytest.raises(requests.ConnectionError):
        trader.get("/portfolio/accounts")
    assert trader.get(f"/portfolio/{ACCOUNT}/ledger").ok  # the lost call still counted
    trading_sim.inject("answer_lost")  # the default targets market data
    with pytest.raises(requests.ConnectionError):
        trader.get("/iserver/marketdata/history", params={"conid": AAPL, "bar": "1min"})
    assert trading_sim.pending_faults == 0


def test_restart_on_the_same_port_at_once() -> None:
    first = GatewaySimulator(speed=0, start=TUESDAY).start()
    port = first.port
    with requests.Session() as http:  # a keep-alive connection the server then closes
        assert http.get(first.api_url + "/tickle", verify=first.cert_path, timeout=5).ok
        first.stop()
    with GatewaySimulator(speed=0, start=TUESDAY, port=port) as second:
        assert second.port == port
        response = requests.get(second.api_url + "/tickle", verify=second.cert_path, timeout=5)
        assert response.ok
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass  # nothing listens after stop


def test_account_truth_is_a_frozen_copy(trader: Trader, trading_sim: GatewaySimulator) -> None:
    truth = trading_sim.account
    _quiet(trader).place_one()
    assert truth.orders == () and truth.cash == 1_000_000.0
    later = trading_sim.account
    assert later.cash < truth.cash and later.positions == {AAPL: 100}
    with pytest.raises(KeyError, match="orders: 1149000001"):
        later.order(1)
    assert later.orders[0].placed_at == TUESDAY
    trading_sim.advance(timedelta(days=1).total_seconds())
    assert trading_sim.account.orders == later.orders


def test_the_desk_serves_what_a_websocket_subscription_starts_with(
    trader: Trader, trading_sim: GatewaySimulator
) -> None:
    # For the simulator's WebSocket (sor/str topics): the day's orders and trades as bodies.
    desk = trading_sim._ctx.trading
    oid = _quiet(trader).place_one(cOID="ws")
    assert [body["orderId"] for body in desk.order_bodies()] == [oid]
    assert desk.order_bodies() == trader.live_orders()["orders"]
    assert desk.trade_bodies() == trader.get("/iserver/account/trades").json()
    trading_sim.advance(86_400)
    assert desk.order_bodies() == [] and desk.trade_bodies() == []
    assert len(desk.trade_bodies(days=2)) == 1
