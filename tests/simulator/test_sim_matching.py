"""Matching on the simulated clock: each order type fills where the seeded market says, at the
quote's side, on the second a brute-force oracle finds; partial fills, expiry, auctions,
time in force, outside-RTH, commissions and the account's arithmetic."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.simulator.sim_trading import AAPL, INTC, TUESDAY, Oracle, Trader, ticket
from tests.support.instants import UTC

SECOND = timedelta(seconds=1)
CLOSE = datetime(2024, 3, 5, 21, 0, tzinfo=UTC)  # Tuesday 16:00 New York
EVENING = datetime(2024, 3, 5, 22, 0, tzinfo=UTC)  # Tuesday 17:00 New York
WEDNESDAY_OPEN = datetime(2024, 3, 6, 14, 30, tzinfo=UTC)  # 09:30 New York
QUIET = ["o0", "o163", "o10331", "o354"]


@pytest.fixture
def quiet(trader: Trader) -> Iterator[Trader]:
    """A trader that suppressed every question the simulator asks."""
    trader.post("/iserver/questions/suppress", json={"messageIds": QUIET})
    yield trader


def _oracle(sim: GatewaySimulator) -> Oracle:
    return Oracle(sim)


def _dollars(cents: int) -> float:
    return round(cents / 100, 2)


def _single_fill(sim: GatewaySimulator, order_id: int) -> tuple[datetime, float]:
    (execution,) = [e for e in sim.account.executions if e.order_id == order_id]
    return execution.time, execution.price


def _fills_exactly_at(sim: GatewaySimulator, order_id: int, instant: datetime) -> float:
    """Walk the clock to one second before ``instant``, see no fill, then to it: one fill."""
    sim.set_time(instant - SECOND)
    assert sim.account.order(order_id).filled == 0
    sim.advance(1)
    when, price = _single_fill(sim, order_id)
    assert when == instant
    return price


def test_limit_buy_fills_the_first_second_the_ask_reaches_it(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    oracle = _oracle(trading_sim)
    horizon = TUESDAY + timedelta(hours=3)
    low = min(oracle.last(AAPL, t) for t in oracle.seconds(TUESDAY, horizon))
    level = (oracle.last(AAPL, TUESDAY) + low) // 2
    expected = oracle.first(AAPL, TUESDAY, horizon, lambda last: last <= level)
    oid = quiet.place_one(order_type="LMT", price=_dollars(level), tif="GTC")
    assert quiet.status(oid)["order_status"] == "Submitted"
    price = _fills_exactly_at(trading_sim, oid, expected)
    assert price == _dollars(oracle.last(AAPL, expected))  # the ask, at or below the limit
    assert price <= _dollars(level)


def test_limit_sell_fills_when_the_bid_reaches_it(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    oracle = _oracle(trading_sim)
    horizon = TUESDAY + timedelta(hours=3)
    high = max(oracle.last(AAPL, t) for t in oracle.seconds(TUESDAY, horizon))
    level = (oracle.last(AAPL, TUESDAY) + high) // 2
    expected = oracle.first(AAPL, TUESDAY, horizon, lambda last: last - 1 >= level)
    oid = quiet.place_one(side="SELL", order_type="LMT", price=_dollars(level), tif="GTC")
    price = _fills_exactly_at(trading_sim, oid, expected)
    assert price == _dollars(oracle.last(AAPL, expected) - 1)  # the bid
    assert trading_sim.account.positions == {AAPL: -100}


@pytest.mark.parametrize("side", ["BUY", "SELL"])
def test_stop_triggers_on_the_last_price_and_fills_at_the_quote(
    quiet: Trader, trading_sim: GatewaySimulator, side: str
) -> None:
    oracle = _oracle(trading_sim)
    horizon = TUESDAY + timedelta(hours=3)
    now = oracle.last(AAPL, TUESDAY)
    stop = now + 20 if side == "BUY" else now - 20
    buy = side == "BUY"
    expected = oracle.first(
        AAPL, TUESDAY, horizon, lambda last: last >= stop if buy else last <= stop
    )
    oid = quiet.place_one(side=side, order_type="STP", price=_dollars(stop), tif="GTC")
    assert quiet.status(oid)["order_status"] == "PreSubmitted"  # not yet triggered
    price = _fills_exactly_at(trading_sim, oid, expected)
    last = oracle.last(AAPL, expected)
    assert price == _dollars(last if buy else last - 1)


def test_stop_limit_triggers_then_works_as_a_limit(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    oracle = _oracle(trading_sim)
    horizon = TUESDAY + timedelta(hours=5)
    stop = oracle.last(AAPL, TUESDAY) - 30
    limit = stop + 10  # sell no lower than 10 cents above the stop: must wait for a bounce
    triggered = oracle.first(AAPL, TUESDAY, horizon, lambda last: last <= stop)
    filled = oracle.first(AAPL, triggered - SECOND, horizon, lambda last: last - 1 >= limit)
    assert filled > triggered
    oid = quiet.place_one(
        side="SELL", order_type="STOP_LIMIT", price=_dollars(limit), auxPrice=_dollars(stop),
        tif="GTC",
    )  # fmt: skip
    trading_sim.set_time(triggered)
    assert quiet.status(oid)["order_status"] == "Submitted"  # elected, resting as a limit
    assert trading_sim.account.order(oid).filled == 0
    price = _fills_exactly_at(trading_sim, oid, filled)
    assert price == _dollars(oracle.last(AAPL, filled) - 1) and price >= _dollars(limit)


@pytest.mark.parametrize(("kind", "amount"), [("amt", 0.25), ("%", 0.2)])
def test_trailing_stop_ratchets_and_triggers(
    quiet: Trader, trading_sim: GatewaySimulator, kind: str, amount: float
) -> None:
    oracle = _oracle(trading_sim)
    horizon = TUESDAY + timedelta(hours=4)
    stop: int | None = None
    expected = None
    for instant in [TUESDAY, *oracle.seconds(TUESDAY, horizon)]:
        last = oracle.last(AAPL, instant)
        offset = round(amount * 100) if kind == "amt" else round(last * amount / 100)
        stop = last - offset if stop is None else max(stop, last - offset)
        if last <= stop:
            expected = instant
            break
    assert expected is not None and expected > TUESDAY
    oid = quiet.place_one(
        side="SELL", order_type="TRAIL", trailingAmt=amount, trailingType=kind, tif="GTC"
    )
    price = _fills_exactly_at(trading_sim, oid, expected)
    assert price == _dollars(oracle.last(AAPL, expected) - 1)


def test_market_on_close_fills_at_the_closing_price(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    oid = quiet.place_one(order_type="MOC")
    assert quiet.status(oid)["order_status"] == "PreSubmitted"
    price = _fills_exactly_at(trading_sim, oid, CLOSE)
    closing_bar = trading_sim.truth("AAPL", "1min")[-1]
    assert closing_bar.timestamp == CLOSE - timedelta(minutes=1)
    assert price == closing_bar.close


def test_at_the_open_orders_fill_at_the_opening_price(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    trading_sim.set_time(EVENING)
    oid = quiet.place_one(order_type="MKT", tif="OPG")
    price = _fills_exactly_at(trading_sim, oid, WEDNESDAY_OPEN)
    trading_sim.advance(60)
    opening_bar = trading_sim.truth("AAPL", "1min")[0]
    assert opening_bar.timestamp == WEDNESDAY_OPEN and price == opening_bar.open


def test_large_orders_fill_in_parts_of_the_displayed_size(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    oracle = _oracle(trading_sim)
    _, _, _, ask_size = quiet.quote()
    oid = quiet.place_one(quantity=5000)
    first = trading_sim.account.order(oid)
    assert (first.status, first.filled) == ("Submitted", ask_size)
    live = quiet.live_orders()["orders"][0]
    assert live["sizeAndFills"] == f"{ask_size}/{5000 - ask_size}"
    assert live["status"] == "Submitted"

    expected: list[tuple[datetime, int, float]] = []
    left, instant = 5000, TUESDAY
    while left:
        size = min(left, oracle.sizes(AAPL, instant)[1])
        expected.append((instant, size, _dollars(oracle.last(AAPL, instant))))
        left -= size
        instant += SECOND
    trading_sim.advance((expected[-1][0] - TUESDAY).total_seconds())
    fills = [(e.time, e.quantity, e.price) for e in trading_sim.account.executions]
    assert fills == expected and len(fills) > 2
    done = trading_sim.account.order(oid)
    assert (done.status, done.filled, done.commission) == ("Filled", 5000, 25.0)


def test_day_orders_expire_at_the_close_and_gtc_orders_stay(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    day = quiet.place_one(order_type="LMT", price=100.0)
    gtc = quiet.place_one(order_type="LMT", price=100.0, tif="GTC")
    trading_sim.set_time(CLOSE - SECOND)
    assert quiet.status(day)["order_status"] == "Submitted"
    trading_sim.advance(1)
    assert quiet.status(day)["order_status"] == "Cancelled"  # IBKR's word for an expired DAY
    assert quiet.status(gtc)["order_status"] == "PreSubmitted"  # held until the next session
    trading_sim.set_time(WEDNESDAY_OPEN)
    assert quiet.status(gtc)["order_status"] == "Submitted"

    late = quiet.place_one(order_type="LMT", price=100.0)  # placed Wednesday 09:30
    trading_sim.set_time(EVENING + timedelta(days=1))
    assert trading_sim.account.order(late).status == "Cancelled"
    evening = quiet.place_one(order_type="LMT", price=100.0)  # after the close: Thursday's DAY
    trading_sim.set_time(CLOSE + timedelta(days=2) - SECOND)
    assert trading_sim.account.order(evening).status == "Submitted"
    trading_sim.advance(1)
    assert trading_sim.account.order(evening).status == "Cancelled"


def test_good_till_date_expires_at_its_date_or_time(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    by_date = quiet.place_one(order_type="LMT", price=100.0, tif="GTD", goodTillDate="20240306")
    by_time = quiet.place_one(
        order_type="LMT", price=100.0, tif="GTD", goodTillDate="20240305-16:00:00"
    )
    trading_sim.set_time(datetime(2024, 3, 5, 16, 0, tzinfo=UTC))
    assert trading_sim.account.order(by_time).status == "Cancelled"
    trading_sim.set_time(CLOSE + timedelta(days=1) - SECOND)
    assert trading_sim.account.order(by_date).status == "Submitted"
    trading_sim.advance(1)
    assert trading_sim.account.order(by_date).status == "Cancelled"
    refused = quiet.submit(ticket(order_type="LMT", price=100.0, tif="GTD"))
    assert "goodTillDate" in refused.json()["error"]


def test_immediate_or_cancel_keeps_what_fills_at_once(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    _, ask, _, ask_size = quiet.quote()
    some = quiet.place_one(order_type="LMT", price=ask, quantity=5000, tif="IOC")
    none = quiet.place_one(order_type="LMT", price=100.0, tif="IOC")
    truth = trading_sim.account
    assert (truth.order(some).status, truth.order(some).filled) == ("Cancelled", ask_size)
    assert (truth.order(none).status, truth.order(none).filled) == ("Cancelled", 0)


def test_outside_rth_orders_trade_after_hours_and_others_wait(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    oracle = _oracle(trading_sim)
    trading_sim.set_time(EVENING)
    after_hours = oracle.last(AAPL, EVENING)
    eth = quiet.place_one(order_type="LMT", price=_dollars(after_hours + 500), outsideRTH=True)
    assert _single_fill(trading_sim, eth) == (EVENING, _dollars(after_hours))
    rth = quiet.place_one(order_type="LMT", price=_dollars(after_hours + 500))
    market = quiet.place_one(order_type="MKT", outsideRTH=True)  # MKT only trades in RTH
    assert {trading_sim.account.order(i).status for i in (rth, market)} == {"PreSubmitted"}
    opening = _dollars(oracle.last(AAPL, WEDNESDAY_OPEN))
    assert _fills_exactly_at(trading_sim, market, WEDNESDAY_OPEN) == opening
    assert _single_fill(trading_sim, rth) == (WEDNESDAY_OPEN, opening)


def test_commissions_follow_ibkr_fixed_pricing(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    hundred = quiet.place_one(quantity=100)
    three_hundred = quiet.place_one(quantity=300)
    tiny = quiet.place_one(conid=INTC, quantity=1)  # 1% of about USD 32 is below USD 1.00
    truth = trading_sim.account
    assert truth.order(hundred).commission == 1.00  # the USD 1.00 minimum
    assert truth.order(three_hundred).commission == 1.50  # USD 0.005 x 300
    intc = truth.order(tiny)
    assert intc.commission == round(intc.avg_price * 0.01, 2)
    strings = {t["commission"] for t in quiet.get("/iserver/account/trades").json()}
    assert {"1.00", "1.50", f"{intc.commission:.2f}"} <= strings


def test_cash_and_positions_add_up_to_the_executions(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    quiet.place_one(quantity=700)
    quiet.place_one(side="SELL", quantity=300)
    quiet.place_one(conid=INTC, side="SELL", quantity=250)  # a short
    quiet.place_one(order_type="LMT", price=100.0, tif="GTC")  # never fills
    trading_sim.advance(3600)
    quiet.place_one(side="SELL", quantity=900)  # crosses from long to short
    trading_sim.advance(60)
    truth = trading_sim.account
    cash = Decimal("1000000")
    positions: dict[int, int] = {}
    for e in truth.executions:
        signed = e.quantity if e.side == "BUY" else -e.quantity
        cash -= signed * Decimal(str(e.price)) + Decimal(str(e.commission))
        positions[e.conid] = positions.get(e.conid, 0) + signed
    assert Decimal(str(truth.cash)) == cash
    assert truth.positions == {AAPL: -500, INTC: -250} == positions
    assert sum(o.filled for o in truth.orders) == sum(e.quantity for e in truth.executions)
    ledger = _ledger(quiet)
    assert ledger["USD"]["cashbalance"] == truth.cash


def _ledger(trader: Trader) -> dict[str, dict[str, float]]:
    trader.get("/portfolio/accounts")
    body: dict[str, dict[str, float]] = trader.get(f"/portfolio/{trader.account}/ledger").json()
    return body


def test_trailing_stop_limit_keeps_its_limit_offset_to_the_stop(
    quiet: Trader, trading_sim: GatewaySimulator
) -> None:
    oracle = _oracle(trading_sim)
    horizon = TUESDAY + timedelta(hours=5)
    now = oracle.last(AAPL, TUESDAY)
    initial_stop, offset, trail = now - 30, -5, 25  # the limit sits 5 cents below the stop
    stop, limit, triggered_at, filled_at = initial_stop, None, None, None
    for instant in oracle.seconds(TUESDAY - SECOND, horizon):
        last = oracle.last(AAPL, instant)
        if limit is None:
            stop = max(stop, last - trail)
            if last <= stop:
                limit, triggered_at = stop + offset, instant
        if limit is not None and last - 1 >= limit:
            filled_at = instant
            break
    assert triggered_at is not None and filled_at is not None
    oid = quiet.place_one(
        side="SELL", order_type="TRAILLMT", auxPrice=_dollars(initial_stop),
        price=_dollars(initial_stop + offset), trailingAmt=trail / 100, trailingType="amt",
        tif="GTC",
    )  # fmt: skip
    price = _fills_exactly_at(trading_sim, oid, filled_at)
    assert limit is not None and price == _dollars(oracle.last(AAPL, filled_at) - 1)
    assert quiet.status(oid)["order_type"] == "TRAILLMT"
