"""Pure models: what the gateway returns, parsed and validated. No I/O here."""

from __future__ import annotations

from .bar import Bar, BarValidator, InvalidBar
from .contract import Contract
from .market import Availability, Quote, Snapshot, Tick
from .timeframe import Timeframe

__all__ = [
    "Availability",
    "Bar",
    "BarValidator",
    "Contract",
    "InvalidBar",
    "Quote",
    "Snapshot",
    "Tick",
    "Timeframe",
]
