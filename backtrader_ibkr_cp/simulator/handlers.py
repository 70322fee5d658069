"""Session, account, contract and subscription endpoints (JSON shaped like IBKR's samples).

Market data lives in :mod:`.history` and :mod:`.snapshot`. Every handler takes the
:class:`~.wire.Request` and the :class:`~.context.SimContext` and returns a
:class:`~.wire.Response`; session gating, pacing and faults happen before, in :mod:`.gateway`.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

from .context import SimContext
from .instruments import SimInstrument
from .wire import Request, Response

__all__ = [
    "accounts",
    "auth_status",
    "logout",
    "reauthenticate",
    "secdef_search",
    "sso_validate",
    "ssodh_init",
    "tickle",
    "trsrv_stocks",
    "unsubscribe",
    "unsubscribe_all",
]

_OPTION_EXCHANGES = "SMART;AMEX;BATS;BOX;CBOE;CBOE2;EDGX;EMERALD;GEMINI;ISE;MIAX;PHLX;PSE"
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def _truthy(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes")


def _session_cookie(ctx: SimContext) -> tuple[str, str]:
    secure = "; Secure" if ctx.secure else ""
    return ("Set-Cookie", f"x-sess-uuid=0.0a000000.0000000000000000; Path=/; HttpOnly{secure}")


def status_body(ctx: SimContext) -> dict[str, Any]:
    """The auth-status object (``/iserver/auth/status``, ``ssodh/init``, tickle)."""
    ident = ctx.identity
    return {
        **ctx.session.status(),
        "message": "",
        "MAC": ident.mac,
        "serverInfo": {"serverName": ident.server_name, "serverVersion": ident.server_version},
        "fail": "",
        "hardware_info": f"0a0b0c0d|{ident.mac}",
    }


def auth_status(request: Request, ctx: SimContext) -> Response:
    """``GET|POST /iserver/auth/status``."""
    return Response.json(status_body(ctx), headers=(_session_cookie(ctx),))


def ssodh_init(request: Request, ctx: SimContext) -> Response:
    """``POST /iserver/auth/ssodh/init`` with ``{"publish": true, "compete": true}``."""
    try:
        body = request.json_body()
    except ValueError:
        return Response.error(400, 'body must be JSON, e.g. {"publish": true, "compete": true}')
    options = body if isinstance(body, dict) else {}
    if not _truthy(options.get("publish"), True):
        return Response.error(500, "publish must be true")
    ctx.session.open_brokerage(compete=_truthy(options.get("compete"), False))
    return Response.json(status_body(ctx), headers=(_session_cookie(ctx),))


def tickle(request: Request, ctx: SimContext) -> Response:
    """``GET|POST /tickle``: keep-alive; answers the session token and the auth status."""
    ident = ctx.identity
    status = status_body(ctx)
    status.pop("fail")
    status.pop("hardware_info")
    body = {
        "session": ident.session_token,
        "ssoExpires": int(ctx.session.timeout_seconds * 1000),
        "collission": False,
        "userId": ident.user_id,
        "hmds": {"error": "no bridge"},
        "iserver": {"authStatus": status},
    }
    return Response.json(body, headers=(_session_cookie(ctx),))


def reauthenticate(request: Request, ctx: SimContext) -> Response:
    """``GET|POST /iserver/reauthenticate[?force=true]``."""
    ctx.session.reauthenticate(force=_truthy(request.query.get("force"), False))
    return Response.json({"message": "triggered"})


def logout(request: Request, ctx: SimContext) -> Response:
    """``POST /logout``."""
    ctx.session.logout()
    return Response.json({"status": True})


def sso_validate(request: Request, ctx: SimContext) -> Response:
    """``GET /sso/validate`` (fake user values)."""
    ident = ctx.identity
    now_ms = int(time.time() * 1000)
    return Response.json(
        {
            "USER_ID": ident.user_id,
            "USER_NAME": ident.user_name,
            "RESULT": True,
            "AUTH_TIME": now_ms - 60_000,
            "SF_ENABLED": False,
            "IS_FREE_TRIAL": False,
            "CREDENTIAL": ident.user_name,
            "IP": "127.0.0.1",
            "EXPIRES": int(ctx.session.timeout_seconds * 1000),
            "QUALIFIED_FOR_MOBILE_AUTH": None,
            "LANDING_APP": "UNIVERSAL",
            "IS_MASTER": False,
            "lastAccessed": now_ms,
            "LOGIN_TYPE": 2,
            "PAPER_USER_NAME": ident.user_name,
            "features": {"env": "PROD", "wlms": True, "realtime": True, "bond": True},
            "region": "NJ",
        }
    )


def accounts(request: Request, ctx: SimContext) -> Response:
    """``GET /iserver/accounts``: the simulator's one account (``isPaper`` as configured);
    satisfies the accounts-first rule of snapshots and order endpoints."""
    ctx.session.mark_accounts_queried()
    return Response.json(accounts_body(ctx))


def accounts_body(ctx: SimContext) -> dict[str, Any]:
    """The ``/iserver/accounts`` object (also the ``args`` of the WebSocket's ``act``)."""
    account = ctx.identity.account
    props = {"hasChildAccounts": False, "supportsCashQty": True, "supportsFractions": False}
    return {
        "accounts": [account],
        "acctProps": {account: props},
        "aliases": {account: account},
        "allowFeatures": {"snapshotRefreshTimeout": 30, "allowedAssetTypes": "STK"},
        "chartPeriods": {"STK": ["*"]},
        "groups": [],
        "profiles": [],
        "selectedAccount": account,
        "serverInfo": {
            "serverName": ctx.identity.server_name,
            "serverVersion": ctx.identity.server_version,
        },
        "sessionId": "00000000.00000001",
        "isFT": False,
        "isPaper": ctx.identity.paper,
    }


def _third_fridays(today: date, count: int) -> list[date]:
    found: list[date] = []
    year, month = today.year, today.month
    while len(found) < count:
        first = date(year, month, 1)
        friday = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
        if friday >= today:
            found.append(friday)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def _secdef_entry(inst: SimInstrument, today: date) -> dict[str, Any]:
    sections: list[dict[str, Any]] = [{"secType": "STK"}]
    opt = None
    if inst.us:
        expiries = _third_fridays(today, 6)
        opt = ";".join(day.strftime("%Y%m%d") for day in expiries)
        months = ";".join(f"{_MONTHS[d.month - 1]}{d.year % 100:02d}" for d in expiries)
        sections.append({"secType": "OPT", "months": months, "exchange": _OPTION_EXCHANGES})
    return {
        "conid": str(inst.conid),
        "companyHeader": f"{inst.name} - {inst.exchange}",
        "companyName": inst.name,
        "symbol": inst.symbol,
        "description": inst.exchange,
        "restricted": None,
        "fop": None,
        "opt": opt,
        "war": None,
        "sections": sections,
    }


def secdef_search(request: Request, ctx: SimContext) -> Response:
    """``GET|POST /iserver/secdef/search?symbol=AAPL[&secType=STK][&name=false]``."""
    symbol = request.param("symbol")
    if not isinstance(symbol, str) or not symbol.strip():
        return Response.error(400, "symbol is required, e.g. symbol=AAPL")
    sec_type = request.param("secType")
    if sec_type is not None and str(sec_type).upper() != "STK":
        return Response.json([])
    by_name = _truthy(request.param("name"), False)
    found = ctx.instruments.by_name(symbol) if by_name else ctx.instruments.listings(symbol)
    today = ctx.clock.now().date()
    return Response.json([_secdef_entry(inst, today) for inst in found])


def trsrv_stocks(request: Request, ctx: SimContext) -> Response:
    """``GET /trsrv/stocks?symbols=AAPL,IBM``: listings grouped by company name."""
    text = request.query.get("symbols", "")
    symbols = [item.strip().upper() for item in text.split(",") if item.strip()]
    if not symbols:
        return Response.error(400, "symbols is required, e.g. symbols=AAPL,IBM")
    body: dict[str, list[dict[str, Any]]] = {}
    for symbol in dict.fromkeys(symbols):
        groups: dict[str, list[dict[str, Any]]] = {}
        for inst in ctx.instruments.listings(symbol):
            contract = {"conid": inst.conid, "exchange": inst.exchange, "isUS": inst.us}
            groups.setdefault(inst.name, []).append(contract)
        if groups:
            body[symbol] = [
                {"name": name, "chineseName": None, "assetClass": "STK", "contracts": contracts}
                for name, contracts in groups.items()
            ]
    return Response.json(body)


def unsubscribe(request: Request, ctx: SimContext) -> Response:
    """``POST /iserver/marketdata/unsubscribe`` with ``{"conid": N}``."""
    value = request.param("conid")
    if value is None or not str(value).strip().isdigit():
        return Response.error(400, 'conid is required in the JSON body, e.g. {"conid": 265598}')
    if not ctx.session.unsubscribe(int(value)):
        return Response.error(500, "unknown")
    return Response.json({"success": True})


def unsubscribe_all(request: Request, ctx: SimContext) -> Response:
    """``GET /iserver/marketdata/unsubscribeall``."""
    ctx.session.unsubscribe_all()
    return Response.json({"unsubscribed": True})
