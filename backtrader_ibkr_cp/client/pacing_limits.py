"""The limits a :class:`~.pacing.Pacer` keeps, and the request kinds it tells apart.

IBKR's documented gateway limits (``/work/shared/reference/ibkr-cp-api.md`` section 3; IBKR Web
API v1.0 documentation, "Pacing Limitations", and the Web API documentation of 2024) are the
named constants of :mod:`backtrader_ibkr_cp.wire`, re-exported here: 10 requests per second in
total, 10 snapshots per second, 5 concurrent history requests, ``/tickle`` 1 per second,
``/sso/validate`` 1 per minute, and one request per 5 s to each of the order, trade, P&L and
portfolio-account lists (:data:`~backtrader_ibkr_cp.wire.FIVE_SECOND_ENDPOINTS`:
``/iserver/account/orders``, ``/iserver/account/trades``, ``/iserver/account/pnl/partitioned``,
``/portfolio/accounts`` with ``/portfolio/subaccounts``). :class:`PacingLimits` turns them into
sliding windows (:meth:`PacingLimits.windows`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..wire import (
    HISTORY,
    IBKR_HISTORY_CONCURRENCY,
    IBKR_ORDERS_SECONDS_PER_REQUEST,
    IBKR_SNAPSHOT_PER_SECOND,
    IBKR_SSO_VALIDATE_PER_MINUTE,
    IBKR_TICKLE_PER_SECOND,
    IBKR_TOTAL_PER_SECOND,
    LIVE_ORDERS,
    PNL_PARTITIONED,
    PORTFOLIO_ACCOUNTS,
    PORTFOLIO_SUBACCOUNTS,
    SNAPSHOT,
    SSO_VALIDATE,
    TICKLE,
    TRADES,
)
from .pacing_ledger import Window

__all__ = [
    "CONSERVATIVE_PER_MINUTE",
    "DEFAULT_HISTORY_CONCURRENCY",
    "DEFAULT_MARGIN",
    "FIVE_SECOND_KINDS",
    "IBKR_HISTORY_CONCURRENCY",
    "IBKR_ORDERS_SECONDS_PER_REQUEST",
    "IBKR_SNAPSHOT_PER_SECOND",
    "IBKR_SSO_VALIDATE_PER_MINUTE",
    "IBKR_TICKLE_PER_SECOND",
    "IBKR_TOTAL_PER_SECOND",
    "KINDS",
    "UNPACED_RATE",
    "PacingLimits",
    "request_kind",
]

#: The default history concurrency: one below IBKR's limit, which the gateway sometimes
#: enforces early (ibind, ``marketdata_mixin``: "sometime throttles above 4").
DEFAULT_HISTORY_CONCURRENCY = 4
#: The original design's conservative preset: 60 requests per minute in total.
CONSERVATIVE_PER_MINUTE = 60.0
#: Seconds added to every window to absorb arrival-time jitter (1.1 s for a 1 s limit).
DEFAULT_MARGIN = 0.1
#: A total rate at or above this many requests per second paces nothing: no gateway answers
#: that fast, so such limits mean nothing reaches one (a cassette replay).
UNPACED_RATE = 1e6

#: Request kinds the pacer tells apart (see :func:`request_kind`).
KINDS = (
    "history",
    "snapshot",
    "tickle",
    "sso_validate",
    "live_orders",
    "trades",
    "pnl",
    "portfolio_accounts",
    "other",
)
#: The kinds IBKR allows one request per ``orders_seconds_per_request`` (5 s) each.
FIVE_SECOND_KINDS = frozenset({"live_orders", "trades", "pnl", "portfolio_accounts"})

_KIND_BY_SUFFIX = (
    (HISTORY, "history"),
    (SNAPSHOT, "snapshot"),
    (TICKLE, "tickle"),
    (SSO_VALIDATE, "sso_validate"),
    (LIVE_ORDERS, "live_orders"),
    (TRADES, "trades"),
    (PNL_PARTITIONED, "pnl"),
    (PORTFOLIO_ACCOUNTS, "portfolio_accounts"),
    (PORTFOLIO_SUBACCOUNTS, "portfolio_accounts"),
)


def request_kind(path: str) -> str:
    """The pacing kind of an API path (with or without the ``/v1/api`` prefix or a query).

    ``"/iserver/marketdata/history"`` -> ``"history"``, ``".../snapshot"`` -> ``"snapshot"``,
    ``"/tickle"`` -> ``"tickle"``, ``"/sso/validate"`` -> ``"sso_validate"``, anything else
    -> ``"other"`` (only the total limit applies to it).
    """
    bare = path.split("?", 1)[0].rstrip("/")
    for suffix, kind in _KIND_BY_SUFFIX:
        if bare.endswith(suffix):
            return kind
    return "other"


def _positive(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"PacingLimits.{name} must be a positive number, got {value!r}")


def _window(name: str, rate: float, period: float, margin: float) -> Window:
    """``rate`` requests per ``period`` seconds as a (count, window) pair, e.g. 10/s ->
    10 per 1.1 s, 2.5/s -> 2 per 0.9 s, 1/min -> 1 per 60.1 s."""
    per_second = rate / period
    count = max(1, math.floor(rate + 1e-9))
    return Window(name, count, count / per_second + margin)


_RATES = ("total_per_second", "snapshot_per_second", "tickle_per_second", "sso_validate_per_minute")


@dataclass(frozen=True)
class PacingLimits:
    """The limits a :class:`~.pacing.Pacer` keeps; defaults are IBKR's documented limits.

    Rates are requests per second (``sso_validate_per_minute`` per minute) and may be
    fractional (``total_per_second=0.5`` = one request every 2 s). ``history_concurrency`` is
    the number of history requests in flight at once, 1..5 (IBKR's cap is 5; default 4).
    ``margin`` is the seconds added to every sliding window (default 0.1 s; 0 = exactly the
    server's windows, which loopback jitter can break). ``orders_seconds_per_request`` is the
    interval, in seconds, between two requests to each endpoint of
    :data:`~backtrader_ibkr_cp.wire.FIVE_SECOND_ENDPOINTS` (IBKR: 5 s; each endpoint has its
    own budget); limits that pace nothing (:attr:`paces` False) skip it too.
    """

    total_per_second: float = IBKR_TOTAL_PER_SECOND
    snapshot_per_second: float = IBKR_SNAPSHOT_PER_SECOND
    history_concurrency: int = DEFAULT_HISTORY_CONCURRENCY
    tickle_per_second: float = IBKR_TICKLE_PER_SECOND
    sso_validate_per_minute: float = IBKR_SSO_VALIDATE_PER_MINUTE
    margin: float = DEFAULT_MARGIN
    orders_seconds_per_request: float = IBKR_ORDERS_SECONDS_PER_REQUEST

    def __post_init__(self) -> None:
        for name in (*_RATES, "orders_seconds_per_request"):
            _positive(name, getattr(self, name))
        concurrency = self.history_concurrency
        if (
            isinstance(concurrency, bool)
            or not isinstance(concurrency, int)
            or not 1 <= concurrency <= IBKR_HISTORY_CONCURRENCY
        ):
            raise ConfigError(
                f"PacingLimits.history_concurrency must be 1, 2, 3, 4 or 5, got {concurrency!r} "
                f"(IBKR allows {IBKR_HISTORY_CONCURRENCY} concurrent history requests; "
                f"{DEFAULT_HISTORY_CONCURRENCY} is the safe default)"
            )
        margin = self.margin
        if (
            isinstance(margin, bool)
            or not isinstance(margin, (int, float))
            or not math.isfinite(margin)
            or margin < 0
        ):
            raise ConfigError(f"PacingLimits.margin must be >= 0 seconds, got {margin!r}")

    @classmethod
    def conservative(cls) -> PacingLimits:
        """60 requests per minute in total (one per second), the original design's preset;
        the per-endpoint limits stay IBKR's."""
        return cls(total_per_second=CONSERVATIVE_PER_MINUTE / 60.0)

    @property
    def paces(self) -> bool:
        """False for limits that hold nothing back (a total rate of :data:`UNPACED_RATE` per
        second or more, as a cassette replay uses): such a client reaches no gateway, so it
        draws on no shared budget (:meth:`~.pacing.Pacer.for_gateway`)."""
        return self.total_per_second < UNPACED_RATE

    def stricter(self, other: PacingLimits) -> PacingLimits:
        """The stricter of each limit of ``self`` and ``other``: the lower of each rate and of
        the history concurrency, the larger margin and 5-second interval. What a pacer shared
        by two clients with different limits keeps, so neither client's limits are exceeded."""
        return PacingLimits(
            total_per_second=min(self.total_per_second, other.total_per_second),
            snapshot_per_second=min(self.snapshot_per_second, other.snapshot_per_second),
            history_concurrency=min(self.history_concurrency, other.history_concurrency),
            tickle_per_second=min(self.tickle_per_second, other.tickle_per_second),
            sso_validate_per_minute=min(
                self.sso_validate_per_minute, other.sso_validate_per_minute
            ),
            margin=max(self.margin, other.margin),
            orders_seconds_per_request=max(
                self.orders_seconds_per_request, other.orders_seconds_per_request
            ),
        )

    def windows(self, kind: str) -> tuple[Window, ...]:
        """The sliding windows that apply to a request of ``kind`` (see :data:`KINDS`)."""
        total = _window("total", self.total_per_second, 1.0, self.margin)
        if kind == "snapshot":
            return total, _window("snapshot", self.snapshot_per_second, 1.0, self.margin)
        if kind == "tickle":
            return total, _window("tickle", self.tickle_per_second, 1.0, self.margin)
        if kind == "sso_validate":
            return total, _window("sso_validate", self.sso_validate_per_minute, 60.0, self.margin)
        if kind in FIVE_SECOND_KINDS and self.paces:
            return total, Window(kind, 1, self.orders_seconds_per_request + self.margin)
        return (total,)
