"""The account lists: ``/iserver/accounts``, ``POST /iserver/account`` and
``/portfolio/accounts``, as frozen objects. Pure: no I/O.

Facts and sources: reference/orders/ibkr-cp-orders.md §6 and §8. ``isPaper`` of
``/iserver/accounts`` is IBKR's paper flag; ``/portfolio/accounts``' ``type`` is ``"DEMO"`` for
paper and live ids alike, so it is no paper flag.

Account ids, aliases and account titles are secrets (an id, or a person's name): the models
keep them (the broker needs the account it trades) but leave them out of ``repr``/``str``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .readers import malformed, read_bool, read_epoch_ms, read_object, read_text

__all__ = [
    "IServerAccounts",
    "PortfolioAccount",
    "SwitchAccountResult",
    "parse_iserver_accounts",
    "parse_portfolio_accounts",
    "parse_switch_account",
]

ISERVER_ENDPOINT = "/iserver/accounts"
SWITCH_ENDPOINT = "/iserver/account"
PORTFOLIO_ENDPOINT = "/portfolio/accounts"


@dataclass(frozen=True)
class IServerAccounts:
    """``GET /iserver/accounts``: the brokerage session's accounts.

    ``accounts`` as IBKR lists them (an advisor's list starts with ``"All"``);
    ``selected_account`` the one orders and live orders refer to; ``is_paper`` IBKR's
    ``isPaper`` (None when the gateway did not say). ``supports_fractions`` /
    ``supports_cash_qty``: account -> IBKR's ``acctProps`` flags.
    """

    accounts: tuple[str, ...] = field(repr=False)
    selected_account: str | None = field(repr=False)
    is_paper: bool | None
    is_ft: bool = False
    server_name: str | None = None
    server_version: str | None = None
    supports_fractions: Mapping[str, bool] = field(default_factory=dict, repr=False)
    supports_cash_qty: Mapping[str, bool] = field(default_factory=dict, repr=False)

    @property
    def count(self) -> int:
        """How many accounts are listed (a safe thing to log)."""
        return len(self.accounts)


def _flags(props: object, key: str, endpoint: str) -> dict[str, bool]:
    if not isinstance(props, Mapping):
        return {}
    return {
        str(account): read_bool(values.get(key), endpoint, f"acctProps.{key}")
        for account, values in props.items()
        if isinstance(values, Mapping)
    }


def parse_iserver_accounts(body: Any, *, endpoint: str = ISERVER_ENDPOINT) -> IServerAccounts:
    """``GET /iserver/accounts``. Raises DataIntegrityError without an ``accounts`` list."""
    data = read_object(body, endpoint)
    raw = data.get("accounts")
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise malformed(endpoint, "no list of accounts")
    server = data.get("serverInfo")
    server = server if isinstance(server, Mapping) else {}
    paper = data.get("isPaper")
    props = data.get("acctProps")
    return IServerAccounts(
        accounts=tuple(raw),
        selected_account=read_text(data.get("selectedAccount"), endpoint, "selectedAccount"),
        is_paper=None if paper is None else read_bool(paper, endpoint, "isPaper"),
        is_ft=read_bool(data.get("isFT"), endpoint, "isFT"),
        server_name=read_text(server.get("serverName"), endpoint, "serverName"),
        server_version=read_text(server.get("serverVersion"), endpoint, "serverVersion"),
        supports_fractions=_flags(props, "supportsFractions", endpoint),
        supports_cash_qty=_flags(props, "supportsCashQty", endpoint),
    )


@dataclass(frozen=True)
class SwitchAccountResult:
    """``POST /iserver/account``: ``switched`` when IBKR changed the selected account,
    ``already_selected`` when it already was (IBKR: ``"Account already set"``)."""

    switched: bool
    already_selected: bool
    account: str | None = field(default=None, repr=False)


def parse_switch_account(body: Any, *, endpoint: str = SWITCH_ENDPOINT) -> SwitchAccountResult:
    """``{"set": true, "acctId": ...}`` or ``{"success": "Account already set"}``."""
    data = read_object(body, endpoint)
    success = read_text(data.get("success"), endpoint, "success") or ""
    already = "already" in success.lower()
    switched = read_bool(data.get("set"), endpoint, "set")
    if not (switched or already):
        raise malformed(endpoint, f"neither set nor already set (keys {sorted(data)[:8]})")
    return SwitchAccountResult(
        switched=switched,
        already_selected=already,
        account=read_text(data.get("acctId"), endpoint, "acctId"),
    )


@dataclass(frozen=True)
class PortfolioAccount:
    """One element of ``GET /portfolio/accounts``.

    ``account_id`` is IBKR's ``accountId`` (secret, not in ``repr``); ``currency`` the base
    currency; ``account_type`` IBKR's ``type`` (``"DEMO"`` for paper *and* live ids);
    ``trading_type`` e.g. ``"STKNOPT"``; ``status_time`` IBKR's ``accountStatus`` (UTC).
    """

    account_id: str = field(repr=False)
    currency: str | None
    account_type: str | None
    trading_type: str | None = None
    business_type: str | None = None
    brokerage_access: bool = False
    fa_client: bool = False
    clearing_status: str | None = None
    status_time: datetime | None = None
    display_name: str | None = field(default=None, repr=False)


def parse_portfolio_accounts(
    body: Any, *, endpoint: str = PORTFOLIO_ENDPOINT
) -> list[PortfolioAccount]:
    """``GET /portfolio/accounts``: a list of account objects."""
    if not isinstance(body, list):
        raise malformed(endpoint, f"a {type(body).__name__}, expected a list of accounts")
    found = []
    for item in body:
        data = read_object(item, endpoint, "an account")
        account = read_text(data.get("accountId") or data.get("id"), endpoint, "accountId")
        if account is None:
            raise malformed(endpoint, "an account without accountId")
        found.append(
            PortfolioAccount(
                account_id=account,
                currency=read_text(data.get("currency"), endpoint, "currency"),
                account_type=read_text(data.get("type"), endpoint, "type"),
                trading_type=read_text(data.get("tradingType"), endpoint, "tradingType"),
                business_type=read_text(data.get("businessType"), endpoint, "businessType"),
                brokerage_access=read_bool(
                    data.get("brokerageAccess"), endpoint, "brokerageAccess"
                ),
                fa_client=read_bool(
                    data.get("faclient", data.get("faClient")), endpoint, "faclient"
                ),
                clearing_status=read_text(data.get("clearingStatus"), endpoint, "clearingStatus"),
                status_time=read_epoch_ms(data.get("accountStatus"), endpoint, "accountStatus"),
                display_name=read_text(data.get("displayName"), endpoint, "displayName"),
            )
        )
    return found
