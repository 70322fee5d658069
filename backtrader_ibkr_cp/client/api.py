"""One method per gateway endpoint, returning parsed model objects.

:class:`ApiClient` builds each request's parameters (validating them first: nothing is sent
with a bad argument), sends it through the :class:`~.transport.Transport`, and parses the answer
with the pure parsers in :mod:`backtrader_ibkr_cp.models`. It adds what the endpoints need
around them: ``/iserver/accounts`` once per brokerage session before snapshots, one
reauthentication (via :class:`~.session.AuthRecovery`) when an ``/iserver`` call finds the
session gone, and the gateway's clock.

Threading model: safe to share between threads; the transport paces them together.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from ..errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    DataIntegrityError,
    DataUnavailable,
    MarketError,
)
from ..models.contract import Contract
from ..models.history import HistoryResponse, parse_history
from ..models.market import Snapshot
from ..models.secdef import parse_secdef_search, parse_trsrv_secdef
from ..models.session import AuthStatus, TickleResult, parse_auth_status, parse_tickle
from ..models.snapshot import DEFAULT_FIELDS, parse_snapshots
from ..models.timeframe import Timeframe
from .orders_api import OrdersApi
from .portfolio_api import PortfolioApi
from .retry import RetryPolicy
from .session import AuthRecovery
from .transport import AccountsRequired, Transport

__all__ = ["BAR_SIZES", "MAX_SNAPSHOT_CONIDS", "MAX_SNAPSHOT_FIELDS", "ApiClient"]

#: Bar sizes ``/iserver/marketdata/history`` accepts (``1m`` is one MONTH).
BAR_SIZES = (
    "1min", "2min", "3min", "5min", "10min", "15min", "30min",
    "1h", "2h", "3h", "4h", "8h", "1d", "1w", "1m",
)  # fmt: skip
#: Conids per snapshot request (IBKR's limit); more are split into several requests.
MAX_SNAPSHOT_CONIDS = 100
#: Fields per snapshot request (IBKR's limit).
MAX_SNAPSHOT_FIELDS = 50

_PERIOD = re.compile(r"^(\d+)(min|h|d|w|m|y)$")
_PERIOD_RANGES = {"min": 30, "h": 8, "d": 1000, "w": 792, "m": 182, "y": 15}
_TIME_FORMAT = "%Y%m%d-%H:%M:%S"
_SESSION_PATHS = frozenset(
    {"/iserver/auth/status", "/iserver/auth/ssodh/init", "/iserver/reauthenticate"}
)
#: A session check's answer (both say whether the session is usable: ``healthy``).
_Status = TypeVar("_Status", AuthStatus, TickleResult)
_PAYLOAD_KEYS = ("conid", "conidEx", "_updated", "server_id", "6119")
#: IBKR: at most 200 conids per ``/trsrv/secdef`` request.
SECDEF_MAX_CONIDS = 200


def _conid(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"conid must be a positive integer (e.g. 265598), got {value!r}")
    return value


def _bar(bar: str | Timeframe) -> str:
    text = bar.bar if isinstance(bar, Timeframe) else bar
    if text not in BAR_SIZES:
        raise ConfigError(f"bar size {bar!r} is not supported; use one of {', '.join(BAR_SIZES)}")
    return text


def _period(period: str) -> str:
    match = _PERIOD.match(period) if isinstance(period, str) else None
    if match is None or not 1 <= int(match.group(1)) <= _PERIOD_RANGES[match.group(2)]:
        raise ConfigError(
            f"period {period!r} is not valid; use 1-30min, 1-8h, 1-1000d, 1-792w, 1-182m "
            "(months) or 1-15y, e.g. '1d'"
        )
    return period


def format_start_time(start_time: datetime) -> str:
    """An aware datetime as IBKR's ``startTime``: UTC ``YYYYMMDD-HH:MM:SS``."""
    if not isinstance(start_time, datetime):
        raise ConfigError(f"start_time must be a datetime, got {start_time!r}")
    if start_time.tzinfo is None or start_time.utcoffset() is None:
        raise ConfigError(
            f"start_time {start_time.isoformat()} has no time zone; pass an aware datetime, "
            "e.g. datetime(2024, 1, 2, 21, 0, tzinfo=timezone.utc)"
        )
    return start_time.astimezone(timezone.utc).strftime(_TIME_FORMAT)


def _fields(fields: Iterable[str]) -> list[str]:
    codes = [str(code) for code in fields]
    if not codes or len(codes) > MAX_SNAPSHOT_FIELDS or not all(c.isdigit() for c in codes):
        raise ConfigError(
            f"snapshot fields must be 1-{MAX_SNAPSHOT_FIELDS} numeric field codes (e.g. "
            f"{', '.join(DEFAULT_FIELDS[:4])}), got {codes[:60]!r}"
        )
    return list(dict.fromkeys(codes))


def _has_fields(snapshot: Snapshot, fields: Sequence[str]) -> bool:
    """True when the gateway sent at least one requested field (it is past the pre-flight)."""
    return any(code in snapshot.raw for code in fields if code not in _PAYLOAD_KEYS)


class ApiClient(OrdersApi, PortfolioApi):
    """The gateway's endpoints as methods. See the module docstring; the order, execution
    and account endpoints are in :mod:`.orders_api`, the portfolio ones in
    :mod:`.portfolio_api`.

    Args:
        transport: the :class:`Transport` to send through (shared pacing, retry, TLS).
        settle_timeout: seconds a reauthentication waits for the session to come back.
    """

    def __init__(self, transport: Transport, *, settle_timeout: float = 5.0) -> None:
        self.transport = transport
        self.recovery = AuthRecovery(
            self,
            settle_timeout=settle_timeout,
            clock=transport.clock,
            cancel=transport.cancel_token,
        )
        self._lock = threading.Lock()
        self._accounts_lock = threading.Lock()
        self._accounts_generation: int | None = None
        self._accounts_calls = 0
        self._clock_ref: tuple[datetime, float] | None = None

    # -- plumbing --------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Send; on AuthenticationError from an ``/iserver`` call reopen the session once and
        retry once."""
        if not path.startswith("/iserver/") or path in _SESSION_PATHS:
            return self.transport.request(method, path, params=params, json=json, retry=retry)
        seen = self.recovery.generation
        try:
            return self.transport.request(method, path, params=params, json=json, retry=retry)
        except AuthenticationError as first:
            self.recovery.recover(seen, first)
        try:
            return self.transport.request(method, path, params=params, json=json, retry=retry)
        except AuthenticationError as second:
            raise self.recovery.login_error(
                endpoint=path, detail=second.gateway_message or ""
            ) from second

    # -- session ---------------------------------------------------------------------------

    def auth_status(self) -> AuthStatus:
        """``POST /iserver/auth/status``: the brokerage session's state."""
        check = self.recovery.checks.begin()
        return self._checked(
            check, parse_auth_status(self._request("POST", "/iserver/auth/status"))
        )

    def init_brokerage_session(self, compete: bool = True) -> AuthStatus:
        """``POST /iserver/auth/ssodh/init``: open the brokerage session; ``compete=True``
        takes it over from another login."""
        body = {"publish": True, "compete": bool(compete)}
        check = self.recovery.checks.begin()
        answer = self._request("POST", "/iserver/auth/ssodh/init", json=body)
        return self._checked(check, parse_auth_status(answer))

    def tickle(self) -> TickleResult:
        """``POST /tickle``: keep the session alive (the session token is not kept)."""
        check = self.recovery.checks.begin()
        return self._checked(check, parse_tickle(self._request("POST", "/tickle")))

    def _checked(self, check: int, status: _Status) -> _Status:
        """Record that check ``check`` found the session usable, if it did."""
        if status.healthy:
            self.recovery.checks.usable(check)
        return status

    def reauthenticate(self) -> None:
        """``POST /iserver/reauthenticate`` (deprecated by IBKR in favour of ssodh/init)."""
        self._request("POST", "/iserver/reauthenticate")

    def logout(self) -> None:
        """``POST /logout``: end the gateway's session (a person must log in again)."""
        self._request("POST", "/logout")

    def sso_validate(self) -> dict[str, Any]:
        """``GET /sso/validate`` (IBKR allows 1 per minute). Holds user ids: do not log it."""
        body = self._request("GET", "/sso/validate")
        if not isinstance(body, dict):
            raise DataIntegrityError(
                f"GET /sso/validate answered a {type(body).__name__}, expected an object; is "
                "this a Client Portal Gateway?",
                endpoint="/sso/validate",
            )
        return body

    def accounts(self) -> None:
        """``GET /iserver/accounts``, which the gateway wants before snapshots. The account
        ids it returns are secrets and are dropped."""
        generation = self.recovery.generation
        self._request("GET", "/iserver/accounts")
        with self._lock:
            self._accounts_generation = generation
            self._accounts_calls += 1

    def _ensure_accounts(self, *, seen_calls: int | None = None) -> None:
        """Call :meth:`accounts` once per brokerage session, however many threads ask; with
        ``seen_calls``, again unless another thread did since that count was read."""
        with self._accounts_lock:
            with self._lock:
                if seen_calls is not None:
                    needed = self._accounts_calls == seen_calls
                else:
                    needed = self._accounts_generation != self.recovery.generation
            if needed:
                self.accounts()

    # -- contracts -------------------------------------------------------------------------

    def secdef_search(
        self, symbol: str, sec_type: str | None = None, name: bool = False
    ) -> list[Contract]:
        """``GET /iserver/secdef/search``: every listing of ``symbol`` (``[]`` when unknown).
        ``name=True`` searches company names instead."""
        if not isinstance(symbol, str) or not symbol.strip():
            raise ConfigError(f"symbol must be a non-empty string (e.g. 'AAPL'), got {symbol!r}")
        params: dict[str, str] = {"symbol": symbol.strip()}
        if sec_type:
            params["secType"] = sec_type
        if name:
            params["name"] = "true"
        return parse_secdef_search(self._request("GET", "/iserver/secdef/search", params=params))

    def secdef_by_conid(self, conids: Sequence[int]) -> list[Contract]:
        """``GET /trsrv/secdef?conids=...``: the contracts the gateway knows among ``conids``
        (1-200 positive ints); an unknown conid is simply not in the list."""
        ids = [_conid(conid) for conid in conids]
        if not 1 <= len(ids) <= SECDEF_MAX_CONIDS:
            raise ConfigError(
                f"give 1 to {SECDEF_MAX_CONIDS} conids per /trsrv/secdef request, got {len(ids)}"
            )
        params = {"conids": ",".join(str(conid) for conid in ids)}
        return parse_trsrv_secdef(self._request("GET", "/trsrv/secdef", params=params))

    def contract_by_conid(self, conid: int) -> Contract | None:
        """The contract with ``conid`` (``/trsrv/secdef``), or None when the gateway does not
        know that conid."""
        found = [c for c in self.secdef_by_conid([conid]) if c.conid == conid]
        return found[0] if found else None

    # -- market data -----------------------------------------------------------------------

    def history(
        self,
        conid: int,
        bar: str | Timeframe,
        period: str,
        start_time: datetime | None = None,
        outside_rth: bool = False,
    ) -> HistoryResponse:
        """``GET /iserver/marketdata/history``: bars of ``bar`` size for the ``period`` that
        ends at ``start_time`` (aware; UTC on the wire; None = the gateway's now). Volumes are
        in shares. Raises DataUnavailable for an empty window (``"No data."``)."""
        params = {
            "conid": str(_conid(conid)),
            "bar": _bar(bar),
            "period": _period(period),
            "outsideRth": "true" if outside_rth else "false",
        }
        if start_time is not None:
            params["startTime"] = format_start_time(start_time)
        return parse_history(self._request("GET", "/iserver/marketdata/history", params=params))

    def snapshot(
        self, conids: Iterable[int], fields: Iterable[str] = DEFAULT_FIELDS
    ) -> list[Snapshot]:
        """``GET /iserver/marketdata/snapshot`` for any number of conids (split into requests
        of 100), one :class:`Snapshot` per conid in the gateway's order. The first answer for
        a conid is IBKR's pre-flight, with no fields (see :meth:`snapshot_ready`)."""
        ids = list(dict.fromkeys(_conid(c) for c in conids))
        codes = _fields(fields)
        result: list[Snapshot] = []
        for start in range(0, len(ids), MAX_SNAPSHOT_CONIDS):
            result += self._snapshot_chunk(ids[start : start + MAX_SNAPSHOT_CONIDS], codes)
        return result

    def _snapshot_chunk(self, ids: list[int], codes: list[str]) -> list[Snapshot]:
        params = {"conids": ",".join(map(str, ids)), "fields": ",".join(codes)}
        self._ensure_accounts()
        with self._lock:
            seen_calls = self._accounts_calls
        try:
            body = self._request("GET", "/iserver/marketdata/snapshot", params=params)
        except AccountsRequired:
            self._ensure_accounts(seen_calls=seen_calls)
            body = self._request("GET", "/iserver/marketdata/snapshot", params=params)
        snapshots = parse_snapshots(body)
        stamps = [s.timestamp for s in snapshots if s.timestamp is not None]
        if stamps:
            self._note_clock(max(stamps))
        return snapshots

    def snapshot_ready(
        self,
        conids: Iterable[int],
        fields: Iterable[str] = DEFAULT_FIELDS,
        *,
        timeout: float = 5.0,
        interval: float = 0.25,
    ) -> list[Snapshot]:
        """Snapshots for ``conids`` (in that order) once each has fields, polling past IBKR's
        pre-flight every ``interval`` seconds for up to ``timeout`` seconds. Raises
        DataUnavailable naming the conids still without data."""
        ids = list(dict.fromkeys(_conid(c) for c in conids))
        codes = _fields(fields)
        clock = self.transport.clock
        deadline = clock.now() + timeout
        ready: dict[int, Snapshot] = {}
        while True:
            pending = [c for c in ids if c not in ready]
            for snap in self.snapshot(pending, codes):
                if _has_fields(snap, codes):
                    ready[snap.conid] = snap
            pending = [c for c in ids if c not in ready]
            if not pending:
                return [ready[c] for c in ids]
            if clock.now() + interval > deadline:
                raise DataUnavailable(
                    f"GET /iserver/marketdata/snapshot: no market data for conid(s) "
                    f"{', '.join(map(str, pending))} after {timeout:g} s; check the market-data "
                    "subscription for them, or retry when the market is open",
                    endpoint="/iserver/marketdata/snapshot",
                    conids=pending,
                )
            if clock.wait(interval, self.transport.cancel_token):
                self.transport.cancel_token.raise_if_cancelled("waiting for market data")

    def unsubscribe(self, conid: int) -> bool:
        """``POST /iserver/marketdata/unsubscribe``: True when a stream was cancelled, False
        when the gateway had none for ``conid``."""
        body = {"conid": _conid(conid)}
        try:
            data = self._request(
                "POST",
                "/iserver/marketdata/unsubscribe",
                json=body,
                retry=self.transport.retry.without("server"),
            )
        except ApiError as exc:
            if exc.status == 500 and (exc.gateway_message or "").strip().lower() == "unknown":
                return False
            raise
        return bool(isinstance(data, dict) and data.get("success"))

    def unsubscribe_all(self) -> bool:
        """``GET /iserver/marketdata/unsubscribeall``: cancel every snapshot stream."""
        data = self._request("GET", "/iserver/marketdata/unsubscribeall")
        return bool(isinstance(data, dict) and data.get("unsubscribed"))

    # -- the gateway's clock ---------------------------------------------------------------

    def _note_clock(self, when: datetime) -> None:
        with self._lock:
            now = self.transport.clock.now()
            if self._clock_ref is None or when > self._projected(self._clock_ref, now):
                self._clock_ref = (when, now)

    @staticmethod
    def _projected(ref: tuple[datetime, float], now: float) -> datetime:
        return ref[0] + timedelta(seconds=now - ref[1])

    def server_time(self) -> datetime:
        """The gateway's clock now (UTC): the latest of the last snapshot's ``_updated`` and
        the last HTTP ``Date`` header, advanced by the local time since it arrived. Both are
        lower bounds (a ``Date`` is whole seconds), so this never runs ahead of the gateway.
        Sends ``/iserver/auth/status`` first when no answer has been seen yet."""
        if self._clock_ref is None and self.transport.server_date() is None:
            try:
                self.auth_status()
            except MarketError:
                if self.transport.server_date() is None:
                    raise
        now = self.transport.clock.now()
        candidates = [
            self._projected(ref, now)
            for ref in (self._clock_ref, self.transport.server_date())
            if ref is not None
        ]
        if not candidates:
            raise DataIntegrityError(
                "the gateway's answers carry no Date header, so its clock is unknown; is this "
                "a Client Portal Gateway?",
                endpoint="/iserver/auth/status",
            )
        return max(candidates)

    def __repr__(self) -> str:
        return f"ApiClient({self.transport.base_url!r})"
