"""Facts about IBKR's Client Portal wire format, written once (sources in
``../shared/reference/ibkr-cp-api.md`` and ``orders/ibkr-cp-orders.md``).

Every other module takes these names from here: the API root, endpoint paths, the
documented pacing limits, history period units, and the account-id pattern the scrubbers
and redactors share. Pure constants; imports nothing of the package.
"""

from __future__ import annotations

import re

__all__ = [
    "ACCOUNT_ID",
    "API_ROOT",
    "COID_PLACEHOLDER",
    "COID_PREFIX",
    "FIVE_SECOND_ENDPOINTS",
    "HISTORY",
    "HISTORY_MAX_POINTS",
    "IBKR_HISTORY_CONCURRENCY",
    "IBKR_ORDERS_SECONDS_PER_REQUEST",
    "IBKR_SNAPSHOT_PER_SECOND",
    "IBKR_SSO_VALIDATE_PER_MINUTE",
    "IBKR_TICKLE_PER_SECOND",
    "IBKR_TOTAL_PER_SECOND",
    "INVALIDATE_POSITIONS",
    "ISERVER_ACCOUNTS",
    "LIVE_ORDERS",
    "MAX_SNAPSHOT_CONIDS",
    "MAX_SNAPSHOT_FIELDS",
    "MAX_SUPPRESSED_QUESTIONS",
    "ORDER",
    "ORDER_STATUS",
    "PERIOD_UNITS",
    "PLACE_ORDERS",
    "PNL_PARTITIONED",
    "PORTFOLIO_ACCOUNTS",
    "PORTFOLIO_LEDGER",
    "PORTFOLIO_POSITION",
    "PORTFOLIO_POSITIONS",
    "PORTFOLIO_SUBACCOUNTS",
    "PORTFOLIO_SUMMARY",
    "REPLY",
    "RESET_SUPPRESSED",
    "SNAPSHOT",
    "SSO_VALIDATE",
    "SUPPRESS_QUESTIONS",
    "SWITCH_ACCOUNT",
    "TICKLE",
    "TRADES",
    "TRADES_MAX_DAYS",
    "WEBSOCKET",
    "is_paper_account",
]

#: The API root under the gateway's address.
API_ROOT = "/v1/api"

# -- endpoints (paths under API_ROOT) ------------------------------------------------------

HISTORY = "/iserver/marketdata/history"
SNAPSHOT = "/iserver/marketdata/snapshot"
TICKLE = "/tickle"
SSO_VALIDATE = "/sso/validate"
WEBSOCKET = "/ws"

# -- pacing (IBKR Web API docs, "Pacing Limitations"; ibkr-cp-api.md section 3) -------------

#: Requests per second in total through the Client Portal Gateway, per user.
IBKR_TOTAL_PER_SECOND = 10.0
#: ``GET /iserver/marketdata/snapshot`` requests per second.
IBKR_SNAPSHOT_PER_SECOND = 10.0
#: Concurrent ``GET /iserver/marketdata/history`` requests.
IBKR_HISTORY_CONCURRENCY = 5
#: ``/tickle`` requests per second.
IBKR_TICKLE_PER_SECOND = 1.0
#: ``GET /sso/validate`` requests per minute.
IBKR_SSO_VALIDATE_PER_MINUTE = 1.0
#: Seconds between requests to the order, trade, pnl and portfolio-account lists
#: (``/iserver/account/orders``, ``/iserver/account/trades``, ``/portfolio/accounts``...:
#: 1 request per 5 s).
IBKR_ORDERS_SECONDS_PER_REQUEST = 5.0

# -- orders, executions, accounts, portfolio (orders/ibkr-cp-orders.md sections 2-6) ------

ISERVER_ACCOUNTS = "/iserver/accounts"
#: ``POST`` ``{"acctId": ...}``: select the account orders and live orders refer to.
SWITCH_ACCOUNT = "/iserver/account"
#: ``POST`` ``{"orders": [ticket, ...]}`` (one ticket, or a bracket / OCA group).
PLACE_ORDERS = "/iserver/account/{account}/orders"
#: ``POST`` one unwrapped ticket: modify; ``DELETE``: cancel (``order_id`` -1: all open).
ORDER = "/iserver/account/{account}/order/{order_id}"
#: ``POST`` ``{"confirmed": true|false}``: answer a question.
REPLY = "/iserver/reply/{reply_id}"
SUPPRESS_QUESTIONS = "/iserver/questions/suppress"
RESET_SUPPRESSED = "/iserver/questions/suppress/reset"
LIVE_ORDERS = "/iserver/account/orders"
ORDER_STATUS = "/iserver/account/order/status/{order_id}"
TRADES = "/iserver/account/trades"
PNL_PARTITIONED = "/iserver/account/pnl/partitioned"
PORTFOLIO_ACCOUNTS = "/portfolio/accounts"
PORTFOLIO_SUBACCOUNTS = "/portfolio/subaccounts"
PORTFOLIO_SUMMARY = "/portfolio/{account}/summary"
PORTFOLIO_LEDGER = "/portfolio/{account}/ledger"
#: ``page`` from 0, up to 100 positions a page.
PORTFOLIO_POSITIONS = "/portfolio/{account}/positions/{page}"
PORTFOLIO_POSITION = "/portfolio/{account}/position/{conid}"
INVALIDATE_POSITIONS = "/portfolio/{account}/positions/invalidate"
#: The endpoints IBKR limits to one request per :data:`IBKR_ORDERS_SECONDS_PER_REQUEST`
#: each (Web API docs, "Pacing Limitations"; ``/portfolio/accounts`` and ``/subaccounts``
#: are listed together and paced here as one).
FIVE_SECOND_ENDPOINTS = (
    LIVE_ORDERS,
    TRADES,
    PNL_PARTITIONED,
    PORTFOLIO_ACCOUNTS,
    PORTFOLIO_SUBACCOUNTS,
)
#: Question ids per ``/iserver/questions/suppress`` request ("more ⇒ system error", V1).
MAX_SUPPRESSED_QUESTIONS = 51
#: The most ``days`` ``/iserver/account/trades`` looks back.
TRADES_MAX_DAYS = 7

# -- market data ----------------------------------------------------------------------------

#: Conids per snapshot request.
MAX_SNAPSHOT_CONIDS = 100
#: Fields per snapshot request.
MAX_SNAPSHOT_FIELDS = 50
#: "This endpoint provides a maximum of 1000 data points" (history).
HISTORY_MAX_POINTS = 1000
#: History ``period`` units and their allowed counts (``m`` is a month).
PERIOD_UNITS = {
    "min": (1, 30),
    "h": (1, 8),
    "d": (1, 1000),
    "w": (1, 792),
    "m": (1, 182),
    "y": (1, 15),
}

# -- accounts -------------------------------------------------------------------------------

#: IBKR account ids: ``U`` (individual), ``F`` (advisor), ``I`` (broker), each with a ``D``
#: in front for the paper twin (``DU1234567``), five or more digits, sometimes a letter after
#: the prefix (``DUO873728``) or at the end (``DUO873728C``). Secrets: scrubbed from
#: cassettes, logs and error messages alike (this one pattern everywhere).
ACCOUNT_ID = re.compile(r"(?<![A-Za-z0-9])D?[UFI][A-Z]?[0-9]{5,}[A-Z]?(?![A-Za-z0-9])")
#: The per-run prefix of every cOID the broker sends (``bt`` + a lower-case base-36 run id +
#: ``-``, then the order's ref): replaced in cassettes by :data:`COID_PLACEHOLDER`, so a
#: recording says nothing about the process or the moment that made it.
COID_PREFIX = re.compile(r"(?<![A-Za-z0-9])bt[0-9a-z]{6,}-(?=[0-9])")
COID_PLACEHOLDER = "btRUN-"


def is_paper_account(account_id: str) -> bool:
    """True for a paper account id (``DU...``, ``DF...``, ``DI...``)."""
    return bool(ACCOUNT_ID.fullmatch(account_id)) and account_id.startswith("D")
