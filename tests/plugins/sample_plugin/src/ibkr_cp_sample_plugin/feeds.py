"""The sample distribution's ``backtrader.feeds`` entry: a CSV data feed factory."""

from __future__ import annotations

from typing import Any


def Data(**kwargs: Any) -> Any:
    """backtrader's GenericCSVData (a sample third-party feed)."""
    import backtrader as bt

    return bt.feeds.GenericCSVData(**kwargs)
