"""The public surface is pinned: adding a name is a decision, removing one breaks users."""

from __future__ import annotations

import subprocess
import sys

import backtrader_ibkr_cp

EXPECTED = {
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
}


def test_all_is_pinned() -> None:
    assert set(backtrader_ibkr_cp.__all__) == EXPECTED
    assert backtrader_ibkr_cp.__all__ == sorted(backtrader_ibkr_cp.__all__)


def test_every_name_resolves() -> None:
    for name in backtrader_ibkr_cp.__all__:
        assert getattr(backtrader_ibkr_cp, name) is not None


def test_error_tree() -> None:
    m = backtrader_ibkr_cp
    for name in (
        "ApiError",
        "NetworkError",
        "GatewayConnectionError",
        "AuthenticationError",
        "RateLimitExceeded",
        "DataUnavailable",
        "DataIntegrityError",
        "RequestTimeout",
        "ConfigError",
        "BarStoreError",
        "BarStoreCorrupt",
        "BarStoreVersionError",
        "BarStoreWriteError",
        "BarStoreLookupError",
        "CassetteError",
        "CassetteCorrupt",
        "CassetteMiss",
        "CassetteNotFound",
    ):
        assert issubclass(getattr(m, name), m.MarketError)
    assert issubclass(m.GatewayConnectionError, ConnectionError)
    assert issubclass(m.RequestTimeout, TimeoutError)
    assert issubclass(m.ConfigError, ValueError)
    for name in ("BarStoreCorrupt", "BarStoreVersionError", "BarStoreWriteError"):
        assert issubclass(getattr(m, name), m.BarStoreError)
    assert issubclass(m.BarStoreLookupError, LookupError)
    for name in ("CassetteCorrupt", "CassetteMiss", "CassetteNotFound"):
        assert issubclass(getattr(m, name), m.CassetteError)
    assert issubclass(m.CassetteError, m.ConfigError)


def test_import_is_light_and_side_effect_free() -> None:
    code = (
        "import sys, threading, backtrader_ibkr_cp;"
        "assert 'backtrader' not in sys.modules, 'backtrader imported eagerly';"
        "assert 'pyarrow' not in sys.modules, 'pyarrow imported eagerly';"
        "assert threading.active_count() == 1"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
