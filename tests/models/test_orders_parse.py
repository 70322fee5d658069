"""Order, answer, execution, account and portfolio parsers on IBKR's real sample bodies
(tests/fixtures/orders/, provenance in its SOURCES.md)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backtrader_ibkr_cp.errors import ConfigError, DataIntegrityError
from backtrader_ibkr_cp.models.accounts import (
    parse_iserver_accounts,
    parse_portfolio_accounts,
    parse_switch_account,
)
from backtrader_ibkr_cp.models.answers import (
    Accepted,
    CancelRequested,
    DuplicateOrderId,
    Prompt,
    Question,
    Rejected,
    ReplyExpired,
    classify_error,
    parse_cancel_answer,
    parse_place_answer,
)
from backtrader_ibkr_cp.models.orders import (
    OrderStatus,
    parse_executions,
    parse_live_order,
    parse_live_orders,
    parse_order_status,
)
from backtrader_ibkr_cp.models.portfolio import parse_ledger, parse_positions, parse_summary
from backtrader_ibkr_cp.models.readers import read_id
from backtrader_ibkr_cp.models.tickets import OrderTicket, ticket_body
from backtrader_ibkr_cp.wire import ACCOUNT_ID

FIXTURES = Path(__file__).parents[1] / "fixtures" / "orders"


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# -- place / modify / reply answers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "order_id", "status"),
    [
        ("place_order_success_ibkr_spec", 1370093239, OrderStatus.PRE_SUBMITTED),
        ("place_order_success_recorded_2023-09", 1149239278, OrderStatus.PRE_SUBMITTED),
        ("place_order_success_object_wd_doc", 987654, OrderStatus.SUBMITTED),
        ("reply_success_v1_doc", 1234567890, OrderStatus.SUBMITTED),
        ("modify_order_success_ibkr_spec", 1370093239, OrderStatus.PRE_SUBMITTED),
    ],
)
def test_accepted_answers_have_int_order_ids(name: str, order_id: int, status: OrderStatus) -> None:
    answer = parse_place_answer(load(name))
    assert isinstance(answer, Accepted)
    assert answer.order_id == order_id and isinstance(answer.order_id, int)
    assert answer.orders[0].status is status
    assert answer.orders[0].status_text == status.value


def test_a_bracket_answer_has_one_accepted_order_per_leg_and_echoes_coids() -> None:
    body = [
        {"order_id": "11", "local_order_id": "run-1", "order_status": "PreSubmitted"},
        {"order_id": "12", "order_status": "PreSubmitted", "encrypt_message": "1"},
        {"order_id": "13", "order_status": "Weird"},
    ]
    answer = parse_place_answer(body)
    assert isinstance(answer, Accepted)
    assert [o.order_id for o in answer.orders] == [11, 12, 13]
    assert [o.coid for o in answer.orders] == ["run-1", None, None]
    assert answer.orders[2].status is OrderStatus.UNKNOWN
    assert answer.orders[2].status_text == "Weird"


@pytest.mark.parametrize(
    ("name", "reply_id", "message_id", "fragment"),
    [
        (
            "place_order_reply_question_o354_ibkr_spec",
            "99097238-9824-4830-84ef-46979aa22593",
            "o354",
            "without market data",
        ),
        (
            "place_order_reply_question_o163_v1_doc",
            "07a13a5a-4a48-44a5-bb25-5ab37b79186c",
            "o163",
            "Percentage constraint of 3%",
        ),
        (
            "place_order_reply_question_o0_recorded_2023-09",
            "8647ed1d-862b-4c58-95ff-ae6dd6893871",
            "o0",
            "trigger and fill immediately",
        ),
        (
            "modify_order_reply_question_stop_v1_doc",
            "a12b34c5-d678-9e012f-3456-7a890b12cd3e",
            "o0",
            "stop order",
        ),
    ],
)
def test_questions(name: str, reply_id: str, message_id: str, fragment: str) -> None:
    answer = parse_place_answer(load(name))
    assert isinstance(answer, Question)
    assert answer.reply_id == reply_id
    assert answer.message_ids == (message_id,)
    assert fragment in answer.text
    assert "Are you sure" in answer.text


def test_a_question_wins_over_accepted_elements_and_options_are_kept() -> None:
    body = [
        {"order_id": "1", "order_status": "PreSubmitted"},
        {"id": "r-2", "message": ["Sure?"], "messageIds": ["o163"], "messageOptions": ["Yes"]},
    ]
    answer = parse_place_answer(body)
    assert answer == Question("r-2", ("Sure?",), ("o163",), ("Yes",))


def test_server_prompt() -> None:
    answer = parse_place_answer(load("place_order_prompt_p12_ibkr_spec"))
    assert isinstance(answer, Prompt)
    assert answer.message_id == "p12" and answer.order_id == 123456789
    assert answer.request_id == "22170"
    assert answer.options == ("Use on this order", "Always use", "Do not use")
    assert answer.text.endswith("Use the Price Management Algo?")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("place_order_error_not_confirmed_ibkr_spec", "Order not confirmed"),
        ("place_order_reject_200_v1_doc", "We cannot accept an order at the limit price"),
        ("modify_order_error_ibkr_spec", "OrderID 123456 doesn't exist"),
    ],
)
def test_rejections(name: str, text: str) -> None:
    answer = parse_place_answer(load(name))
    assert type(answer) is Rejected
    assert answer.text.startswith(text) and answer.http_status == 200


def test_a_stale_reply_id_is_a_rejection_naming_the_id() -> None:
    answer = parse_place_answer(load("reply_not_found_ibkr_spec"), http_status=400)
    assert isinstance(answer, ReplyExpired) and isinstance(answer, Rejected)
    assert answer.reply_id == "99097238-9824-4830-84ef-46979aa22593"
    assert answer.http_status == 400


@pytest.mark.parametrize(
    ("text", "coid"),
    [
        ("Order couldn't be submitted: Local order ID=run7-42 is already registered.", "run7-42"),
        ("local order id=A.B:c is already registered", "A.B:c"),
    ],
)
def test_a_duplicate_coid_is_its_own_case_not_a_rejection(text: str, coid: str) -> None:
    answer = parse_place_answer({"error": text})
    assert isinstance(answer, DuplicateOrderId) and not isinstance(answer, Rejected)
    assert answer.coid == coid
    assert classify_error(text, 400) == DuplicateOrderId(coid, " ".join(text.split()), 400)


def test_rejection_texts_lose_account_ids() -> None:
    answer = classify_error("Account DU1234567 has no trading permissions.")
    assert answer == Rejected("Account <account> has no trading permissions.")


@pytest.mark.parametrize("body", [[], {}, [1], [{"foo": 1}], "x", None, {"order_id": "abc"}])
def test_bodies_in_none_of_ibkrs_shapes_are_data_integrity_errors(body: object) -> None:
    with pytest.raises(DataIntegrityError):
        parse_place_answer(body)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["order_id", "order_status", "id", "message", "messageIds", "error"])
            | st.text(max_size=6),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@given(JSON)
def test_any_json_is_an_answer_or_a_data_integrity_error(body: object) -> None:
    try:
        answer = parse_place_answer(body)
    except DataIntegrityError:
        return
    assert isinstance(answer, (Accepted, Question, Prompt, Rejected, DuplicateOrderId))


# -- cancel ---------------------------------------------------------------------------------


def test_cancel_answers() -> None:
    v1 = parse_cancel_answer(load("cancel_order_success_v1_doc"))
    assert v1 == CancelRequested(123456789, "Request was submitted", 265598, False, "U0000000")
    immediate = parse_cancel_answer(load("cancel_order_immediate_conduit_fixture"))
    assert isinstance(immediate, CancelRequested)
    assert immediate.immediate and immediate.conid is None and immediate.account is None
    assert immediate.order_id == 602801486
    spec = parse_cancel_answer(load("cancel_order_success_ibkr_spec"))
    assert isinstance(spec, CancelRequested) and spec.order_id == 1370093239
    error = parse_cancel_answer(load("cancel_order_error_v1_doc"))
    assert error == Rejected("OrderID 1 doesn't exist")


# -- live orders, status, executions --------------------------------------------------------


def test_live_orders_first_call_is_empty_and_not_a_snapshot() -> None:
    for name in ("live_orders_first_call_recorded_2023-09", "live_orders_empty_conduit_fixture"):
        orders = parse_live_orders(load(name))
        assert orders.orders == () and orders.snapshot is False


def test_live_orders_second_call_recorded() -> None:
    orders = parse_live_orders(load("live_orders_second_call_recorded_2023-09"))
    assert orders.snapshot is True
    first = orders.orders[0]
    assert first.order_id == 1149239278 and first.conid == 265598
    assert first.status is OrderStatus.FILLED and first.status.final
    assert first.side == "BUY" and first.order_type == "MARKET"
    assert first.time_in_force == "CLOSE"  # a DAY order, as IBKR shows it here
    assert first.total_size == 100.0  # no totalSize in this capture: filled + remaining
    assert first.avg_price == 176.32 and first.price is None and first.coid is None
    assert first.last_execution_time == utc(2023, 9, 12, 15, 18, 4)
    assert orders.by_order_id(1149239268) is orders.orders[1]


def test_live_orders_from_ibind_carry_coid_and_string_prices() -> None:
    orders = [parse_live_order(item) for item in load("live_orders_orders_array_ibind")]
    first = orders[0]
    assert first.coid == "240103-SPY-1-BUY-L@457-bxv8"
    assert first.price == 457.0 and first.status is OrderStatus.PRE_SUBMITTED
    assert first.remaining_quantity == 1.0 and first.filled_quantity == 0.0
    assert first.outside_rth is False and first.account == "DUMMY_ACCOUNT_ID123"


def test_live_orders_spec_and_doc_examples() -> None:
    spec = parse_live_orders(load("live_orders_ibkr_spec")).orders[0]
    assert spec.total_size == 2806.46 and spec.price == 0.9 and spec.avg_price == 0.8908
    assert spec.currency == "CAD" and spec.sec_type == "CASH"
    doc = parse_live_orders(load("live_orders_filled_wd_doc"))
    assert doc.by_coid("Order123") is doc.orders[0]
    assert doc.by_coid("nope") is None
    sor = parse_live_order(load("ws_sor_first_message_cw_doc")["args"][0])
    assert sor.price == 372.0 and sor.status is OrderStatus.SUBMITTED


def test_order_status_examples() -> None:
    filled = parse_order_status(load("order_status_ibkr_spec"))
    assert filled.order_id == 1799796559 and filled.side == "SELL"
    assert filled.status is OrderStatus.FILLED
    assert (filled.total_size, filled.filled_quantity, filled.remaining_quantity) == (5, 5, 0)
    assert filled.avg_price == 192.26 and filled.order_type == "MARKET"
    assert filled.order_time == utc(2023, 12, 11, 18, 0, 49)
    assert not filled.editable and not filled.cancellable
    working = parse_order_status(load("order_status_presubmitted_ibind"))
    assert working.side == "BUY" and working.limit_price == 457.0
    assert working.editable and working.cancellable and working.time_in_force == "GTC"
    assert working.avg_price is None and working.child_order_type == "3"


def test_executions_normalise_strings_and_times() -> None:
    (trade,) = parse_executions(load("trades_ibkr_spec"))
    assert trade.execution_id == "0000e0d5.6576fd38.01.01" and trade.coid == "Order123"
    assert trade.side == "SELL" and trade.size == 5.0
    assert trade.price == 192.26 and trade.commission == 1.01 and trade.net_amount == 961.3
    assert trade.time == utc(2023, 12, 11, 18, 0, 49)
    assert trade.conid == 265598
    (ws,) = parse_executions(load("ws_str_message_cw_doc")["args"])
    assert ws.conid == 265598 and ws.side == "BUY"  # conid sent as a string there


def test_an_execution_without_its_trade_time_ms_falls_back_to_trade_time() -> None:
    item = dict(load("trades_ibkr_spec")[0])
    del item["trade_time_r"]
    assert parse_executions([item])[0].time == utc(2023, 12, 11, 18, 0, 49)
    item["commission"] = "NA"
    assert parse_executions([item])[0].commission is None


@given(st.integers(min_value=0, max_value=2**62))
def test_ids_as_ints_or_digit_strings_are_the_same_int(number: int) -> None:
    assert read_id(number, "/x", "id") == read_id(str(number), "/x", "id") == number


@given(st.sampled_from([s for s in OrderStatus if s is not OrderStatus.UNKNOWN]), st.data())
def test_status_words_parse_in_any_case(status: OrderStatus, data: st.DataObject) -> None:
    word = "".join(c.upper() if data.draw(st.booleans()) else c.lower() for c in status.value)
    assert OrderStatus.parse(word) is status


@given(st.text(max_size=20))
def test_any_other_status_word_is_unknown_or_a_state(text: str) -> None:
    assert isinstance(OrderStatus.parse(text), OrderStatus)


def test_filter_spellings_parse_too() -> None:
    assert OrderStatus.parse("pre_submitted") is OrderStatus.PRE_SUBMITTED
    assert OrderStatus.parse("ApiCancelled") is OrderStatus.UNKNOWN


# -- accounts and portfolio -----------------------------------------------------------------


def test_iserver_accounts() -> None:
    accounts = parse_iserver_accounts(load("iserver_accounts_ibkr_spec_example"))
    assert accounts.accounts == ("All", "U0000000", "U0000001", "U0000002")
    assert accounts.selected_account == "U0000000" and accounts.is_paper is True
    assert accounts.supports_fractions["U0000001"] is True
    assert accounts.supports_cash_qty["All"] is False
    assert accounts.count == 4


def test_switch_account_answers() -> None:
    switched = parse_switch_account(load("switch_account_ibkr_spec"))
    assert switched.switched and not switched.already_selected
    already = parse_switch_account(load("switch_account_already_set_conduit_fixture"))
    assert already.already_selected and not already.switched
    with pytest.raises(DataIntegrityError):
        parse_switch_account({"something": "else"})


def test_portfolio_accounts() -> None:
    (spec,) = parse_portfolio_accounts(load("portfolio_accounts_ibkr_spec"))
    assert spec.account_id == "DU0000002" and spec.account_type == "DEMO"
    assert spec.currency == "USD" and spec.brokerage_access and not spec.fa_client
    assert spec.status_time == utc(2020, 5, 29, 4, 0)
    (ibind,) = parse_portfolio_accounts(load("portfolio_accounts_ibind"))
    assert ibind.trading_type == "STKNOPT" and ibind.display_name == "Geralt of Rivia"


def test_summary_amounts_and_the_account_moved_out_of_values() -> None:
    summary = parse_summary(load("portfolio_summary_ibkr_spec"))
    assert summary.net_liquidation == 206415536.0
    assert summary.total_cash_value == 205646432.0
    assert summary.available_funds == 205266944.0
    assert summary.buying_power == 821079744.0 and summary.currency == "USD"
    assert summary.values["cushion"].text == "0.994598"
    assert summary.amount("netliquidation-s") == 205913808.0
    assert "accountcode" not in summary.values and summary.account == "DU0000002"
    assert len(summary.values) == 113


def test_ledgers() -> None:
    spec = parse_ledger(load("portfolio_ledger_ibkr_spec"))
    assert set(spec.entries) == {"CAD", "USD", "BASE"}
    base = spec.base
    assert base is not None and base.cash_balance == -435667.94
    assert base.net_liquidation_value == 1456360.9
    assert base.timestamp == utc(2024, 4, 10, 21, 33, 5)  # epoch seconds here
    assert spec.entries["CAD"].exchange_rate == 0.73095405
    ibind = parse_ledger(load("portfolio_ledger_ibind"))
    assert ibind.entries["USD"].settled_cash == 985376.94


def test_positions() -> None:
    btc, option, ibm = parse_positions(load("portfolio_positions_ibkr_spec"))
    assert btc.position == 0.00365831 and btc.asset_class == "CRYPTO"
    assert option.multiplier == 100.0 and option.avg_cost == 5801.0401
    assert option.avg_price == 58.010401 and option.ticker == "SPY"
    assert ibm.conid == 8314 and ibm.multiplier is None and ibm.has_secdef
    (short,) = parse_positions(load("portfolio_position_by_conid_recorded_2023-09"))
    assert short.position == 200.0 and not short.has_secdef and short.ticker is None
    (put,) = parse_positions(load("portfolio_position_by_conid_nosecdef_ibkr_spec"))
    assert put.position == -1.0 and put.avg_cost == 4229.1637
    assert parse_positions([]) == []
    assert parse_positions(load("portfolio_positions_ibind"))[0].unrealized_pnl == 1701.0


PARSED = [
    lambda: parse_iserver_accounts(load("iserver_accounts_ibkr_spec_example")),
    lambda: parse_switch_account(load("switch_account_ibkr_spec")),
    lambda: parse_portfolio_accounts(load("portfolio_accounts_ibkr_spec")),
    lambda: parse_summary(load("portfolio_summary_ibkr_spec")),
    lambda: parse_ledger(load("portfolio_ledger_ibkr_spec")),
    lambda: parse_positions(load("portfolio_positions_ibkr_spec")),
    lambda: parse_live_orders(load("live_orders_ibkr_spec")),
    lambda: parse_order_status(load("order_status_ibkr_spec")),
    lambda: parse_executions(load("trades_ibkr_spec")),
    lambda: parse_cancel_answer(load("cancel_order_success_v1_doc")),
]


@pytest.mark.parametrize("parse", PARSED)
def test_no_account_id_in_repr_or_str(parse: Any) -> None:
    parsed = parse()
    for text in (repr(parsed), str(parsed)):
        assert not ACCOUNT_ID.search(text), text


# -- tickets --------------------------------------------------------------------------------


def test_the_v1_bracket_request_rebuilt_from_tickets() -> None:
    sent = load("bracket_order_request_v1_doc")["orders"]
    tickets = [
        OrderTicket(265598, "Buy", 50, "MKT", "GTC", coid="Parent", outside_rth=True,
                    listing_exchange="SMART", extra={"referrer": "QuickTrade"}),
        OrderTicket(265598, "Sell", 50, "STP", "GTC", price=157.30, parent_coid="Parent",
                    listing_exchange="SMART"),
        OrderTicket(265598, "Sell", 50, "LMT", "GTC", price=157.00, parent_coid="Parent",
                    listing_exchange="SMART"),
    ]  # fmt: skip
    for ticket, raw in zip(tickets, sent, strict=True):
        expected = {k: v for k, v in raw.items() if k != "acctId" and v is not False}
        expected["side"] = expected["side"].upper()
        assert ticket.to_wire() == expected


def test_oca_and_trailing_tickets() -> None:
    sent = load("oca_order_request_v1_doc")["orders"]
    oca = OrderTicket(265598, "SELL", 50, "LMT", "GTC", price=157.0, oca=True,
                      parent_coid="Parent", listing_exchange="SMART")  # fmt: skip
    assert oca.to_wire()["isSingleGroup"] is True and sent[2]["isSingleGroup"] is True
    trail_raw = load("bracket_order_request_trail_awiseib")["orders"][2]
    trail = OrderTicket(687901547, "SELL", 25, "TRAIL", "DAY", trailing_amt=10,
                        trailing_type="amt", parent_coid="NSE_3")  # fmt: skip
    assert trail.to_wire() == trail_raw
    assert ticket_body(trail_raw) == trail_raw


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order_type": "LIMIT"}, "use one of MKT, LMT, STP"),
        ({"side": "SHORT"}, "use one of BUY, SELL"),
        ({"tif": "GTX"}, "use one of DAY, GTC"),
        ({"quantity": 0}, "quantity must be a number > 0"),
        ({"quantity": math.nan}, "quantity must be a number > 0"),
        ({"order_type": "LMT"}, "price is required"),
        ({"price": 1.0}, "MKT orders take no price"),
        ({"order_type": "STOP_LIMIT", "price": 2.0}, "aux_price is required"),
        ({"order_type": "TRAIL", "trailing_amt": 1.0}, "trailing_type None is not supported"),
        ({"order_type": "TRAIL", "trailing_amt": 100, "trailing_type": "%"}, "below 100%"),
        ({"conid": "265598"}, "conid must be a positive integer"),
        ({"coid": " x"}, "coid must be a non-empty string"),
        ({"order_type": "MOC", "tif": "GTC"}, "MOC orders need tif='DAY'"),
        ({"tif": "GTD"}, "good_till_date goes with tif='GTD'"),
        ({"tif": "GTD", "good_till_date": "2024-01-02"}, "use YYYYMMDD"),
        ({"extra": {"cOID": "x"}}, "extra repeats keys"),
    ],
)
def test_bad_tickets_are_refused_naming_the_valid_values(
    kwargs: dict[str, Any], message: str
) -> None:
    base: dict[str, Any] = {"conid": 265598, "side": "BUY", "quantity": 10, "order_type": "MKT"}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("%", "%")):
        OrderTicket(**{**base, **kwargs})


def test_raw_tickets_need_ibkrs_required_keys() -> None:
    with pytest.raises(ConfigError, match="lacks tif"):
        ticket_body({"conid": 1, "orderType": "MKT", "side": "BUY", "quantity": 1})
    with pytest.raises(ConfigError, match="OrderTicket or a mapping"):
        ticket_body(["x"])  # type: ignore[arg-type]
