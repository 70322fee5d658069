"""The public surface is pinned: adding a name is a decision, removing one breaks users."""

from __future__ import annotations

import subprocess
import sys

import backtrader_ibkr_cp

EXPECTED = {
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
        "assert 'vcr' not in sys.modules, 'vcrpy imported eagerly';"
        "assert 'pluggy' not in sys.modules, 'pluggy imported eagerly';"
        "assert threading.active_count() == 1"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def every_error_class() -> set[type]:
    """Every MarketError subclass of the package (its modules imported)."""
    import importlib
    import pkgutil

    for info in pkgutil.walk_packages(backtrader_ibkr_cp.__path__, "backtrader_ibkr_cp."):
        if ".simulator" not in info.name and not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found: set[type] = set()
    pending = [backtrader_ibkr_cp.MarketError]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_error_class_lives_in_errors_py_and_the_root_exports_it() -> None:
    classes = every_error_class()
    assert {c.__module__ for c in classes} == {"backtrader_ibkr_cp.errors"}
    assert {c.__name__ for c in classes} <= set(backtrader_ibkr_cp.__all__)
