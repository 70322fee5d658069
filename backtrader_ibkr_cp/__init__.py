"""backtrader_ibkr_cp: IBKR's Client Portal Gateway as a backtrader data source.

Importing this package does no I/O and does not import backtrader; ``IBKRCPStore`` and
``IBKRCPData`` import it when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client.pacing import PacingLimits
from .client.retry import RetryPolicy
from .client.transport import ClientEvent
from .errors import (
    AccountsRequired,
    AmbiguousContract,
    ApiError,
    AuthenticationError,
    BarStoreCorrupt,
    BarStoreError,
    BarStoreLookupError,
    BarStoreVersionError,
    BarStoreWriteError,
    Cancelled,
    CassetteCorrupt,
    CassetteError,
    CassetteMiss,
    CassetteNotFound,
    ConfigError,
    ContractNotFound,
    DataIntegrityError,
    DataUnavailable,
    GatewayConnectionError,
    InvalidBarStop,
    LiveTradingRefused,
    MarketError,
    NetworkError,
    OrderOutcomeUnknown,
    PacingCancelled,
    RateLimitExceeded,
    RequestTimeout,
    TlsError,
    TransportClosed,
    WebSocketUnavailable,
)
from .gateway import ClientHooks, GatewayClient, SymbolLike
from .models import (
    Availability,
    Bar,
    BarValidator,
    Contract,
    InvalidBar,
    Quote,
    Snapshot,
    Tick,
    Timeframe,
)
from .version import __version__

if TYPE_CHECKING:
    from .barstore import BarStore
    from .bt import IBKRCPBroker, IBKRCPData, IBKRCPStore
    from .cassettes import Cassette

#: Imported on first use: backtrader, pyarrow and vcrpy are slow to import.
_LAZY = {
    "IBKRCPBroker": ".bt",
    "IBKRCPStore": ".bt",
    "IBKRCPData": ".bt",
    "BarStore": ".barstore",
    "Cassette": ".cassettes",
}

__all__ = [
    "AccountsRequired",
    "AmbiguousContract",
    "ApiError",
    "AuthenticationError",
    "Availability",
    "Bar",
    "BarStore",
    "BarStoreCorrupt",
    "BarStoreError",
    "BarStoreLookupError",
    "BarStoreVersionError",
    "BarStoreWriteError",
    "BarValidator",
    "Cancelled",
    "Cassette",
    "CassetteCorrupt",
    "CassetteError",
    "CassetteMiss",
    "CassetteNotFound",
    "ClientEvent",
    "ClientHooks",
    "ConfigError",
    "Contract",
    "ContractNotFound",
    "DataIntegrityError",
    "DataUnavailable",
    "GatewayClient",
    "GatewayConnectionError",
    "IBKRCPBroker",
    "IBKRCPData",
    "IBKRCPStore",
    "InvalidBar",
    "InvalidBarStop",
    "LiveTradingRefused",
    "MarketError",
    "NetworkError",
    "OrderOutcomeUnknown",
    "PacingCancelled",
    "PacingLimits",
    "Quote",
    "RateLimitExceeded",
    "RequestTimeout",
    "RetryPolicy",
    "Snapshot",
    "SymbolLike",
    "Tick",
    "Timeframe",
    "TlsError",
    "TransportClosed",
    "WebSocketUnavailable",
    "__version__",
]


def _plugin_hooks() -> Any:
    """The installed plugins' client hooks, imported on first use (pluggy, entry points)."""
    from .plugins.bridges import client_hooks

    return client_hooks()


# The package root is the composition root of the plugin layer: clients built with
# plugins=True (the default) get the installed plugins' hooks from here.
GatewayClient.plugin_hooks = _plugin_hooks


def __getattr__(name: str) -> Any:
    """Import the backtrader classes, the bar store (pyarrow) and cassettes (vcrpy) on first
    use."""
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'backtrader_ibkr_cp' has no attribute {name!r}")
