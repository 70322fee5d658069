"""Bodies of the portfolio endpoints: account summary, ledger and position rows.

Shapes follow IBKR's samples (``portfolio_*`` in reference/orders/samples/). Values come from
the account under the simulator's 100% margin rule (:mod:`.book`): initial and maintenance
margin = gross position value, available funds = equity - margin, no leverage (buying power =
available funds). The ``-s`` (securities) keys repeat the totals, ``-c`` (commodities) are 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..instruments import SimInstrument
from .book import Holding

__all__ = ["Valuation", "ledger_body", "position_row", "summary_body"]

_ETFS = frozenset({"SPY", "QQQ"})
_ALL_EXCHANGES = "AMEX,NYSE,CBOE,PHLX,ARCA,ISLAND,BATS,IEX,EDGX,MEMX,NASDAQ"
#: Monetary summary keys: base name -> (source, segments). The source is a
#: :class:`Valuation` figure (None: always 0); segments "cs" add ``-c`` and ``-s`` variants.
_AMOUNTS: dict[str, tuple[str | None, str]] = {
    "accruedcash": (None, "cs"),
    "accrueddividend": (None, "cs"),
    "availablefunds": ("available", "cs"),
    "availabletotrade": ("available", "cs"),
    "availabletowithdraw": ("available", "cs"),
    "billable": (None, "cs"),
    "buyingpower": ("available", ""),
    "equitywithloanvalue": ("equity", "cs"),
    "excessliquidity": ("available", "cs"),
    "fullavailablefunds": ("available", "cs"),
    "fullexcessliquidity": ("available", "cs"),
    "fullinitmarginreq": ("gross", "cs"),
    "fullmaintmarginreq": ("gross", "cs"),
    "grosspositionvalue": ("gross", "s"),
    "guarantee": (None, "cs"),
    "indianstockhaircut": (None, "cs"),
    "initmarginreq": ("gross", "cs"),
    "lookaheadavailablefunds": ("available", "cs"),
    "lookaheadexcessliquidity": ("available", "cs"),
    "lookaheadinitmarginreq": ("gross", "cs"),
    "lookaheadmaintmarginreq": ("gross", "cs"),
    "maintmarginreq": ("gross", "cs"),
    "netliquidation": ("equity", "cs"),
    "netliquidationuncertainty": (None, ""),
    "pasharesvalue": (None, "cs"),
    "physicalcertificatevalue": (None, "cs"),
    "postexpirationexcess": (None, "cs"),
    "postexpirationmargin": (None, "cs"),
    "previousdayequitywithloanvalue": ("equity", "s"),
    "regtequity": ("equity", "s"),
    "regtmargin": ("gross", "s"),
    "sma": ("available", "s"),
    "totalcashvalue": ("cash", "cs"),
    "totaldebitcardpendingcharges": (None, "cs"),
}


@dataclass(frozen=True)
class Valuation:
    """The account at one instant (USD): ``cash``, ``equity`` (net liquidation), ``gross``
    position value, ``stock`` (net position value), ``unrealized`` and ``realized`` P&L."""

    cash: Decimal
    equity: Decimal
    gross: Decimal
    stock: Decimal
    unrealized: Decimal
    realized: Decimal

    @property
    def available(self) -> Decimal:
        return self.equity - self.gross


def _entry(amount: float, currency: str | None, value: str | None, ms: int) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": currency,
        "isNull": False,
        "severity": 0,
        "timestamp": ms,
        "value": value,
    }


def summary_body(account: str, valuation: Valuation, now_ms: int) -> dict[str, Any]:
    """``GET /portfolio/{accountId}/summary``: IBKR's 114 keys."""
    numbers = {
        "available": valuation.available,
        "equity": valuation.equity,
        "gross": valuation.gross,
        "cash": valuation.cash,
    }
    equity = float(valuation.equity)
    texts = {
        "accountcode": account,
        "accountready": "true",
        "accounttype": "INDIVIDUAL",
        "columnprio-c": "2",
        "columnprio-s": "1",
        "cushion": f"{float(valuation.available) / equity:.6f}" if equity else "0",
        "daytradesremaining": "-1",
        "daytradesremainingt+1": "-1",
        "daytradesremainingt+2": "-1",
        "daytradesremainingt+3": "-1",
        "daytradesremainingt+4": "-1",
        "daytradingstatus-s": f": : false: {equity:.2f}: :false",
        "depositoncredithold": "null",
        "highestseverity": "null",
        "leverage-s": f"{float(valuation.gross) / equity:.2f}" if equity else "0.0",
        "lookaheadnextchange": str(now_ms // 1000),
        "nlvandmargininreview": "false",
        "segmenttitle-c": "US Commodities",
        "segmenttitle-s": "US Securities",
        "tradingtype-s": "STKNOPT",
        "whatifpmenabled": "true",
    }
    body: dict[str, Any] = {key: _entry(0.0, None, text, now_ms) for key, text in texts.items()}
    for base, (source, segments) in _AMOUNTS.items():
        amount = float(numbers[source]) if source is not None else 0.0
        body[base] = _entry(amount, "USD", None, now_ms)
        if "c" in segments:
            body[f"{base}-c"] = _entry(0.0, "USD", None, now_ms)
        if "s" in segments:
            body[f"{base}-s"] = _entry(amount, "USD", None, now_ms)
    return dict(sorted(body.items()))


def ledger_body(account: str, valuation: Valuation, now_s: int) -> dict[str, Any]:
    """``GET /portfolio/{accountId}/ledger``: ``{"USD": {...}, "BASE": {...}}``."""

    def one(currency: str) -> dict[str, Any]:
        return {
            "acctcode": account,
            "cashbalance": float(valuation.cash),
            "cashbalancefxsegment": 0.0,
            "commoditymarketvalue": 0.0,
            "corporatebondsmarketvalue": 0.0,
            "cryptocurrencyvalue": 0.0,
            "currency": currency,
            "dividends": 0.0,
            "exchangerate": 1,
            "funds": 0.0,
            "futuremarketvalue": 0.0,
            "futureoptionmarketvalue": 0.0,
            "futuresonlypnl": 0.0,
            "interest": 0.0,
            "issueroptionsmarketvalue": 0.0,
            "key": "LedgerList",
            "moneyfunds": 0.0,
            "netliquidationvalue": float(valuation.equity),
            "realizedpnl": float(valuation.realized),
            "secondkey": currency,
            "sessionid": 1,
            "settledcash": float(valuation.cash),
            "severity": 0,
            "stockmarketvalue": float(valuation.stock),
            "stockoptionmarketvalue": 0.0,
            "tbillsmarketvalue": 0.0,
            "tbondsmarketvalue": 0.0,
            "timestamp": now_s,
            "unrealizedpnl": float(valuation.unrealized),
            "warrantsmarketvalue": 0.0,
        }

    usd = one("USD")
    usd["endofbundle"] = 1
    return {"USD": usd, "BASE": one("BASE")}


def position_row(
    account: str, inst: SimInstrument, holding: Holding, price: Decimal, full: bool
) -> dict[str, Any]:
    """One position; ``full`` adds the security-definition part (IBKR's first
    ``/position/{conid}`` answer lacks it: ``multiplier`` null and ``strike`` 0.0 then)."""
    quantity = holding.quantity
    avg = holding.avg_cost
    row: dict[str, Any] = {
        "acctId": account,
        "conid": inst.conid,
        "contractDesc": inst.symbol,
        "position": float(quantity),
        "mktPrice": float(price),
        "mktValue": round(float(quantity * price), 2),
        "currency": inst.currency,
        "avgCost": float(avg),
        "avgPrice": float(avg),
        "realizedPnl": round(float(holding.realized), 2),
        "unrealizedPnl": round(float((price - avg) * quantity), 2),
        "exchs": None,
        "expiry": None,
        "putOrCall": None,
        "multiplier": 0.0 if full else None,
        "strike": "0" if full else 0.0,
        "exerciseStyle": None,
        "conExchMap": [],
        "assetClass": inst.sec_type,
        "undConid": 0,
        "model": "",
    }
    if full:
        row.update(
            {
                "incrementRules": [{"lowerEdge": 0.0, "increment": 0.01}],
                "displayRule": {
                    "magnification": 0,
                    "displayRuleStep": [{"decimalDigits": 2, "lowerEdge": 0.0, "wholeDigits": 4}],
                },
                "time": 30,
                "allExchanges": _ALL_EXCHANGES,
                "listingExchange": inst.exchange,
                "countryCode": "US" if inst.us else "",
                "name": inst.name,
                "lastTradingDay": None,
                "group": None,
                "sector": None,
                "sectorGroup": None,
                "ticker": inst.symbol,
                "type": "ETF" if inst.symbol in _ETFS else "COMMON",
                "hasOptions": inst.us,
                "fullName": inst.symbol,
                "isUS": inst.us,
                "isEventContract": False,
                "pageSize": 100,
            }
        )
    return row
