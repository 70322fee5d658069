"""Live market data: the shared snapshot poller, bar/tick builders and the per-feed stream.

Nothing here imports backtrader; the store and feed (``store.py``, ``feed.py``) adapt it.
"""

from __future__ import annotations

from ..models.calendar import Bucket, bucket_at, next_bucket, session_bounds
from .builder import BarBuilder, TickBuilder
from .events import BarEvent, EndEvent, FeedStatus, StatusEvent, StreamConfig, StreamEvent
from .poller import SnapshotListener, SnapshotPoller
from .stream import LiveStream

__all__ = [
    "BarBuilder",
    "BarEvent",
    "Bucket",
    "EndEvent",
    "FeedStatus",
    "LiveStream",
    "SnapshotListener",
    "SnapshotPoller",
    "StatusEvent",
    "StreamConfig",
    "StreamEvent",
    "TickBuilder",
    "bucket_at",
    "next_bucket",
    "session_bounds",
]
