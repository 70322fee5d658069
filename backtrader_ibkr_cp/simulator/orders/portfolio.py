"""The portfolio endpoints (``/portfolio/*``; reference/orders/ibkr-cp-orders.md §6).

``GET /portfolio/accounts`` must come first in a session, as IBKR's docs require; IBKR does not
document what happens otherwise, so the simulator answers every other portfolio endpoint 400
``{"error": "Bad Request: Please query /portfolio/accounts first", "statusCode": 400}`` (the
wording of the ``/iserver/accounts`` rule) until it has been called in the brokerage session.

Positions (``/positions/{pageId}``, 100 per page, and ``/position/{conid}``) come from a cache,
as at IBKR: a view taken at the first read, kept until ``POST /positions/invalidate`` or until it
is 60 simulated seconds old (IBKR does not say how long its cache lags; the figure is the
simulator's). The first ``/position/{conid}`` request for a conid in a session answers the short
form without the security definition (as in a real capture), later ones the full form.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ..context import SimContext
from ..wire import Request, Response
from .book import Holding
from .desk import TradingDesk
from .endpoints import bad_request
from .engine import OrderEngine
from .money import dollars
from .summary import Valuation, ledger_body, position_row, summary_body

__all__ = [
    "PORTFOLIO_FIRST",
    "POSITIONS_CACHE_SECONDS",
    "invalidate",
    "ledger",
    "portfolio_accounts",
    "position",
    "positions",
    "summary",
]

POSITIONS_CACHE_SECONDS = 60.0
PORTFOLIO_FIRST = "Bad Request: Please query /portfolio/accounts first"
PAGE_SIZE = 100


def _precheck(request: Request, ctx: SimContext) -> Response | None:
    desk: TradingDesk = ctx.trading
    with desk.locked():
        primed = desk.scope.portfolio_primed
    if not primed:
        return bad_request(PORTFOLIO_FIRST)
    account = request.params.get("account")
    if account is not None and account != desk.account:
        return bad_request(f"Bad Request: accountId is not valid: {account}")
    return None


def _prices(engine: OrderEngine) -> Callable[[int], Decimal]:
    assert engine.now is not None
    epoch = engine.now.timestamp()
    cache: dict[int, Decimal] = {}

    def price_of(conid: int) -> Decimal:
        if conid not in cache:
            inst = engine.instruments.get(conid)
            cache[conid] = dollars(engine.last_price(inst, epoch)) if inst else Decimal(0)
        return cache[conid]

    return price_of


def valuation(engine: OrderEngine) -> Valuation:
    """The account valued at the engine's now."""
    price_of = _prices(engine)
    book = engine.book
    stock, gross = book.market_value(price_of)
    unrealized = sum(
        ((price_of(c) - h.avg_cost) * h.quantity for c, h in book.holdings.items() if h.quantity),
        Decimal(0),
    )
    realized = sum((h.realized for h in book.holdings.values()), Decimal(0))
    return Valuation(book.cash, book.cash + stock, gross, stock, unrealized, realized)


def portfolio_accounts(request: Request, ctx: SimContext) -> Response:
    """``GET /portfolio/accounts``: the one account (shape of IBKR's spec example)."""
    desk: TradingDesk = ctx.trading
    with desk.locked():
        desk.scope.portfolio_primed = True
    account = desk.account
    return Response.json(
        [
            {
                "id": account,
                "PrepaidCrypto-Z": False,
                "PrepaidCrypto-P": False,
                "brokerageAccess": True,
                "accountId": account,
                "accountVan": account,
                "accountTitle": "Simulated Trader",
                "displayName": "Simulated Trader",
                "accountAlias": None,
                "accountStatus": 1_590_724_800_000,
                "currency": "USD",
                "type": "DEMO",
                "tradingType": "STKNOPT",
                "businessType": "IB_SALES",
                "ibEntity": "IBLLC-US",
                "faclient": False,
                "clearingStatus": "O",
                "covestor": False,
                "noClientTrading": False,
                "trackVirtualFXPortfolio": True,
                "acctCustType": "INDIVIDUAL",
                "parent": {
                    "mmc": [],
                    "accountId": "",
                    "isMParent": False,
                    "isMChild": False,
                    "isMultiplex": False,
                },
                "desc": account,
            }
        ]
    )


def summary(request: Request, ctx: SimContext) -> Response:
    """``GET /portfolio/{accountId}/summary``."""
    refused = _precheck(request, ctx)
    if refused is not None:
        return refused
    desk: TradingDesk = ctx.trading
    with desk.locked() as engine:
        assert engine.now is not None
        value = valuation(engine)
        now_ms = int(engine.now.timestamp() * 1000)
    return Response.json(summary_body(desk.account, value, now_ms))


def ledger(request: Request, ctx: SimContext) -> Response:
    """``GET /portfolio/{accountId}/ledger``."""
    refused = _precheck(request, ctx)
    if refused is not None:
        return refused
    desk: TradingDesk = ctx.trading
    with desk.locked() as engine:
        assert engine.now is not None
        value = valuation(engine)
        now_s = int(engine.now.timestamp())
    return Response.json(ledger_body(desk.account, value, now_s))


def _cached_rows(desk: TradingDesk, engine: OrderEngine) -> list[dict[str, Any]]:
    """The positions view (full rows), refreshed when invalidated or stale."""
    assert engine.now is not None
    epoch = engine.now.timestamp()
    scope = desk.scope
    cached = scope.positions_cache
    if cached is None or not 0 <= epoch - cached[0] < POSITIONS_CACHE_SECONDS:
        price_of = _prices(engine)
        rows = []
        for conid, holding in engine.book.holdings.items():
            inst = engine.instruments.get(conid)
            if holding.quantity and inst is not None:
                copy = Holding(holding.quantity, holding.cost, holding.realized)
                rows.append(position_row(desk.account, inst, copy, price_of(conid), True))
        cached = scope.positions_cache = (epoch, rows)
    return [dict(row) for row in cached[1]]


def positions(request: Request, ctx: SimContext) -> Response:
    """``GET /portfolio/{accountId}/positions/{pageId}[?sort=field][&direction=a|d]``."""
    refused = _precheck(request, ctx)
    if refused is not None:
        return refused
    page_text = request.params.get("page", "")
    if not page_text.isdigit():
        return bad_request(f"pageId must be a whole number from 0, got {page_text!r}")
    sort = request.query.get("sort") or "contractDesc"
    descending = (request.query.get("direction") or "a").lower() == "d"
    desk: TradingDesk = ctx.trading
    with desk.locked() as engine:
        rows = _cached_rows(desk, engine)
    rows.sort(key=lambda row: (str(row.get(sort, "")), row["conid"]), reverse=descending)
    first = int(page_text) * PAGE_SIZE
    return Response.json(rows[first : first + PAGE_SIZE])


def position(request: Request, ctx: SimContext) -> Response:
    """``GET /portfolio/{accountId}/position/{conid}``: ``[]`` when not held."""
    refused = _precheck(request, ctx)
    if refused is not None:
        return refused
    text = request.params.get("conid", "")
    if not text.isdigit():
        return bad_request(f"conid must be a whole number, got {text!r}")
    conid = int(text)
    desk: TradingDesk = ctx.trading
    with desk.locked() as engine:
        rows = [row for row in _cached_rows(desk, engine) if row["conid"] == conid]
        first_time = conid not in desk.scope.positions_seen
        desk.scope.positions_seen.add(conid)
        if rows and first_time:
            inst = engine.instruments.get(conid)
            assert inst is not None
            row = rows[0]
            holding = Holding(int(row["position"]), Decimal(0), Decimal(str(row["realizedPnl"])))
            short = position_row(desk.account, inst, holding, Decimal(str(row["mktPrice"])), False)
            short.update({k: row[k] for k in ("avgCost", "avgPrice", "unrealizedPnl")})
            rows = [short]
    return Response.json(rows)


def invalidate(request: Request, ctx: SimContext) -> Response:
    """``POST /portfolio/{accountId}/positions/invalidate``: drop the positions cache."""
    refused = _precheck(request, ctx)
    if refused is not None:
        return refused
    desk: TradingDesk = ctx.trading
    with desk.locked():
        desk.scope.positions_cache = None
    return Response.json({"message": "success"})
