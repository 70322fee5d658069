"""backtrader_ibkr_cp: IBKR's Client Portal Gateway as a backtrader data source.

Importing this package does no I/O and does not import backtrader; ``IBKRCPStore`` and
``IBKRCPData`` import it when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ApiError,
    AuthenticationError,
    BarStoreCorrupt,
    BarStoreError,
    BarStoreLookupError,
    BarStoreVersionError,
    BarStoreWriteError,
    CassetteCorrupt,
    CassetteError,
    CassetteMiss,
    CassetteNotFound,
    ConfigError,
    DataIntegrityError,
    DataUnavailable,
    GatewayConnectionError,
    MarketError,
    NetworkError,
    RateLimitExceeded,
    RequestTimeout,
)
from .gateway import GatewayClient, SymbolLike
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

_LAZY = {"IBKRCPStore": ".bt", "IBKRCPData": ".bt", "BarStore": ".barstore"}

__all__ = [
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
    "CassetteCorrupt",
    "CassetteError",
    "CassetteMiss",
    "CassetteNotFound",
    "ConfigError",
    "Contract",
    "DataIntegrityError",
    "DataUnavailable",
    "GatewayClient",
    "GatewayConnectionError",
    "IBKRCPData",
    "IBKRCPStore",
    "InvalidBar",
    "MarketError",
    "NetworkError",
    "Quote",
    "RateLimitExceeded",
    "RequestTimeout",
    "Snapshot",
    "SymbolLike",
    "Tick",
    "Timeframe",
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
    """Import the backtrader-based classes and the bar store (pyarrow) on first use: importing
    backtrader or pyarrow is slow."""
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'backtrader_ibkr_cp' has no attribute {name!r}")
