"""Money in the simulated account: exact decimals, IBKR's fixed commissions, IBKR's number texts.

Prices travel as integer cents (the market model's unit); cash, costs and commissions are
:class:`~decimal.Decimal` dollars so the account's ground truth adds up exactly.

Commissions follow IBKR Pro *Fixed* pricing for US stocks, as published on
https://www.interactivebrokers.com/en/pricing/commissions-stocks.php : USD 0.005 per share,
at least USD 1.00 and at most 1% of the trade value per order (exchange, regulatory and
clearing fees, which Fixed pricing includes or passes through for tiny amounts, are left out).
The minimum and maximum apply per *order*: an execution is charged
``fee(order's shares and value after it) - fee(before it)``, each ``fee`` rounded half-up to
the cent, so the executions of one order add up to exactly the order's fee.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

__all__ = [
    "PER_SHARE",
    "dollars",
    "execution_commission",
    "fixed_commission",
    "money_text",
    "price_text",
]

CENT = Decimal("0.01")
#: IBKR Pro Fixed, US stocks: per share, minimum and maximum (share of trade value) per order.
PER_SHARE = Decimal("0.005")
MINIMUM = Decimal("1.00")
MAXIMUM_RATE = Decimal("0.01")


def dollars(cents: int) -> Decimal:
    """``17396`` -> ``Decimal("173.96")``."""
    return Decimal(cents) / 100


def fixed_commission(shares: int, value: Decimal) -> Decimal:
    """The Fixed-pricing fee (USD, whole cents) of an order of ``shares`` worth ``value`` USD.

    0 for 0 shares; otherwise ``min(max(0.005 * shares, 1.00), 1% of value)``.
    """
    if shares <= 0:
        return Decimal(0)
    fee = min(max(PER_SHARE * shares, MINIMUM), MAXIMUM_RATE * value)
    return fee.quantize(CENT, rounding=ROUND_HALF_UP)


def execution_commission(
    shares_before: int, value_before: Decimal, shares: int, value: Decimal
) -> Decimal:
    """Commission (USD) of one execution of ``shares`` worth ``value`` after earlier ones."""
    after = fixed_commission(shares_before + shares, value_before + value)
    return after - fixed_commission(shares_before, value_before)


def price_text(cents: int) -> str:
    """``17396`` -> ``"173.96"`` (IBKR's price strings)."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def money_text(value: Decimal) -> str:
    """A decimal as IBKR writes averages and commissions: at least 2 decimals, no trailing
    zeros beyond them, at most 6 (``Decimal("176.405")`` -> ``"176.405"``, ``1`` -> ``"1.00"``).
    """
    text = f"{value.quantize(Decimal('0.000001'), rounding=ROUND_HALF_UP):f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction:0<2}"
