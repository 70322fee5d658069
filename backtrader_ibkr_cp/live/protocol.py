"""What goes into a :class:`~.engine.LiveEngine` and what comes out of it. Pure values.

Inputs are things that happened (market data arrived, a history request answered or failed, a
reconnection ended); outputs (*actions*) are what the engine wants done: deliver an item to
the feed, tell the store something, fetch history, reconnect, (re)subscribe to market data.
The :class:`~.runner.StreamRunner` carries the actions out and feeds the results back in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ..errors import MarketError
from ..models import Bar, Snapshot
from .events import StreamEvent

__all__ = [
    "Action",
    "Deliver",
    "Fetch",
    "FetchPurpose",
    "HistoryAnswer",
    "HistoryFailed",
    "Input",
    "MarketData",
    "MarketDataFailed",
    "Notify",
    "Reconnect",
    "ReconnectDone",
    "SourceAlive",
    "Subscribe",
    "TimePassed",
]

#: Why history is fetched: a historical run's span, a backfill (start or gap) pass, or the
#: confirmation of live intervals.
FetchPurpose = Literal["historical", "backfill", "confirm"]


# -- inputs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarketData:
    """A market-data update for the stream's contract (a polled snapshot, or the merged
    state after a WebSocket update)."""

    snapshot: Snapshot


@dataclass(frozen=True)
class MarketDataFailed:
    """Polling (or the socket) failed for the stream's contract."""

    error: MarketError


@dataclass(frozen=True)
class Fetch:
    """Fetch completed bars starting in ``[start, end)`` that are complete at gateway time
    ``now``. ``settles``: the answer is final for the span (an empty answer for a span that
    must hold bars is asked again, then reported)."""

    purpose: FetchPurpose
    start: datetime
    end: datetime
    now: datetime
    settles: bool = False


@dataclass(frozen=True)
class HistoryAnswer:
    """The gateway answered ``request`` with ``bars`` (validated, sorted, complete)."""

    request: Fetch
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class HistoryFailed:
    """``request`` failed with ``error`` (already retried by the HTTP layer)."""

    request: Fetch
    error: MarketError


@dataclass(frozen=True)
class ReconnectDone:
    """A reconnection attempt ended: ``error`` is None when the session is usable again and
    market data is subscribed again."""

    error: MarketError | None = None


@dataclass(frozen=True)
class SourceAlive:
    """The market-data source is healthy though nothing arrived (a WebSocket heartbeat: a
    quiet instrument pushes no update)."""


@dataclass(frozen=True)
class TimePassed:
    """Nothing arrived; the clocks moved on."""


Input = (
    MarketData
    | MarketDataFailed
    | SourceAlive
    | HistoryAnswer
    | HistoryFailed
    | ReconnectDone
    | TimePassed
)


# -- actions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deliver:
    """Put ``event`` into the feed's queue."""

    event: StreamEvent


@dataclass(frozen=True)
class Notify:
    """A message for the store (``Strategy.notify_store``)."""

    message: str


@dataclass(frozen=True)
class Reconnect:
    """Re-establish the session if it is gone, then subscribe to market data again; answer
    with :class:`ReconnectDone`."""


@dataclass(frozen=True)
class Subscribe:
    """Start (``True``) or stop (``False``) receiving market data for the contract."""

    on: bool = True


Action = Deliver | Notify | Fetch | Reconnect | Subscribe
