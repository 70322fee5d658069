"""The backtrader layer: ``IBKRCPStore``, ``IBKRCPData`` and ``IBKRCPBroker``, the only modules
that import backtrader. Importing this package registers the feed as the store's ``DataCls``
and the broker as its ``BrokerCls``."""

from __future__ import annotations

from .broker import IBKRCPBroker
from .feed import IBKRCPData
from .store import IBKRCPStore

__all__ = ["IBKRCPBroker", "IBKRCPData", "IBKRCPStore"]
