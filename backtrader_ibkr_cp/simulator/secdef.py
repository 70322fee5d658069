"""``/trsrv/secdef``: security definitions by conid (JSON shaped like IBKR's spec example).

IBKR's OpenAPI (2.13) documents ``GET /trsrv/secdef?conids=265598,8314`` answering
``{"secdef": [{conid, currency, name, assetClass, ticker, listingExchange, ...}]}``; older
gateways take ``POST`` with ``{"conids": [...]}`` (both are served). At most 200 conids per
request. A conid the simulator does not list is left out of the answer (the client then knows
it does not exist).
"""

from __future__ import annotations

from typing import Any

from .context import SimContext
from .instruments import SimInstrument
from .wire import Request, Response

__all__ = ["MAX_CONIDS", "trsrv_secdef"]

#: IBKR: "200 conids/request" for /trsrv/secdef.
MAX_CONIDS = 200

_COUNTRY = {"USD": "US", "CHF": "CH", "MXN": "MX", "EUR": "DE", "GBP": "GB", "CAD": "CA"}


def _conids(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item).strip() for item in value]
    if isinstance(value, (str, int)):
        return [item.strip() for item in str(value).split(",") if item.strip()]
    return []


def _entry(inst: SimInstrument) -> dict[str, Any]:
    return {
        "incrementRules": [{"lowerEdge": 0.0, "increment": 0.01}],
        "displayRule": {
            "magnification": 0,
            "displayRuleStep": [{"decimalDigits": 2, "lowerEdge": 0.0, "wholeDigits": 4}],
        },
        "conid": inst.conid,
        "currency": inst.currency,
        "time": 0,
        "chineseName": None,
        "allExchanges": inst.exchange,
        "listingExchange": inst.exchange,
        "countryCode": _COUNTRY.get(inst.currency, ""),
        "name": inst.name,
        "assetClass": inst.sec_type,
        "expiry": None,
        "lastTradingDay": None,
        "group": None,
        "putOrCall": None,
        "sector": None,
        "sectorGroup": None,
        "strike": "0",
        "ticker": inst.symbol,
        "undConid": 0,
        "multiplier": 0.0,
        "type": "COMMON",
        "hasOptions": inst.us,
        "fullName": inst.symbol,
        "isUS": inst.us,
        "isEventContract": False,
    }


def trsrv_secdef(request: Request, ctx: SimContext) -> Response:
    """``GET /trsrv/secdef?conids=265598,8314`` (or ``POST {"conids": [...]}``)."""
    wanted = _conids(request.param("conids"))
    if not wanted:
        return Response.error(400, "conids is required, e.g. conids=265598,8314")
    if len(wanted) > MAX_CONIDS:
        return Response.error(400, f"at most {MAX_CONIDS} conids per request")
    if not all(item.isdigit() for item in wanted):
        return Response.error(400, "conids must be contract ids (digits), e.g. 265598,8314")
    found = (ctx.instruments.get(int(item)) for item in dict.fromkeys(wanted))
    return Response.json({"secdef": [_entry(inst) for inst in found if inst is not None]})
