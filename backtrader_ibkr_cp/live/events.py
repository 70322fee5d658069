"""What a live stream tells its feed, and how it is configured. Pure values, no I/O.

A :class:`~backtrader_ibkr_cp.live.stream.LiveStream` puts :data:`StreamEvent` values into a
``queue.Queue`` in the order the feed must act on them: status changes, bars, and one final
:class:`EndEvent`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from ..errors import ConfigError, MarketError
from ..models import Bar, Timeframe

__all__ = [
    "BarEvent",
    "EndEvent",
    "FeedStatus",
    "StatusEvent",
    "StreamConfig",
    "StreamEvent",
]


class FeedStatus(enum.Enum):
    """Feed states, named as backtrader's data notifications (``data.LIVE`` etc.)."""

    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    CONNBROKEN = "CONNBROKEN"
    DELAYED = "DELAYED"
    LIVE = "LIVE"
    NOTSUBSCRIBED = "NOTSUBSCRIBED"


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """The feed's status changed to ``status``; ``message`` says why (may be empty)."""

    status: FeedStatus
    message: str = ""


@dataclass(frozen=True, slots=True)
class BarEvent:
    """One bar for the feed.

    ``bar.timestamp`` is the bar's start (tz-aware UTC), ``end`` the instant it completed.
    ``live`` is False for backfilled bars. ``tick`` is True for ticks-mode items: a one-tick
    bar stamped at its trade time, or a backfilled one-minute bar that the feed stamps at its
    ``end`` (the instant it is known, as backtrader's resampler expects of ticks).
    """

    bar: Bar
    end: datetime
    live: bool
    tick: bool = False

    @property
    def stamp(self) -> datetime:
        """The instant a ticks-mode item stands for (trade time, or a minute bar's end)."""
        return self.end if self.tick else self.bar.timestamp


@dataclass(frozen=True, slots=True)
class EndEvent:
    """The stream is over. ``error`` is None after a normal end (historical data delivered,
    ``end`` reached), else the typed error that stopped it."""

    error: MarketError | None = None


StreamEvent = StatusEvent | BarEvent | EndEvent


@dataclass(frozen=True)
class StreamConfig:
    """How a stream runs. Datetimes are tz-aware UTC.

    Attributes:
        timeframe: the bar size; None for ticks mode (one-tick bars, backfill with 1-minute
            bars).
        outside_rth: include pre/post-market trading (04:00-20:00 New York) when True.
        historical: fetch ``start``..``end`` once, then end; no live data.
        start: the first bar wanted (None: a default lookback of ``lookback_bars`` bars).
        end: no bar starting at or after ``end`` is wanted (None: open-ended / until now).
        after: bars at or before this instant were already delivered (``backfill_from``).
        backfill_start: backfill from ``start`` before going live.
        backfill: after a lost connection, backfill the gap from the last delivered bar.
        confirm: deliver each live bar as the gateway's own historical bar for that interval
            (the live-built bar is the fallback when history has none).
        reconnect: reconnection attempts after a lost session (-1 forever, 0 none).
        reconnect_timeout: seconds between reconnection attempts.
        stall_timeout: seconds without a snapshot for this contract before the stream calls
            the connection broken.
        confirm_attempts: history requests made for a bar before falling back.
        confirm_wait: seconds between those requests.
        lookback_bars: bars of default backfill when ``start`` is None.
    """

    timeframe: Timeframe | None
    outside_rth: bool = False
    historical: bool = False
    start: datetime | None = None
    end: datetime | None = None
    after: datetime | None = None
    backfill_start: bool = True
    backfill: bool = True
    confirm: bool = True
    reconnect: int = -1
    reconnect_timeout: float = 5.0
    stall_timeout: float = 30.0
    confirm_attempts: int = 5
    confirm_wait: float = 0.5
    lookback_bars: int = 300

    def __post_init__(self) -> None:
        for name in ("start", "end", "after"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ConfigError(f"{name}={value!r} must be tz-aware")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ConfigError(
                f"start {self.start.isoformat()} is not before end {self.end.isoformat()}; "
                "pass a fromdate earlier than the todate"
            )
        if self.historical and self.timeframe is None:
            raise ConfigError("historical data needs a bar size; ticks mode is live only")
        if self.reconnect < -1:
            raise ConfigError(f"reconnect={self.reconnect} is invalid; use -1 (forever) or >= 0")
        for name in ("reconnect_timeout", "stall_timeout", "confirm_wait"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 seconds, got {getattr(self, name)}")
        if self.confirm_attempts < 1 or self.lookback_bars < 1:
            raise ConfigError("confirm_attempts and lookback_bars must be >= 1")

    @property
    def ticks(self) -> bool:
        return self.timeframe is None

    @property
    def bar_timeframe(self) -> Timeframe:
        """The bar size history is fetched in (1 minute in ticks mode)."""
        return self.timeframe if self.timeframe is not None else Timeframe.MINUTE_1
