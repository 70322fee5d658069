"""Historical bars: the window planner and the concurrent fetcher."""

from __future__ import annotations

from .fetch import HistoryApi, HistoryFetcher
from .planner import Window, max_period, minimum_requests, plan_windows

__all__ = [
    "HistoryApi",
    "HistoryFetcher",
    "Window",
    "max_period",
    "minimum_requests",
    "plan_windows",
]
