"""The order, execution, account and portfolio endpoints of ApiClient over real HTTPS against
the gateway simulator (its order engine and one paper account), plus their pacing.

The simulator's clock is frozen (``speed=0``) and moved by hand. Tests not about pacing relax
the 1-per-5-s limits on both sides (``SimLimits`` / ``PacingLimits``); the pacing tests keep
IBKR's and look at the pacer's waits, never at wall time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.orders_api import ORDER_RETRY
from backtrader_ibkr_cp.client.pacing import Pacer, PacingLimits, request_kind
from backtrader_ibkr_cp.client.transport import Transport
from backtrader_ibkr_cp.errors import (
    ApiError,
    ConfigError,
    DataUnavailable,
    OrderOutcomeUnknown,
)
from backtrader_ibkr_cp.models.answers import (
    Accepted,
    CancelRequested,
    DuplicateOrderId,
    PlaceAnswer,
    Question,
    Rejected,
    ReplyExpired,
)
from backtrader_ibkr_cp.models.orders import OrderStatus
from backtrader_ibkr_cp.models.tickets import OrderTicket
from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.simulator.pacing import SimLimits
from backtrader_ibkr_cp.timing import FakeClock
from backtrader_ibkr_cp.wire import ACCOUNT_ID
from tests.support.instants import TUESDAY_MIDDAY
from tests.support.policies import FAST_RETRY

ACCOUNT = "DU0000000"
PLACE = f"/iserver/account/{ACCOUNT}/orders"
LIVE = "/iserver/account/orders"
#: The simulator's own log: IBKR's side of the wire, which knows the account.
SIMULATOR_LOG = "backtrader_ibkr_cp.simulator"
#: The simulator without its 1-per-5-s limits (for tests that are not about them).
RELAXED = SimLimits(live_orders_per_5s=1000, trades_per_5s=1000, portfolio_accounts_per_5s=1000)


@pytest.fixture
def sim(sim_factory: Callable[..., GatewaySimulator]) -> GatewaySimulator:
    """Frozen on Tuesday 13:00 New York (the market is open), seed 0, order limits relaxed."""
    return sim_factory(seed=0, start=TUESDAY_MIDDAY, speed=0, limits=RELAXED)


def client(sim: GatewaySimulator, pacer: Pacer | None = None, read: float = 5.0) -> ApiClient:
    relaxed = Pacer(PacingLimits(orders_seconds_per_request=0.001))
    transport = Transport(sim.url, retry=FAST_RETRY, timeout=(5.0, read), pacer=pacer or relaxed)
    return ApiClient(transport)


@pytest.fixture
def api(sim: GatewaySimulator) -> Iterator[ApiClient]:
    api = client(sim)
    yield api
    api.transport.close()


def confirm(api: ApiClient, answer: PlaceAnswer, seen: list[str] | None = None) -> PlaceAnswer:
    """Answer every question of a chain with yes (at most 10)."""
    for _ in range(10):
        if not isinstance(answer, Question):
            return answer
        if seen is not None:
            seen.extend(answer.message_ids)
        answer = api.reply(answer.reply_id, True)
    raise AssertionError("question chain did not end")


def aapl(sim: GatewaySimulator) -> int:
    return sim.conid("AAPL")


def last_price(sim: GatewaySimulator) -> float:
    return sim.truth("AAPL", "1min")[-1].close


def no_account_id(error: BaseException) -> None:
    """Neither the error, its endpoint nor its chained causes name an account."""
    current: BaseException | None = error
    while current is not None:
        assert not ACCOUNT_ID.search(str(current)), str(current)
        assert not ACCOUNT_ID.search(repr(current.args)), current.args
        assert not ACCOUNT_ID.search(str(getattr(current, "endpoint", "") or ""))
        current = current.__cause__ or current.__context__


# -- accounts ---------------------------------------------------------------------------------


def test_iserver_accounts_is_the_accounts_first_call(api: ApiClient, sim: GatewaySimulator) -> None:
    accounts = api.iserver_accounts()
    assert accounts.is_paper is True and accounts.selected_account == ACCOUNT
    assert accounts.accounts == (ACCOUNT,) and ACCOUNT not in repr(accounts)
    api.live_orders()
    api.trades()
    assert sim.stats.requests["/iserver/accounts"] == 1


def test_order_calls_ask_for_iserver_accounts_first_once(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    assert api.live_orders().snapshot is False
    api.trades()
    assert sim.stats.requests["/iserver/accounts"] == 1
    assert sim.stats.requests[LIVE] == 1


def test_switch_account(api: ApiClient, sim: GatewaySimulator) -> None:
    result = api.switch_account(ACCOUNT)
    assert result.already_selected and not result.switched
    with pytest.raises(ConfigError, match="does not know that account") as raised:
        api.switch_account("DU9999999")
    no_account_id(raised.value)
    before = sim.stats.requests["/iserver/account"]
    with pytest.raises(ConfigError, match="a string of 4 characters"):
        api.switch_account("nope")
    assert sim.stats.requests["/iserver/account"] == before


# -- placing, questions, replies --------------------------------------------------------------


def test_market_order_confirmed_through_its_question(api: ApiClient, sim: GatewaySimulator) -> None:
    ticket = OrderTicket(aapl(sim), "BUY", 10, "MKT", coid="run1-1")
    seen: list[str] = []
    answer = confirm(api, api.place_orders(ACCOUNT, [ticket]), seen)
    assert seen == ["o0"]  # "will most likely trigger and fill immediately"
    assert isinstance(answer, Accepted)
    (placed,) = sim.account.orders
    assert answer.order_id == placed.order_id and answer.orders[0].coid == "run1-1"
    assert placed.coid == "run1-1" and placed.quantity == 10 and placed.order_type == "MKT"


def test_limit_order_question_and_suppression(api: ApiClient, sim: GatewaySimulator) -> None:
    far = round(last_price(sim) * 0.5, 2)
    ticket = OrderTicket(aapl(sim), "BUY", 1, "LMT", price=far, coid="lmt-1")
    question = api.place_orders(ACCOUNT, [ticket])
    assert isinstance(question, Question) and question.message_ids == ("o163",)
    assert isinstance(api.reply(question.reply_id, True), Accepted)
    api.suppress_questions(["o163", "o163"])
    again = OrderTicket(aapl(sim), "BUY", 1, "LMT", price=far, coid="lmt-2")
    assert isinstance(api.place_orders(ACCOUNT, again), Accepted)
    api.reset_suppressed()
    third = OrderTicket(aapl(sim), "BUY", 1, "LMT", price=far, coid="lmt-3")
    assert isinstance(api.place_orders(ACCOUNT, [third]), Question)
    assert [o.coid for o in sim.account.orders] == ["lmt-1", "lmt-2"]


def test_stop_order_question_chain(api: ApiClient, sim: GatewaySimulator) -> None:
    stop = round(last_price(sim) * 1.02, 2)
    ticket = OrderTicket(aapl(sim), "BUY", 5, "STP", "GTC", price=stop, coid="stp-1")
    seen: list[str] = []
    answer = confirm(api, api.place_orders(ACCOUNT, [ticket]), seen)
    assert "o10331" in seen  # the stop-order risk warning
    assert isinstance(answer, Accepted)
    assert answer.orders[0].status is OrderStatus.PRE_SUBMITTED  # not triggered yet
    assert sim.account.order(answer.order_id).status == "PreSubmitted"


def test_bracket_answers_one_order_per_leg(api: ApiClient, sim: GatewaySimulator) -> None:
    last = last_price(sim)
    conid = aapl(sim)
    parent = OrderTicket(conid, "BUY", 10, "LMT", "GTC", price=round(last * 0.99, 2), coid="br-1")
    stop = OrderTicket(conid, "SELL", 10, "STP", "GTC", price=round(last * 0.9, 2),
                       parent_coid="br-1")  # fmt: skip
    target = OrderTicket(conid, "SELL", 10, "LMT", "GTC", price=round(last * 1.02, 2),
                         parent_coid="br-1")  # fmt: skip
    answer = confirm(api, api.place_orders(ACCOUNT, [parent, stop, target]))
    assert isinstance(answer, Accepted) and len(answer.orders) == 3
    orders = {o.order_id: o for o in sim.account.orders}
    ids = [o.order_id for o in answer.orders]
    assert orders[ids[0]].coid == "br-1" and orders[ids[0]].parent_id is None
    assert orders[ids[1]].parent_id == ids[0] and orders[ids[2]].parent_id == ids[0]


def test_oca_group(api: ApiClient, sim: GatewaySimulator) -> None:
    last = last_price(sim)
    conid = aapl(sim)
    low = OrderTicket(conid, "BUY", 1, "LMT", "GTC", price=round(last * 0.98, 2), oca=True,
                      coid="oca-1")  # fmt: skip
    high = OrderTicket(conid, "SELL", 1, "LMT", "GTC", price=round(last * 1.02, 2), oca=True,
                       coid="oca-2")  # fmt: skip
    answer = confirm(api, api.place_orders(ACCOUNT, [low, high]))
    assert isinstance(answer, Accepted) and len(answer.orders) == 2
    groups = {o.oca_group for o in sim.account.orders}
    assert len(groups) == 1 and None not in groups


def test_a_declined_question_places_nothing(api: ApiClient, sim: GatewaySimulator) -> None:
    question = api.place_orders(ACCOUNT, [OrderTicket(aapl(sim), "BUY", 1, "MKT", coid="no-1")])
    assert isinstance(question, Question)
    declined = api.reply(question.reply_id, False)
    assert type(declined) is Rejected and declined.text == "Order not confirmed"
    assert sim.account.orders == ()


def test_a_stale_reply_id_is_reply_expired(api: ApiClient, sim: GatewaySimulator) -> None:
    question = api.place_orders(ACCOUNT, [OrderTicket(aapl(sim), "BUY", 1, "MKT", coid="st-1")])
    assert isinstance(question, Question)
    assert isinstance(api.reply(question.reply_id, True), Accepted)
    stale = api.reply(question.reply_id, True)
    assert isinstance(stale, ReplyExpired) and stale.reply_id == question.reply_id
    assert stale.http_status == 400
    assert len(sim.account.orders) == 1


def test_a_duplicate_coid_is_reported_not_placed(api: ApiClient, sim: GatewaySimulator) -> None:
    ticket = OrderTicket(aapl(sim), "BUY", 1, "MKT", coid="dup-1")
    assert isinstance(confirm(api, api.place_orders(ACCOUNT, [ticket])), Accepted)
    again = api.place_orders(ACCOUNT, [ticket])
    assert again == DuplicateOrderId(
        "dup-1", "Order couldn't be submitted: Local order ID=dup-1 is already registered."
    )
    assert len(sim.account.orders) == 1


def test_place_orders_checks_tickets_before_sending(api: ApiClient, sim: GatewaySimulator) -> None:
    conid = aapl(sim)
    with pytest.raises(ConfigError, match="first ticket needs a cOID"):
        api.place_orders(ACCOUNT, [OrderTicket(conid, "BUY", 1, "MKT")])
    with pytest.raises(ConfigError, match="one order per request, or a bracket"):
        api.place_orders(
            ACCOUNT,
            [OrderTicket(conid, "BUY", 1, "MKT", coid="a"), OrderTicket(conid, "BUY", 1, "MKT")],
        )
    with pytest.raises(ConfigError, match="account must be an IBKR account id") as raised:
        api.place_orders("DU12", [OrderTicket(conid, "BUY", 1, "MKT", coid="b")])
    assert "DU12" not in str(raised.value)
    assert sim.stats.requests[PLACE] == 0 and sim.stats.requests["/iserver/accounts"] == 0


def test_an_order_after_the_session_was_lost_is_placed_once(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    api.iserver_accounts()
    sim.expire_session()  # 401, reopened; then "Please query /accounts first", asked again
    ticket = OrderTicket(aapl(sim), "BUY", 1, "LMT", price=round(last_price(sim), 2), coid="s1")
    answer = confirm(api, api.place_orders(ACCOUNT, [ticket]))
    assert isinstance(answer, Accepted)
    assert [o.coid for o in sim.account.orders] == ["s1"]
    assert sim.stats.requests["/iserver/accounts"] == 2
    assert sim.stats.requests[PLACE] == 3  # 401, "query /accounts first", placed


def test_a_wrong_account_is_an_api_error_without_the_account(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    ticket = OrderTicket(aapl(sim), "BUY", 1, "MKT", coid="w1")
    with pytest.raises(ApiError, match="accountId is not valid") as raised:
        api.place_orders("DU1234567", [ticket])
    no_account_id(raised.value)
    assert sim.account.orders == ()


# -- modify, cancel, status, live orders, trades ----------------------------------------------


def working_limit(api: ApiClient, sim: GatewaySimulator, coid: str) -> tuple[OrderTicket, int]:
    price = round(last_price(sim) * 0.99, 2)
    ticket = OrderTicket(aapl(sim), "BUY", 3, "LMT", "GTC", price=price, coid=coid)
    answer = confirm(api, api.place_orders(ACCOUNT, [ticket]))
    assert isinstance(answer, Accepted)
    return ticket, answer.order_id


def test_modify_changes_the_price_and_keeps_the_id(api: ApiClient, sim: GatewaySimulator) -> None:
    ticket, order_id = working_limit(api, sim, "mod-1")
    assert ticket.price is not None
    lower = round(ticket.price - 0.5, 2)
    changed = OrderTicket(ticket.conid, "BUY", 3, "LMT", "GTC", price=lower, coid="mod-1")
    answer = confirm(api, api.modify_order(ACCOUNT, order_id, changed))
    assert isinstance(answer, Accepted) and answer.order_id == order_id
    assert sim.account.order(order_id).price == lower
    gone = api.modify_order(ACCOUNT, 1, changed)
    assert type(gone) is Rejected and "doesn't exist" in gone.text


def test_cancel_then_status(api: ApiClient, sim: GatewaySimulator) -> None:
    _, order_id = working_limit(api, sim, "can-1")
    answer = api.cancel_order(ACCOUNT, order_id)
    assert isinstance(answer, CancelRequested) and answer.order_id == order_id
    assert ACCOUNT not in repr(answer)
    sim.advance(2)
    status = api.order_status(order_id)
    assert status.status is OrderStatus.CANCELLED and status.status.final
    assert not status.cancellable and not status.editable
    assert sim.account.order(order_id).status == "Cancelled"
    unknown = api.cancel_order(ACCOUNT, 999)
    assert type(unknown) is Rejected and "doesn't exist" in unknown.text


def test_order_status_of_an_unknown_order_is_data_unavailable(api: ApiClient) -> None:
    with pytest.raises(DataUnavailable, match="no status for order 42"):
        api.order_status(42)
    with pytest.raises(ConfigError, match="order_id must be"):
        api.order_status(0)


def test_live_orders_first_call_is_empty_and_force_clears(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    _, order_id = working_limit(api, sim, "live-1")
    first = api.live_orders()
    assert first.orders == () and first.snapshot is False
    book = api.live_orders()
    assert book.snapshot is True
    found = book.by_coid("live-1")
    assert found is not None and found.order_id == order_id
    assert found.status is OrderStatus.SUBMITTED and found.remaining_quantity == 3
    forced = api.live_orders(force=True)
    assert forced.orders == () and forced.snapshot is False
    assert api.live_orders().by_order_id(order_id) is not None
    assert sim.stats.requests[LIVE] == 4


def test_trades_carry_coid_and_commission(api: ApiClient, sim: GatewaySimulator) -> None:
    ticket = OrderTicket(aapl(sim), "BUY", 10, "MKT", coid="fill-1")
    assert isinstance(confirm(api, api.place_orders(ACCOUNT, [ticket])), Accepted)
    sim.advance(2)
    (truth,) = sim.account.executions
    (execution,) = api.trades()
    assert execution.execution_id == truth.execution_id and execution.coid == "fill-1"
    assert execution.size == 10 and execution.side == "BUY"
    assert execution.price == pytest.approx(truth.price)
    assert execution.commission == pytest.approx(truth.commission) and execution.commission > 0
    assert execution.time == truth.time
    assert api.trades(days=7) == [execution]
    with pytest.raises(ConfigError, match="days must be 1-7"):
        api.trades(days=8)


# -- portfolio --------------------------------------------------------------------------------


def test_portfolio_endpoints_after_a_fill(api: ApiClient, sim: GatewaySimulator) -> None:
    ticket = OrderTicket(aapl(sim), "BUY", 10, "MKT", coid="pf-1")
    assert isinstance(confirm(api, api.place_orders(ACCOUNT, [ticket])), Accepted)
    sim.advance(2)
    truth = sim.account
    summary = api.portfolio_summary(ACCOUNT)
    assert sim.stats.requests["/portfolio/accounts"] == 1  # asked first, automatically
    assert summary.total_cash_value == pytest.approx(truth.cash)
    assert summary.net_liquidation is not None and ACCOUNT not in repr(summary)
    ledger = api.ledger(ACCOUNT)
    assert ledger.base is not None and ledger.base.cash_balance == pytest.approx(truth.cash)
    (held,) = api.positions(ACCOUNT)
    assert held.conid == aapl(sim) and held.position == truth.positions[aapl(sim)] == 10
    short = api.position(ACCOUNT, aapl(sim))
    assert short is not None and not short.has_secdef and short.position == 10
    full = api.position(ACCOUNT, aapl(sim))
    assert full is not None and full.has_secdef
    api.invalidate_positions(ACCOUNT)
    assert api.position(ACCOUNT, sim.conid("IBM")) is None
    assert api.positions(ACCOUNT, page=1) == []
    (account,) = api.portfolio_accounts()
    assert account.account_id == ACCOUNT and ACCOUNT not in repr(account)
    assert sim.stats.requests["/portfolio/accounts"] == 2


def test_portfolio_accounts_asked_again_when_the_gateway_wants_it(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    api.ledger(ACCOUNT)
    sim.expire_session()
    api.init_brokerage_session()  # a new brokerage session the client's recovery did not see
    assert api.ledger(ACCOUNT).base is not None
    assert sim.stats.requests["/portfolio/accounts"] == 2
    assert sim.stats.requests[f"/portfolio/{ACCOUNT}/ledger"] == 3


# -- the money path: sent once, never re-sent -------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "placed"),
    [("answer_lost", 1), ("reset", 0), ("http_503", 0), ("http_500", 0), ("malformed", 1)],
)
def test_a_lost_place_answer_is_never_resent(
    api: ApiClient, sim: GatewaySimulator, kind: str, placed: int
) -> None:
    api.suppress_questions(["o0"])
    ticket = OrderTicket(aapl(sim), "BUY", 1, "MKT", coid="lost-1")
    sim.inject(kind, path=PLACE)
    with pytest.raises(OrderOutcomeUnknown) as raised:
        api.place_orders(ACCOUNT, [ticket])
    error = raised.value
    assert sim.stats.requests[PLACE] == 1  # sent exactly once
    assert len(sim.account.orders) == placed
    assert error.operation == "place" and error.coids == ("lost-1",)
    assert "may or may not exist" in str(error) and "cOID (lost-1)" in str(error)
    assert error.status == (int(kind[5:]) if kind.startswith("http_") else None)
    no_account_id(error)


def test_after_a_lost_answer_the_order_is_found_by_coid_and_a_resend_is_a_duplicate(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    api.suppress_questions(["o0"])
    ticket = OrderTicket(aapl(sim), "BUY", 1, "MKT", coid="lost-2")
    sim.inject("answer_lost", path=PLACE)
    with pytest.raises(OrderOutcomeUnknown):
        api.place_orders(ACCOUNT, [ticket])
    api.live_orders()
    found = api.live_orders().by_coid("lost-2")
    assert found is not None and [e.coid for e in api.trades()] == ["lost-2"]
    assert isinstance(api.place_orders(ACCOUNT, [ticket]), DuplicateOrderId)
    assert len(sim.account.orders) == 1


def test_a_timed_out_order_is_not_resent(sim: GatewaySimulator) -> None:
    api = client(sim, read=0.3)
    try:
        api.suppress_questions(["o0"])
        sim.inject("timeout", path=PLACE, seconds=2.0)
        with pytest.raises(OrderOutcomeUnknown, match="may or may not exist"):
            api.place_orders(ACCOUNT, [OrderTicket(aapl(sim), "BUY", 1, "MKT", coid="to-1")])
        assert sim.stats.requests[PLACE] == 1
    finally:
        api.transport.close()


def test_a_lost_reply_answer_is_not_resent(api: ApiClient, sim: GatewaySimulator) -> None:
    question = api.place_orders(ACCOUNT, [OrderTicket(aapl(sim), "BUY", 1, "MKT", coid="r-1")])
    assert isinstance(question, Question)
    sim.inject("answer_lost", path="/iserver/reply")
    with pytest.raises(OrderOutcomeUnknown) as raised:
        api.reply(question.reply_id, True)
    assert raised.value.operation == "reply" and raised.value.reply_id == question.reply_id
    assert [o.coid for o in sim.account.orders] == ["r-1"]
    assert sim.stats.requests[f"/iserver/reply/{question.reply_id}"] == 1


def test_lost_cancel_and_modify_answers_are_not_resent(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    ticket, order_id = working_limit(api, sim, "cm-1")
    path = f"/iserver/account/{ACCOUNT}/order/{order_id}"
    sim.inject("http_503", path=path)
    with pytest.raises(OrderOutcomeUnknown, match=f"check order {order_id}") as modify:
        api.modify_order(ACCOUNT, order_id, ticket)
    assert modify.value.operation == "modify" and modify.value.status == 503
    sim.inject("answer_lost", path=path)
    with pytest.raises(OrderOutcomeUnknown) as cancel:
        api.cancel_order(ACCOUNT, order_id)
    assert cancel.value.operation == "cancel" and cancel.value.order_id == order_id
    no_account_id(cancel.value)
    assert sim.stats.requests[path] == 2
    sim.advance(2)
    assert sim.account.order(order_id).status == "Cancelled"  # the lost cancel was carried out


def test_the_order_retry_policy_retries_nothing() -> None:
    assert ORDER_RETRY.total == 0 and ORDER_RETRY.rate_limit_retries == 0


# -- pacing: 1 request per 5 s ----------------------------------------------------------------


def test_the_five_second_endpoints_have_their_own_kinds() -> None:
    assert request_kind(LIVE) == "live_orders"
    assert request_kind("/v1/api/iserver/account/orders?force=true") == "live_orders"
    assert request_kind("/iserver/account/trades") == "trades"
    assert request_kind("/iserver/account/pnl/partitioned") == "pnl"
    assert request_kind("/portfolio/accounts") == "portfolio_accounts"
    assert request_kind("/portfolio/subaccounts") == "portfolio_accounts"
    assert request_kind(PLACE) == "other"
    assert request_kind("/iserver/accounts") == "other"


def test_one_request_per_five_seconds_per_endpoint_on_a_fake_clock() -> None:
    clock = FakeClock(0.0, autojump=True)
    pacer = Pacer(PacingLimits(), clock=clock, random=lambda: 0.0)
    times: dict[str, list[float]] = {}
    for path in (LIVE, "/iserver/account/trades", LIVE, "/portfolio/accounts", LIVE):
        with pacer.slot(path):
            times.setdefault(path, []).append(clock.now())
    assert times[LIVE] == pytest.approx([0.0, 5.1, 10.2])
    assert times["/iserver/account/trades"] == [0.0]  # its own budget
    assert times["/portfolio/accounts"] == pytest.approx([5.1])
    with pacer.slot("/portfolio/accounts"):
        pass
    assert pacer.wait_time("/portfolio/subaccounts") == pytest.approx(5.1)  # shared with it
    assert pacer.wait_time(PLACE) == 0.0


def test_five_second_limits_are_validated_merged_and_off_when_unpaced() -> None:
    with pytest.raises(ConfigError, match="orders_seconds_per_request"):
        PacingLimits(orders_seconds_per_request=0)
    merged = PacingLimits(orders_seconds_per_request=2).stricter(PacingLimits())
    assert merged.orders_seconds_per_request == 5.0
    unpaced = PacingLimits(total_per_second=1e9)
    assert [w.name for w in unpaced.windows("live_orders")] == ["total"]
    assert [w.name for w in PacingLimits().windows("trades")] == ["total", "trades"]


def test_back_to_back_live_orders_wait_instead_of_earning_a_429(
    sim_factory: Callable[..., GatewaySimulator], fake_clock: FakeClock
) -> None:
    """IBKR's limits on both sides, on one fake clock that jumps to the end of each wait:
    the client holds the second call back 5 s (its pacer's wait), and the simulator, which
    answers 429 to a second call within 5 s of its own clock, never does."""
    fake_clock.autojump = True
    sim = sim_factory(seed=0, start=TUESDAY_MIDDAY, speed=0, monotonic=fake_clock.now)
    api = client(sim, Pacer(PacingLimits(), clock=fake_clock))
    try:
        assert api.live_orders().snapshot is False
        assert api.live_orders().snapshot is True
    finally:
        api.transport.close()
    assert sim.stats.rate_limited == 0 and sim.stats.requests[LIVE] == 2
    assert api.transport.pacer.sent["live_orders"] == 2
    assert sum(w for w in fake_clock.waits if math.isfinite(w)) >= 5.0


def test_events_and_logs_of_an_order_request_never_carry_the_account_id(
    api: ApiClient, sim: GatewaySimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Bug: the transport's request events and debug log (and urllib3's) showed the full
    path, /iserver/account/<account id>/orders, so an account id reached logs and metrics."""
    events: list[object] = []
    api.transport.add_listener(events.append)
    caplog.set_level("DEBUG")
    ticket = OrderTicket(conid=aapl(sim), side="BUY", quantity=1, order_type="LMT",
                         price=round(last_price(sim) * 0.99, 2), coid="logs-1")  # fmt: skip
    confirm(api, api.place_orders(ACCOUNT, [ticket]))
    api.live_orders()
    client_side = [r for r in caplog.records if not r.name.startswith(SIMULATOR_LOG)]
    assert events and client_side
    shown = " ".join(repr(e) for e in events) + " ".join(r.getMessage() for r in client_side)
    assert ACCOUNT not in shown and "/iserver/account/<account>/orders" in shown
