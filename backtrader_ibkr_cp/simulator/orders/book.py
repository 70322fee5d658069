"""The account's cash and positions, and the margin rule that refuses orders.

Cash and costs are exact :class:`~decimal.Decimal` dollars. A position's ``cost`` is the signed
total cost of the open shares *including commissions* (IBKR's ``avgCost``: two 100-share buys at
176.32 and 176.49 with USD 1.00 each give 176.415), so ``avg_cost = cost / quantity``. Closing
shares realizes ``(price - avg_cost) * shares`` (sign-adjusted for shorts) less the closing
commission; an execution that crosses zero is split pro rata (commission included).

Margin (an assumption, documented in :meth:`Book.available_funds`): every position and every
working order needs 100% of its value, i.e. no leverage; shorts are allowed under the same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

__all__ = ["Book", "Holding", "exposure_increase"]


@dataclass
class Holding:
    """Signed ``quantity`` (shares), signed ``cost`` (USD incl. commissions), ``realized`` P&L."""

    quantity: int = 0
    cost: Decimal = Decimal(0)
    realized: Decimal = Decimal(0)

    @property
    def avg_cost(self) -> Decimal:
        return self.cost / self.quantity if self.quantity else Decimal(0)


def exposure_increase(position: int, signed: int) -> int:
    """Shares by which ``|position|`` grows when ``signed`` shares (+buy/-sell) are added."""
    return max(0, abs(position + signed) - abs(position))


class Book:
    """Cash and holdings of one account (not thread-safe; the engine holds the lock)."""

    def __init__(self, cash: Decimal) -> None:
        self.starting_cash = cash
        self.cash = cash
        self.holdings: dict[int, Holding] = {}

    def position(self, conid: int) -> int:
        holding = self.holdings.get(conid)
        return holding.quantity if holding is not None else 0

    def positions(self) -> dict[int, int]:
        """``{conid: signed shares}`` of the open (non-zero) positions."""
        return {c: h.quantity for c, h in self.holdings.items() if h.quantity}

    def apply(self, conid: int, signed: int, price: Decimal, commission: Decimal) -> None:
        """Book an execution of ``signed`` shares (+buy/-sell) at ``price`` USD."""
        self.cash -= signed * price + commission
        holding = self.holdings.setdefault(conid, Holding())
        size = abs(signed)
        direction = 1 if signed > 0 else -1
        if holding.quantity == 0 or (holding.quantity > 0) == (signed > 0):
            holding.cost += signed * price + commission
            holding.quantity += signed
            return
        closed = min(size, abs(holding.quantity))
        closing_commission = commission * closed / size
        held = 1 if holding.quantity > 0 else -1
        avg = holding.avg_cost
        holding.realized += (price - avg) * closed * held - closing_commission
        holding.cost -= avg * closed * held
        holding.quantity -= closed * held
        opened = size - closed
        if holding.quantity == 0:
            holding.cost = Decimal(0)
        if opened:
            holding.quantity = direction * opened
            holding.cost = direction * opened * price + (commission - closing_commission)

    # -- valuation ---------------------------------------------------------------------------

    def market_value(self, price_of: Callable[[int], Decimal]) -> tuple[Decimal, Decimal]:
        """``(net position value, gross position value)`` at ``price_of(conid)`` USD."""
        net = gross = Decimal(0)
        for conid, holding in self.holdings.items():
            if holding.quantity:
                value = holding.quantity * price_of(conid)
                net += value
                gross += abs(value)
        return net, gross

    def available_funds(
        self, price_of: Callable[[int], Decimal], reserved: Iterable[Decimal] = ()
    ) -> tuple[Decimal, Decimal, Decimal]:
        """``(available, equity, margin)`` in USD under the 100% margin rule.

        equity (IBKR's "equity with loan value") = cash + net position value; margin = gross
        position value + ``reserved`` (working orders' exposure); available = equity - margin.
        With long positions only, available = cash - reserved.
        """
        net, gross = self.market_value(price_of)
        equity = self.cash + net
        margin = gross + sum(reserved, Decimal(0))
        return equity - margin, equity, margin
