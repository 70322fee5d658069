"""Portfolio JSON: account summary, ledger and positions, as frozen objects. Pure: no I/O.

Facts and sources: reference/orders/ibkr-cp-orders.md §6.

- ``/portfolio/{id}/summary``: ~114 keys (lower-case, ``-s`` securities / ``-c`` commodities
  segments), each ``{"amount", "currency", "isNull", "timestamp" (ms), "value", "severity"}``:
  money in ``amount``, text in ``value`` (``cushion "0.994598"``, ``accounttype``).
- ``/portfolio/{id}/ledger``: ``{"<CCY>": {...}, "BASE": {...}}`` of lower-case numbers,
  ``timestamp`` in epoch **seconds**.
- ``/portfolio/{id}/positions/{page}`` and ``/position/{conid}``: arrays of positions;
  ``avgCost`` includes the multiplier, ``avgPrice`` does not (options: 4229.16 vs 42.29). The
  first ``/position/{conid}`` of a session may lack the security-definition part.

Account ids are secrets: kept in ``account`` fields, out of ``repr``; the summary's
``accountcode`` is moved out of :attr:`AccountSummary.values` into ``account`` for that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..wire import ACCOUNT_ID
from .readers import (
    malformed,
    read_bool,
    read_epoch_ms,
    read_epoch_s,
    read_float,
    read_id,
    read_object,
    read_text,
)

__all__ = [
    "AccountSummary",
    "Ledger",
    "LedgerEntry",
    "Position",
    "SummaryValue",
    "parse_ledger",
    "parse_positions",
    "parse_summary",
]

SUMMARY_ENDPOINT = "/portfolio/{accountId}/summary"
LEDGER_ENDPOINT = "/portfolio/{accountId}/ledger"
POSITIONS_ENDPOINT = "/portfolio/{accountId}/positions/{pageId}"


@dataclass(frozen=True)
class SummaryValue:
    """One summary entry: ``amount`` (money or a count; None when IBKR says ``isNull``),
    ``currency`` (None for non-money entries), ``text`` (IBKR's ``value``, for text entries),
    ``timestamp`` (UTC), ``severity``."""

    amount: float | None
    currency: str | None = None
    text: str | None = None
    timestamp: datetime | None = None
    severity: int = 0


@dataclass(frozen=True)
class AccountSummary:
    """``GET /portfolio/{accountId}/summary``: :attr:`values` by IBKR's key, and the main
    figures as properties (base currency amounts; None when IBKR did not send the key)."""

    values: Mapping[str, SummaryValue] = field(repr=False)
    account: str | None = field(default=None, repr=False)

    def amount(self, key: str) -> float | None:
        """The amount of ``key`` (``"netliquidation"``, ``"totalcashvalue-s"``...)."""
        value = self.values.get(key)
        return value.amount if value is not None else None

    @property
    def currency(self) -> str | None:
        value = self.values.get("netliquidation")
        return value.currency if value is not None else None

    @property
    def net_liquidation(self) -> float | None:
        return self.amount("netliquidation")

    @property
    def total_cash_value(self) -> float | None:
        return self.amount("totalcashvalue")

    @property
    def available_funds(self) -> float | None:
        return self.amount("availablefunds")

    @property
    def buying_power(self) -> float | None:
        return self.amount("buyingpower")

    @property
    def equity_with_loan_value(self) -> float | None:
        return self.amount("equitywithloanvalue")

    @property
    def excess_liquidity(self) -> float | None:
        return self.amount("excessliquidity")

    @property
    def init_margin_req(self) -> float | None:
        return self.amount("initmarginreq")

    @property
    def maint_margin_req(self) -> float | None:
        return self.amount("maintmarginreq")

    @property
    def gross_position_value(self) -> float | None:
        return self.amount("grosspositionvalue")

    def __repr__(self) -> str:
        return (
            f"AccountSummary(net_liquidation={self.net_liquidation!r}, "
            f"total_cash_value={self.total_cash_value!r}, currency={self.currency!r}, "
            f"{len(self.values)} values)"
        )


def _summary_value(key: str, item: Any, endpoint: str) -> SummaryValue:
    data = read_object(item, endpoint, f"summary entry {key!r}")
    is_null = read_bool(data.get("isNull"), endpoint, f"{key}.isNull")
    severity = read_float(data.get("severity"), endpoint, f"{key}.severity")
    return SummaryValue(
        amount=None if is_null else read_float(data.get("amount"), endpoint, f"{key}.amount"),
        currency=read_text(data.get("currency"), endpoint, f"{key}.currency"),
        text=read_text(data.get("value"), endpoint, f"{key}.value"),
        timestamp=read_epoch_ms(data.get("timestamp"), endpoint, f"{key}.timestamp"),
        severity=int(severity or 0),
    )


def parse_summary(body: Any, *, endpoint: str = SUMMARY_ENDPOINT) -> AccountSummary:
    """``GET /portfolio/{accountId}/summary`` (keys that are not entry objects are skipped)."""
    data = read_object(body, endpoint)
    values: dict[str, SummaryValue] = {}
    account: str | None = None
    for key, item in data.items():
        if not isinstance(item, Mapping):
            continue
        value = _summary_value(str(key), item, endpoint)
        if key == "accountcode" or (value.text is not None and ACCOUNT_ID.search(value.text)):
            account = account or value.text
            continue
        values[str(key)] = value
    if not values:
        raise malformed(endpoint, "no summary entries")
    return AccountSummary(values, account)


@dataclass(frozen=True)
class LedgerEntry:
    """One currency of the ledger (``currency`` ``"BASE"`` for the base-currency totals).
    Amounts in that currency; ``exchange_rate`` to the base currency; ``timestamp`` UTC."""

    currency: str
    cash_balance: float | None
    settled_cash: float | None = None
    net_liquidation_value: float | None = None
    stock_market_value: float | None = None
    unrealized_pnl: float | None = None
    realized_pnl: float | None = None
    exchange_rate: float | None = None
    interest: float | None = None
    dividends: float | None = None
    timestamp: datetime | None = None
    account: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Ledger:
    """``GET /portfolio/{accountId}/ledger``: entries by currency (``"BASE"``, ``"USD"``...)."""

    entries: Mapping[str, LedgerEntry]

    @property
    def base(self) -> LedgerEntry | None:
        """The base-currency totals (IBKR's ``BASE`` entry), or None."""
        return self.entries.get("BASE")


def _ledger_entry(key: str, item: Any, endpoint: str) -> LedgerEntry:
    data = read_object(item, endpoint, f"ledger entry {key!r}")

    def number(name: str) -> float | None:
        return read_float(data.get(name), endpoint, f"{key}.{name}")

    return LedgerEntry(
        currency=read_text(data.get("currency"), endpoint, f"{key}.currency") or key,
        cash_balance=number("cashbalance"),
        settled_cash=number("settledcash"),
        net_liquidation_value=number("netliquidationvalue"),
        stock_market_value=number("stockmarketvalue"),
        unrealized_pnl=number("unrealizedpnl"),
        realized_pnl=number("realizedpnl"),
        exchange_rate=number("exchangerate"),
        interest=number("interest"),
        dividends=number("dividends"),
        timestamp=read_epoch_s(data.get("timestamp"), endpoint, f"{key}.timestamp"),
        account=read_text(data.get("acctcode"), endpoint, f"{key}.acctcode"),
    )


def parse_ledger(body: Any, *, endpoint: str = LEDGER_ENDPOINT) -> Ledger:
    """``GET /portfolio/{accountId}/ledger``."""
    data = read_object(body, endpoint)
    entries = {
        str(key): _ledger_entry(str(key), item, endpoint)
        for key, item in data.items()
        if isinstance(item, Mapping)
    }
    if not entries:
        raise malformed(endpoint, "no ledger entries")
    return Ledger(entries)


@dataclass(frozen=True)
class Position:
    """One position. ``position`` is signed (shares or contracts; negative = short);
    ``avg_cost`` includes the multiplier, ``avg_price`` does not; prices and P&L in
    ``currency``; ``multiplier`` None when IBKR sends 0 or null (stocks). ``has_secdef`` is
    False for IBKR's short form (no ``ticker``, ``name``...).
    """

    conid: int
    position: float
    currency: str | None
    avg_cost: float | None = None
    avg_price: float | None = None
    market_price: float | None = None
    market_value: float | None = None
    realized_pnl: float | None = None
    unrealized_pnl: float | None = None
    description: str | None = None
    asset_class: str | None = None
    ticker: str | None = None
    listing_exchange: str | None = None
    multiplier: float | None = None
    has_secdef: bool = False
    account: str | None = field(default=None, repr=False)


def _position(item: Any, endpoint: str) -> Position:
    data = read_object(item, endpoint, "a position")
    position = read_float(data.get("position"), endpoint, "position")
    if position is None:
        raise malformed(endpoint, "a position without a size")
    multiplier = read_float(data.get("multiplier"), endpoint, "multiplier")
    return Position(
        conid=read_id(data.get("conid"), endpoint, "conid"),
        position=position,
        currency=read_text(data.get("currency"), endpoint, "currency"),
        avg_cost=read_float(data.get("avgCost"), endpoint, "avgCost"),
        avg_price=read_float(data.get("avgPrice"), endpoint, "avgPrice"),
        market_price=read_float(data.get("mktPrice"), endpoint, "mktPrice"),
        market_value=read_float(data.get("mktValue"), endpoint, "mktValue"),
        realized_pnl=read_float(data.get("realizedPnl"), endpoint, "realizedPnl"),
        unrealized_pnl=read_float(data.get("unrealizedPnl"), endpoint, "unrealizedPnl"),
        description=read_text(data.get("contractDesc"), endpoint, "contractDesc"),
        asset_class=read_text(data.get("assetClass"), endpoint, "assetClass"),
        ticker=read_text(data.get("ticker"), endpoint, "ticker"),
        listing_exchange=read_text(data.get("listingExchange"), endpoint, "listingExchange"),
        multiplier=multiplier or None,
        has_secdef="ticker" in data or "name" in data,
        account=read_text(data.get("acctId"), endpoint, "acctId"),
    )


def parse_positions(body: Any, *, endpoint: str = POSITIONS_ENDPOINT) -> list[Position]:
    """A positions page or ``/position/{conid}``: a list (``[]`` when nothing is held)."""
    if not isinstance(body, list):
        raise malformed(endpoint, f"a {type(body).__name__}, expected a list of positions")
    return [_position(item, endpoint) for item in body]
