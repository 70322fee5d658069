"""Live market data: the per-feed engine (pure) and its runner thread, the shared snapshot
poller, and the bar/tick builders.

Nothing here imports backtrader; the ``bt`` package adapts it.
"""

from __future__ import annotations

from .builder import BarBuilder, TickBuilder
from .engine import LiveEngine, Phase
from .events import BarEvent, EndEvent, FeedStatus, StatusEvent, StreamConfig, StreamEvent
from .poller import SnapshotListener, SnapshotPoller
from .runner import StreamRunner

__all__ = [
    "BarBuilder",
    "BarEvent",
    "EndEvent",
    "FeedStatus",
    "LiveEngine",
    "Phase",
    "SnapshotListener",
    "SnapshotPoller",
    "StatusEvent",
    "StreamConfig",
    "StreamEvent",
    "StreamRunner",
    "TickBuilder",
]
