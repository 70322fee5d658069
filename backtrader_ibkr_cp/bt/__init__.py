"""The backtrader layer: ``IBKRCPStore`` and ``IBKRCPData``, the only modules that import
backtrader. Importing this package registers the feed as the store's ``DataCls``."""

from __future__ import annotations

from .feed import IBKRCPData
from .store import IBKRCPStore

__all__ = ["IBKRCPData", "IBKRCPStore"]
