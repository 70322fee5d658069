"""backtrader_ibkr_cp: IBKR's Client Portal Gateway as a backtrader data source.

Importing this package does no I/O and does not import backtrader; ``IBKRCPStore`` and
``IBKRCPData`` import it when first used.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    DataIntegrityError,
    DataUnavailable,
    GatewayConnectionError,
    MarketError,
    NetworkError,
    RateLimitExceeded,
    RequestTimeout,
)
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

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "AuthenticationError",
    "Availability",
    "Bar",
    "BarValidator",
    "ConfigError",
    "Contract",
    "DataIntegrityError",
    "DataUnavailable",
    "GatewayConnectionError",
    "InvalidBar",
    "MarketError",
    "NetworkError",
    "Quote",
    "RateLimitExceeded",
    "RequestTimeout",
    "Snapshot",
    "Tick",
    "Timeframe",
    "__version__",
]


def __getattr__(name: str) -> Any:
    raise AttributeError(f"module 'backtrader_ibkr_cp' has no attribute {name!r}")
