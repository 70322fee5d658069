"""The order engine as a pure state machine: however the clock is cut into ``advance`` calls,
the same commands give the same fills; and its money rules on their edge values."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from backtrader_ibkr_cp.simulator.instruments import InstrumentBook, default_instruments
from backtrader_ibkr_cp.simulator.market import MarketModel
from backtrader_ibkr_cp.simulator.orders.book import Book
from backtrader_ibkr_cp.simulator.orders.engine import OrderEngine
from backtrader_ibkr_cp.simulator.orders.money import execution_commission, fixed_commission
from backtrader_ibkr_cp.simulator.orders.tickets import parse_ticket
from tests.simulator.sim_trading import AAPL, INTC, TUESDAY, ticket

SPAN = timedelta(days=2)
TICKETS = [
    ticket(quantity=4000),  # partial fills
    ticket(side="SELL", order_type="LMT", price=158.20, tif="GTC"),
    ticket(side="SELL", order_type="TRAIL", trailingAmt=0.35, trailingType="amt", tif="GTC"),
    ticket(order_type="STP", price=158.30, tif="GTC", outsideRTH=True),
    ticket(order_type="MOC"),
    ticket(conid=INTC, side="SELL", order_type="STOP_LIMIT", price=31.0, auxPrice=31.5, tif="GTC"),
    ticket(order_type="LMT", price=155.0, tif="DAY"),
]


def _engine() -> OrderEngine:
    engine = OrderEngine(
        MarketModel(7), InstrumentBook(default_instruments()), "DU0000000", Decimal(1_000_000)
    )
    engine.advance(TUESDAY)
    for raw in TICKETS:
        engine.place([parse_ticket(raw)], TUESDAY)
    return engine


def _outcome(engine: OrderEngine) -> tuple[object, ...]:
    snapshot = engine.snapshot()
    return snapshot.executions, tuple((o.status, o.filled) for o in snapshot.orders), snapshot.cash


def _walk(cuts: list[float]) -> tuple[object, ...]:
    engine = _engine()
    instant = TUESDAY
    for seconds in cuts:
        instant = min(instant + timedelta(seconds=seconds), TUESDAY + SPAN)
        engine.advance(instant)
    engine.advance(TUESDAY + SPAN)
    return _outcome(engine)


REFERENCE = _walk([])


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(min_value=0.1, max_value=20_000, allow_nan=False), max_size=40))
def test_the_same_commands_give_the_same_fills_however_the_clock_is_cut(
    cuts: list[float],
) -> None:
    assert _walk(cuts) == REFERENCE


def test_the_reference_walk_trades() -> None:
    executions, orders, _ = REFERENCE
    assert isinstance(executions, tuple) and len(executions) > 3
    assert isinstance(orders, tuple)
    statuses = [status for status, _ in orders]
    assert (
        statuses[0] == "Filled"
        and statuses[4] == "Filled"
        and statuses[6] in ("Filled", "Cancelled")
    )


def test_advancing_backwards_changes_nothing() -> None:
    engine = _engine()
    engine.advance(TUESDAY + timedelta(hours=3))
    before = _outcome(engine)
    engine.advance(TUESDAY)
    engine.advance(TUESDAY + timedelta(hours=3))
    assert _outcome(engine) == before


def test_fixed_commission_edges() -> None:
    assert fixed_commission(0, Decimal(0)) == 0
    assert fixed_commission(100, Decimal(15_800)) == Decimal("1.00")  # the minimum
    assert fixed_commission(1000, Decimal(158_000)) == Decimal("5.00")  # 0.005 per share
    assert fixed_commission(1, Decimal("32.10")) == Decimal("0.32")  # 1% of the value
    assert fixed_commission(300, Decimal("60")) == Decimal("0.60")  # penny stock: 1% cap
    parts = [execution_commission(0, Decimal(0), 50, Decimal(7900))]
    parts.append(execution_commission(50, Decimal(7900), 250, Decimal(39_500)))
    assert sum(parts) == fixed_commission(300, Decimal(47_400)) == Decimal("1.50")
    assert parts == [Decimal("1.00"), Decimal("0.50")]


def test_book_costs_include_commissions_and_realize_across_zero() -> None:
    book = Book(Decimal(10_000))
    book.apply(AAPL, 100, Decimal("176.32"), Decimal("1.00"))
    book.apply(AAPL, 100, Decimal("176.49"), Decimal("1.00"))
    holding = book.holdings[AAPL]
    assert holding.avg_cost == Decimal("176.415")  # IBKR's recorded avgCost for these fills
    book.apply(AAPL, -300, Decimal("180.00"), Decimal("1.50"))
    assert holding.quantity == -100
    assert holding.realized == (Decimal("180.00") - Decimal("176.415")) * 200 - Decimal("1.00")
    assert holding.avg_cost == Decimal("179.995")  # the short's proceeds less its commission
    assert book.cash == Decimal(10_000) - Decimal("35281") - 2 + Decimal(54_000) - Decimal("1.5")
    assert book.positions() == {AAPL: -100}
