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
    "HISTORY",
    "HISTORY_MAX_POINTS",
    "IBKR_HISTORY_CONCURRENCY",
    "IBKR_ORDERS_SECONDS_PER_REQUEST",
    "IBKR_SNAPSHOT_PER_SECOND",
    "IBKR_SSO_VALIDATE_PER_MINUTE",
    "IBKR_TICKLE_PER_SECOND",
    "IBKR_TOTAL_PER_SECOND",
    "MAX_SNAPSHOT_CONIDS",
    "MAX_SNAPSHOT_FIELDS",
    "PERIOD_UNITS",
    "SNAPSHOT",
    "SSO_VALIDATE",
    "TICKLE",
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


def is_paper_account(account_id: str) -> bool:
    """True for a paper account id (``DU...``, ``DF...``, ``DI...``)."""
    return bool(ACCOUNT_ID.fullmatch(account_id)) and account_id.startswith("D")
