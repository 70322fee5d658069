"""The one exception tree of backtrader_ibkr_cp.

Every error this package raises is a :class:`MarketError`. Third-party exceptions
(``requests``, ``ssl``, ``json``) are mapped once, at the HTTP boundary, and chained with
``raise ... from``::

    MarketError
     ├── Cancelled                a wait or operation was cancelled (the client is closing)
     │    └── PacingCancelled          a request waiting for its pacing slot
     ├── TransportClosed          the client was closed; make a new one
     ├── ConfigError              bad argument or setting, raised before any I/O (also ValueError)
     │    ├── AmbiguousContract        several listings match a symbol (candidates)
     │    ├── LiveTradingRefused       a live account, and allow_live was not given
     │    └── CassetteError            a cassette cannot serve the run (names the file)
     │         ├── CassetteNotFound         the file does not exist
     │         ├── CassetteCorrupt          empty, not JSON, or not a cassette
     │         └── CassetteMiss             a request is not in the cassette
     ├── NetworkError             the request did not get a usable HTTP answer
     │    ├── TlsError                 handshake failed or certificate not trusted (not retried)
     │    ├── GatewayConnectionError   refused, reset or closed (also ConnectionError)
     │    ├── RequestTimeout           no answer within the timeout (also TimeoutError)
     │    └── OrderOutcomeUnknown      an order request got no usable answer; not re-sent
     ├── ApiError                 the gateway answered with an error (status, endpoint)
     │    ├── AuthenticationError      not logged in, session expired, competing session
     │    ├── RateLimitExceeded        429 / penalty box (carries retry_after seconds)
     │    ├── AccountsRequired         /iserver/accounts first (handled by the client)
     │    ├── WebSocketUnavailable     the gateway serves no WebSocket (use polled snapshots)
     │    └── DataUnavailable          "No data.", unknown contract, no market-data permission
     │         └── ContractNotFound         no listing matches a symbol or conid
     ├── DataIntegrityError       the gateway's data is malformed or fails validation
     │    └── InvalidBarStop           strict=True and an invalid bar: the feed stops
     └── BarStoreError            a bar store file or folder cannot be used (path)
          ├── BarStoreCorrupt          truncated, foreign or inconsistent store file
          ├── BarStoreVersionError     written by a newer store format version
          ├── BarStoreWriteError       no permission, read-only file system, disk full
          └── BarStoreLookupError      no such contract in the store (also LookupError)

Each message says what happened and what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AccountsRequired",
    "AmbiguousContract",
    "ApiError",
    "AuthenticationError",
    "BarStoreCorrupt",
    "BarStoreError",
    "BarStoreLookupError",
    "BarStoreVersionError",
    "BarStoreWriteError",
    "Cancelled",
    "CassetteCorrupt",
    "CassetteError",
    "CassetteMiss",
    "CassetteNotFound",
    "ConfigError",
    "ContractNotFound",
    "DataIntegrityError",
    "DataUnavailable",
    "GatewayConnectionError",
    "InvalidBarStop",
    "LiveTradingRefused",
    "MarketError",
    "NetworkError",
    "OrderOutcomeUnknown",
    "PacingCancelled",
    "RateLimitExceeded",
    "RequestTimeout",
    "TlsError",
    "TransportClosed",
    "WebSocketUnavailable",
]


class MarketError(Exception):
    """Base of every error raised by backtrader_ibkr_cp.

    ``endpoint`` is the gateway path involved (``"/iserver/marketdata/history"``) or None.
    """

    def __init__(self, message: str, *, endpoint: str | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.context: dict[str, Any] = dict(context)

    def __str__(self) -> str:
        return self.message


class ConfigError(MarketError, ValueError):
    """An argument or setting is invalid; nothing was sent to the gateway."""


class LiveTradingRefused(ConfigError):
    """The broker would trade a live (non-paper) account and the store was not told to:
    nothing was sent. Pass ``allow_live=True`` to ``IBKRCPStore`` to trade it on purpose."""


class AmbiguousContract(ConfigError):
    """Several listings match the spec; ``candidates`` lists them (give a fuller spec such as
    ``"AAPL-STK-NASDAQ-USD"`` or the conid)."""

    def __init__(self, message: str, *, spec: str, candidates: Sequence[Any]) -> None:
        super().__init__(message, spec=spec)
        self.spec = spec
        self.candidates = tuple(candidates)


class Cancelled(MarketError):
    """A wait or an operation ended because its cancel token was cancelled (the client, store
    or feed is closing); the message says who cancelled it."""


class PacingCancelled(Cancelled):
    """A request waiting for its pacing slot was cancelled (its client is closing)."""


class TransportClosed(MarketError):
    """The client was closed; create a new one to keep talking to the gateway."""


class NetworkError(MarketError):
    """The request did not get a usable HTTP answer (connection, TLS or protocol failure)."""


class TlsError(NetworkError):
    """The TLS handshake failed or the gateway's certificate was not trusted.

    Not retried: the same certificate would be refused again. The message names the
    ``verify=`` setting that fixes it.
    """


class GatewayConnectionError(NetworkError, ConnectionError):
    """The gateway could not be reached, or it closed or reset the connection."""


class RequestTimeout(NetworkError, TimeoutError):
    """The gateway did not answer within the configured timeout (seconds in ``timeout``)."""

    def __init__(
        self, message: str, *, endpoint: str | None = None, timeout: float | None = None
    ) -> None:
        super().__init__(message, endpoint=endpoint, timeout=timeout)
        self.timeout = timeout


class ApiError(MarketError):
    """The gateway answered with an error.

    ``status`` is the HTTP status (or 200 for in-band ``{"error": ...}`` bodies) and
    ``gateway_message`` the gateway's own words, verbatim.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = None,
        gateway_message: str | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, endpoint=endpoint, **context)
        self.status = status
        self.gateway_message = gateway_message


class AuthenticationError(ApiError):
    """The brokerage session is missing, expired or taken over by another login."""


class RateLimitExceeded(ApiError):
    """The gateway refused the request for pacing (HTTP 429).

    ``retry_after`` is the number of seconds to wait before trying again (None if unknown).
    IBKR keeps an offending IP in a penalty box for 10-15 minutes.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = 429,
        gateway_message: str | None = None,
        retry_after: float | None = None,
        **context: Any,
    ) -> None:
        super().__init__(
            message,
            endpoint=endpoint,
            status=status,
            gateway_message=gateway_message,
            **context,
        )
        self.retry_after = retry_after


class AccountsRequired(ApiError):
    """The gateway wants ``GET /iserver/accounts`` before this request (snapshots, orders);
    the client sends it and retries on its own."""


class DataUnavailable(ApiError):
    """The gateway has no data for the request: unknown contract, no bars, no permission."""


class ContractNotFound(DataUnavailable):
    """No listing matches the spec. ``spec`` is the spec string, ``candidates`` what the search
    found before filtering (possibly empty)."""

    def __init__(
        self,
        message: str,
        *,
        spec: str,
        candidates: Sequence[Any] = (),
        endpoint: str = "/iserver/secdef/search",
    ) -> None:
        super().__init__(message, endpoint=endpoint, spec=spec)
        self.spec = spec
        self.candidates = tuple(candidates)


class DataIntegrityError(MarketError):
    """Data from the gateway is malformed, truncated or fails validation."""


class InvalidBarStop(DataIntegrityError):
    """``strict=True`` and the gateway sent an invalid bar for the requested span: the fetch
    (or the feed) stops instead of dropping the bar."""


# -- bar store (backtrader_ibkr_cp.barstore) ------------------------------------------------


class BarStoreError(MarketError):
    """A bar store file or folder cannot be used. ``path`` is the file or folder involved (a
    local path or a URI); the message says what to do. Nothing else in the store is changed."""

    def __init__(self, message: str, *, path: str | None = None, **context: Any) -> None:
        super().__init__(message, path=path, **context)
        self.path = path


class BarStoreCorrupt(BarStoreError):
    """A store file is not what the store wrote: truncated, not Parquet, foreign columns,
    metadata that does not match its place. Move the file away and fill its span again."""


class BarStoreVersionError(BarStoreError):
    """A store file was written by a newer format ``version`` than this package reads
    (``supported``): upgrade backtrader_ibkr_cp, or use another store folder."""

    def __init__(
        self, message: str, *, path: str | None = None, version: int, supported: int
    ) -> None:
        super().__init__(message, path=path, version=version, supported=supported)
        self.version = version
        self.supported = supported


class BarStoreWriteError(BarStoreError):
    """The store could not write: no permission, a read-only file system, a full disk or a
    file size limit. ``errno`` is the operating system's error number (None if unknown). The
    files the write would have replaced are unchanged."""

    def __init__(self, message: str, *, path: str | None = None, errno: int | None = None) -> None:
        super().__init__(message, path=path, errno=errno)
        self.errno = errno


class BarStoreLookupError(BarStoreError, LookupError):
    """The store holds no contract matching what was asked (``context["spec"]``): fill it
    first (``ibkr-cp store fill SYMBOL ...``) or pass the conid."""


# -- cassettes (backtrader_ibkr_cp.cassettes) -----------------------------------------------


class CassetteError(ConfigError):
    """A cassette cannot serve the run: missing, unreadable, or lacking a request. Nothing was
    sent to a gateway. ``context["cassette"]`` is the file, when known."""


class CassetteNotFound(CassetteError):
    """The cassette file does not exist and the record mode does not allow creating it."""


class CassetteCorrupt(CassetteError):
    """The cassette file exists but is not a cassette this package can read: empty, not JSON
    (e.g. truncated), not UTF-8 or gzip, or JSON without a list of recorded interactions.
    ``cassette_path`` is the file; ``reason`` says what is wrong with it. Re-record it (or
    delete it and record again)."""

    def __init__(self, message: str, *, cassette_path: str, reason: str) -> None:
        super().__init__(message, cassette=cassette_path, reason=reason)
        self.cassette_path = cassette_path
        self.reason = reason


class CassetteMiss(CassetteError):
    """A request is not in the cassette (or was recorded fewer times than it was made).

    ``method``, ``path`` and ``query`` name the request (no scheme/host/port: they are not
    matched); ``cassette_path`` the file; ``reason`` vcrpy's diagnosis (``"no_match"``,
    ``"already_played"``, ``"nothing_similar"``, ``"cassette_not_found"``) or None.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        query: str,
        cassette_path: str,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, endpoint=path, cassette=cassette_path)
        self.method = method
        self.path = path
        self.query = query
        self.cassette_path = cassette_path
        self.reason = reason


# -- orders (the money path) ----------------------------------------------------------------


class OrderOutcomeUnknown(NetworkError):
    """A request that places, confirms, modifies or cancels an order got no usable answer (the
    connection broke, no answer in time, HTTP 5xx, an unreadable body): IBKR may or may not
    have carried it out. It was sent once and not re-sent. Find out before acting again: look
    the order up by its ``cOID`` in live orders and executions; re-sending with the *same*
    ``cOID`` is safe (IBKR refuses a duplicate within 24 h).

    ``operation`` is ``"place"``, ``"reply"``, ``"modify"`` or ``"cancel"``; ``coids`` the
    client order ids the request carried (place; ``()`` otherwise); ``order_id`` IBKR's id
    (modify, cancel); ``reply_id`` the question answered (reply); ``status`` the HTTP status
    when an answer came (5xx), else None. The cause is chained (``__cause__``).
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        operation: str,
        coids: tuple[str, ...] = (),
        order_id: int | None = None,
        reply_id: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(
            message,
            endpoint=endpoint,
            operation=operation,
            coids=coids,
            order_id=order_id,
            reply_id=reply_id,
            status=status,
        )
        self.operation = operation
        self.coids = coids
        self.order_id = order_id
        self.reply_id = reply_id
        self.status = status


# -- the WebSocket (client.websocket) -------------------------------------------------------


class WebSocketUnavailable(ApiError):
    """The gateway answered the WebSocket upgrade (``/v1/api/ws``) with something other than
    a WebSocket (``status`` the HTTP status, None when the answer was not HTTP at all): it does
    not serve one there. Not retried; use polled snapshots (``streaming="poll"``)."""
