"""The portfolio endpoints of :class:`~.api.ApiClient` (a mixin): ``/portfolio/accounts``,
summary, ledger, positions.

**Portfolio accounts first.** IBKR wants ``GET /portfolio/accounts`` before the other
``/portfolio`` endpoints (what happens otherwise is undocumented; the simulator answers 400
"Please query /portfolio/accounts first"). The client calls it once per brokerage session
(generation of its session recovery) and, when the gateway still asks for it, calls it again
and repeats the request once. ``/portfolio/accounts`` is paced at one request per 5 s.

These are reads (and one cache invalidation): the transport's ordinary retry policy applies.
Account ids travel in paths but never in messages (:mod:`.redact`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import wire
from ..errors import ConfigError
from ..models.accounts import PortfolioAccount, parse_portfolio_accounts
from ..models.portfolio import (
    AccountSummary,
    Ledger,
    Position,
    parse_ledger,
    parse_positions,
    parse_summary,
)
from .redact import account_safe, checked_account, redact
from .retry import RetryPolicy
from .transport import AccountsRequired

if TYPE_CHECKING:
    import threading

    from .session import AuthRecovery

__all__ = ["PortfolioApi"]


class PortfolioApi:
    """Portfolio endpoints; mixed into :class:`~.api.ApiClient`."""

    recovery: AuthRecovery
    _lock: threading.Lock
    #: The session-recovery generation of the last ``/portfolio/accounts`` call (None: none).
    _portfolio_generation: int | None = None

    if TYPE_CHECKING:

        def _request(
            self,
            method: str,
            path: str,
            *,
            params: Mapping[str, Any] | None = None,
            json: Any = None,
            retry: RetryPolicy | None = None,
        ) -> Any: ...

    def _portfolio(self, method: str, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """Send after ``/portfolio/accounts`` (once per session; again when asked)."""
        with self._lock:
            needed = self._portfolio_generation != self.recovery.generation
        if needed:
            self.portfolio_accounts()
        with account_safe():
            try:
                return self._request(method, path, params=params)
            except AccountsRequired:
                self.portfolio_accounts()
            return self._request(method, path, params=params)

    def portfolio_accounts(self) -> list[PortfolioAccount]:
        """``GET /portfolio/accounts`` (paced: one per 5 s): the accounts the portfolio
        endpoints know. Note ``account_type`` is ``"DEMO"`` for paper and live ids alike."""
        generation = self.recovery.generation
        body = self._request("GET", wire.PORTFOLIO_ACCOUNTS)
        with self._lock:
            self._portfolio_generation = generation
        return parse_portfolio_accounts(body)

    def portfolio_summary(self, account: str) -> AccountSummary:
        """``GET /portfolio/{account}/summary``: net liquidation, cash, funds, margins..."""
        path = wire.PORTFOLIO_SUMMARY.format(account=checked_account(account))
        return parse_summary(self._portfolio("GET", path), endpoint=redact(path))

    def ledger(self, account: str) -> Ledger:
        """``GET /portfolio/{account}/ledger``: cash and values per currency and ``BASE``."""
        path = wire.PORTFOLIO_LEDGER.format(account=checked_account(account))
        return parse_ledger(self._portfolio("GET", path), endpoint=redact(path))

    def positions(self, account: str, page: int = 0) -> list[Position]:
        """``GET /portfolio/{account}/positions/{page}``: up to 100 positions per page
        (``page`` from 0; an empty list past the last). IBKR caches positions: after fills
        call :meth:`invalidate_positions` first."""
        if isinstance(page, bool) or not isinstance(page, int) or page < 0:
            raise ConfigError(f"page must be a whole number from 0, got {page!r}")
        path = wire.PORTFOLIO_POSITIONS.format(account=checked_account(account), page=page)
        return parse_positions(self._portfolio("GET", path), endpoint=wire.PORTFOLIO_POSITIONS)

    def position(self, account: str, conid: int) -> Position | None:
        """``GET /portfolio/{account}/position/{conid}``: the position in ``conid``, or None
        when none is held. The first answer of a session may lack the contract details
        (``has_secdef`` False)."""
        if isinstance(conid, bool) or not isinstance(conid, int) or conid <= 0:
            raise ConfigError(f"conid must be a positive integer (e.g. 265598), got {conid!r}")
        path = wire.PORTFOLIO_POSITION.format(account=checked_account(account), conid=conid)
        found = parse_positions(self._portfolio("GET", path), endpoint=wire.PORTFOLIO_POSITION)
        return next((p for p in found if p.conid == conid), None)

    def invalidate_positions(self, account: str) -> None:
        """``POST /portfolio/{account}/positions/invalidate``: drop IBKR's positions cache, so
        the next positions read is current."""
        path = wire.INVALIDATE_POSITIONS.format(account=checked_account(account))
        self._portfolio("POST", path)
