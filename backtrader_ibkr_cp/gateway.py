"""``GatewayClient``: the one object a user or the store holds to talk to a gateway.

It composes the layers below it: a :class:`~backtrader_ibkr_cp.client.transport.Transport`
(TLS, pacing, retry, typed errors), the per-endpoint
:class:`~backtrader_ibkr_cp.client.api.ApiClient`, the
:class:`~backtrader_ibkr_cp.client.session.SessionKeeper` (keep-alive and re-authentication),
the :class:`~backtrader_ibkr_cp.contracts.resolver.ContractResolver` and the
:class:`~backtrader_ibkr_cp.history.fetch.HistoryFetcher`.

Threading model: every method is safe to call from several threads at once. One pacer is
shared by everything that uses this client, so several feeds, a history fetch pool and the
keep-alive thread together stay inside IBKR's limits. The keep-alive thread runs from
:meth:`start` until :meth:`close` and is joined there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import ClassVar, TypeVar

import requests

from .client.api import ApiClient
from .client.pacing import Pacer, PacingLimits
from .client.retry import RetryPolicy
from .client.session import SessionKeeper
from .client.tls import normalize_base_url
from .client.transport import ClientEvent, Transport
from .contracts.resolver import Chooser, ContractResolver
from .errors import ConfigError, DataUnavailable, MarketError
from .history.fetch import HistoryFetcher
from .history.service import BarService, BarTransform
from .models import Bar, Contract, InvalidBar, Quote, Snapshot, Tick, Timeframe
from .models.calendar import expects_bars
from .models.timeframe import BT_DAYS, BT_MONTHS, BT_WEEKS

__all__ = ["ClientHooks", "GatewayClient", "SymbolLike"]

log = logging.getLogger(__name__)

#: What every ``symbol`` argument accepts: ``"AAPL"``, ``"AAPL-STK-SMART-USD"``, a conid or a
#: :class:`Contract`.
SymbolLike = str | int | Contract

T = TypeVar("T")

#: Answers without bars, for a span that has sessions, before fetch_bars raises.
_EMPTY_ATTEMPTS = 2


@dataclass(frozen=True)
class ClientHooks:
    """What plugins contribute to a client, handed in as callables: the client imports no
    plugin code (the package root wires the installed plugins in, see
    :attr:`GatewayClient.plugin_hooks`).

    ``choose_contract(spec, candidates)`` picks among ambiguous listings (None: no choice);
    ``transform_bars(symbol, timeframe, bars)`` checks or changes every bar delivered;
    ``on_request(event)`` observes every request event."""

    choose_contract: Chooser | None = None
    transform_bars: BarTransform | None = None
    on_request: Callable[[ClientEvent], None] | None = None


#: How far back ``fetch_latest_bar`` looks, by backtrader timeframe (0 = intraday): far enough
#: to cross a long weekend.
_LATEST_LOOKBACK = {
    0: timedelta(days=5),
    BT_DAYS: timedelta(days=10),
    BT_WEEKS: timedelta(days=35),
    BT_MONTHS: timedelta(days=100),
}


class GatewayClient:
    """A Client Portal Gateway client with session keep-alive, pacing, retry and TLS.

    Args:
        base_url: the gateway, ``https://localhost:5000`` or ``.../v1/api``.
        verify: ``None`` (default: loopback gateways without CA verification, other hosts
            verified), ``True``, ``False``, a CA bundle path, or a pinned certificate
            fingerprint ``"sha256:AB:CD:..."``.
        timeout: seconds per request, a float or a ``(connect, read)`` pair.
        pacing: :class:`PacingLimits` (default: IBKR's documented limits, history
            concurrency 4); ``PacingLimits.conservative()`` gives 60 requests/minute.
        retry: the :class:`RetryPolicy` for transient failures.
        session: a ``requests.Session`` to use (its adapters and headers are kept).
        tickle_interval: seconds between keep-alive tickles (IBKR: about once a minute).
        cache_dir: a folder for the on-disk contract cache (None: memory only).
        strict: raise :class:`DataIntegrityError` on an invalid bar instead of dropping it.
        on_invalid_bar: called with each dropped :class:`InvalidBar` (default mode only).
        allow_insecure_http: allow ``http://`` to a non-loopback host (sends the session
            cookie in clear; off by default).
        plugins: route contract choice, bar transforms and request events through the
            installed pluggy plugins (``backtrader_ibkr_cp.plugins``); False ignores them.
        hooks: the hooks to use instead of the installed plugins' (:class:`ClientHooks`).
        shared_pacing: True: draw on the pacing budget every client and process of this
            gateway shares (one pacer per gateway per process, the stricter of each limit,
            see :meth:`Pacer.shared`); False: a private pacer (nothing else's requests
            counted). None (default): shared, unless ``pacing`` paces nothing (a cassette
            replay's limits, which reach no gateway).
    """

    #: Builds the installed plugins' :class:`ClientHooks` (used when ``plugins=True`` and no
    #: ``hooks`` are given). Set by the package root, the composition root of the plugin
    #: layer; None: no plugin hooks.
    plugin_hooks: ClassVar[Callable[[], ClientHooks] | None] = None

    def __init__(
        self,
        base_url: str = "https://localhost:5000",
        *,
        verify: bool | str | None = None,
        timeout: float | tuple[float, float] = 10.0,
        pacing: PacingLimits | None = None,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        tickle_interval: float = 60.0,
        cache_dir: str | Path | None = None,
        contract_ttl: float = 86400.0,
        strict: bool = False,
        on_invalid_bar: Callable[[InvalidBar], None] | None = None,
        allow_insecure_http: bool = False,
        plugins: bool = True,
        shared_pacing: bool | None = None,
        hooks: ClientHooks | None = None,
    ) -> None:
        if hooks is None and plugins and GatewayClient.plugin_hooks is not None:
            hooks = GatewayClient.plugin_hooks()
        hooks = hooks or ClientHooks()
        limits = pacing or PacingLimits()
        root = normalize_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self.pacer = Pacer.for_gateway(root, limits, shared=shared_pacing)
        self.transport = Transport(
            base_url,
            session=session,
            verify=verify,
            timeout=timeout,
            pacer=self.pacer,
            retry=retry,
            allow_insecure_http=allow_insecure_http,
        )
        self.api = ApiClient(self.transport)
        self.session = SessionKeeper(self.api, tickle_interval=tickle_interval)
        self.plugins = plugins
        self.contracts = ContractResolver(
            self.api.secdef_search,
            lookup=self.api.contract_by_conid,
            cache_dir=cache_dir,
            ttl=contract_ttl,
            choose=hooks.choose_contract,
        )
        if hooks.on_request is not None:
            self.transport.add_listener(hooks.on_request)
        self.history = HistoryFetcher(self.api, concurrency=limits.history_concurrency)
        self.strict = strict
        self.on_invalid_bar = on_invalid_bar
        #: Every bar this client delivers goes through here (validation, plugin transforms).
        self.bars = BarService(
            self.history,
            strict=strict,
            on_invalid=on_invalid_bar,
            transform=hooks.transform_bars,
        )
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The gateway's API root, ending in ``/v1/api``."""
        return self.transport.base_url

    def start(self) -> GatewayClient:
        """Start the keep-alive thread (idempotent). Returns self."""
        if not self._started:
            self.session.start()
            self._started = True
        return self

    def close(self) -> None:
        """Signal the keep-alive thread, close the transport (which ends every wait and
        request in flight of this client), then join the thread. Returns promptly; safe to
        call twice."""
        self.session.signal()
        self.transport.close()
        self.session.close()
        self._started = False

    def __enter__(self) -> GatewayClient:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def add_listener(self, listener: Callable[[ClientEvent], None]) -> None:
        """Receive every :class:`ClientEvent` (requests, retries, rate limits, re-auth)."""
        self.transport.add_listener(listener)

    # -- session -------------------------------------------------------------------------

    def authenticate(self) -> bool:
        """Make sure the brokerage session is open, opening it if the gateway is logged in.

        Raises AuthenticationError saying where to log in when the gateway is not.
        """
        return self.session.ensure_authenticated().healthy

    def health_check(self) -> bool:
        """True when the gateway answers and its session is authenticated, connected and
        not taken over by another login. Never raises for a gateway that is down."""
        try:
            return self.api.auth_status().healthy
        except MarketError as exc:
            log.info("health check failed: %s", exc)
            return False

    def validate_session(self) -> bool:
        """True when the brokerage session is usable now (no re-authentication attempted)."""
        return self.health_check()

    def reconnect(self) -> bool:
        """Re-open the brokerage session (after expiry, a competing login, or a gateway that
        lost its link to IBKR: ``ssodh/init`` is tried even when the gateway says it is not
        connected); raises AuthenticationError saying where to log in when only a person can."""
        return self.session.ensure_authenticated(even_disconnected=True).healthy

    def with_retry(self, max_retries: int, fn: Callable[[], T]) -> T:
        """Call ``fn`` with up to ``max_retries`` retries on transient errors, using this
        client's retry policy for the waits."""
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        policy = RetryPolicy(total=max_retries)
        token = self.transport.cancel_token
        while True:
            try:
                return fn()
            except MarketError as exc:
                policy = policy.increment(exc)
                if self.transport.clock.wait(policy.sleep_seconds(exc), token):
                    raise

    def session_mark(self) -> int:
        """A mark of now in the client's checks of the session: take it when a report that
        the session was lost arrives (see :meth:`session_usable_since`)."""
        return self.api.recovery.checks.mark()

    def session_usable_since(self, mark: int) -> bool:
        """True when a check of the session begun after ``mark`` (an auth status, a
        ``ssodh/init``, a tickle, by any thread of this client) found it usable: a loss
        reported at ``mark`` is over."""
        return self.api.recovery.checks.usable_since(mark)

    def server_time(self) -> datetime:
        """The gateway's clock (UTC), which may differ from the local one."""
        return self.api.server_time()

    # -- contracts -----------------------------------------------------------------------

    def resolve(self, symbol: SymbolLike) -> Contract:
        """The contract for ``symbol`` (see :data:`SymbolLike`), cached."""
        return self.contracts.resolve(symbol)

    def search_contract(self, symbol: str, sec_type: str | None = None) -> list[Contract]:
        """Every contract the gateway lists for ``symbol`` (unfiltered)."""
        if not isinstance(symbol, str) or not symbol.strip():
            raise ConfigError(f"symbol must be a non-empty string, got {symbol!r}")
        return self.api.secdef_search(symbol.strip().upper(), sec_type=sec_type)

    def supports_symbol(self, symbol: SymbolLike) -> bool:
        """True when ``symbol`` resolves to exactly one contract."""
        return self.contracts.supports(symbol)

    # -- market data ---------------------------------------------------------------------

    def fetch_bars(
        self,
        symbol: SymbolLike,
        timeframe: Timeframe | str,
        start: datetime,
        end: datetime,
        *,
        outside_rth: bool = False,
    ) -> list[Bar]:
        """Completed bars with start in ``[start, end)``, validated, sorted, no duplicates.

        ``start``/``end`` must be tz-aware. Long spans are split into the minimum number of
        history requests, run concurrently up to the pacing limit. ``Bar.volume`` is in
        shares (IBKR's lots of 100 multiplied out). A span with no session returns ``[]``
        without a request; a span with sessions for which the gateway keeps answering
        "No data." raises :class:`DataUnavailable` saying what to check.
        """
        tf = Timeframe.parse(timeframe)
        for name, value in (("start", start), ("end", end)):
            if not isinstance(value, datetime) or value.tzinfo is None:
                raise ConfigError(
                    f"fetch_bars: {name}={value!r} must be a timezone-aware datetime, e.g. "
                    f"datetime(2024, 3, 1, tzinfo=timezone.utc)"
                )
        if start >= end:
            raise ConfigError(
                f"fetch_bars: start {start.isoformat()} is not before end {end.isoformat()}"
            )
        contract = self.resolve(symbol)
        now = self.server_time()
        if not expects_bars(start, min(end, now), now, tf, outside_rth=outside_rth):
            return []  # nights, weekends, the future: nothing to ask
        for attempt in range(1, _EMPTY_ATTEMPTS + 1):
            bars = self.bars.fetch(contract, tf, start, end, now=now, outside_rth=outside_rth)
            if bars:
                return bars
            log.info("no bars for %s %s; asked %d time(s)", contract.conid, tf.bar, attempt)
        raise DataUnavailable(
            f'the gateway answered "No data." for {contract.spec() or contract.conid} '
            f"{tf.bar} bars from {start.isoformat()} to {min(end, now).isoformat()} "
            f"({_EMPTY_ATTEMPTS} times), although the exchange had sessions then; check the "
            "market-data and history permissions of this contract (Client Portal > Settings > "
            "Market Data Subscriptions), the contract (conid "
            f"{contract.conid}: see 'ibkr-cp search'), and that the span is within IBKR's "
            "history for it",
            endpoint="/iserver/marketdata/history",
            conid=contract.conid,
        )

    def fetch_latest_bar(
        self, symbol: SymbolLike, timeframe: Timeframe | str = Timeframe.MINUTE_1
    ) -> Bar:
        """The most recent completed bar of ``timeframe``."""
        tf = Timeframe.parse(timeframe)
        contract = self.resolve(symbol)
        now = self.server_time()
        lookback = _LATEST_LOOKBACK[tf.bt_timeframe if not tf.is_intraday else 0]
        bars = self.bars.fetch(contract, tf, now - lookback, now, now=now)
        if not bars:
            raise DataUnavailable(
                f"no completed {tf.bar} bar for {contract.spec() or contract.contract_id}; "
                "the market may be closed or the contract has no data",
                endpoint="/iserver/marketdata/history",
                conid=contract.contract_id,
            )
        return bars[-1]

    def fetch_snapshot(self, symbol: SymbolLike) -> Snapshot:
        """A snapshot with fields, polling past IBKR's pre-flight answer (bounded)."""
        contract = self.resolve(symbol)
        return self.api.snapshot_ready([contract.contract_id])[0]

    def fetch_quote(self, symbol: SymbolLike) -> Quote:
        """Top of book (bid/ask) now; DataUnavailable when the gateway has none."""
        return self.fetch_snapshot(symbol).quote()

    def fetch_tick(self, symbol: SymbolLike) -> Tick:
        """The last trade now; DataUnavailable when the gateway has none."""
        return self.fetch_snapshot(symbol).tick()

    def __repr__(self) -> str:
        return f"GatewayClient({self.base_url!r})"
