"""Where a stream stands in time: what it delivered and which interval is due next. Pure.

The *cursor* is the end of the last settled bar interval (delivered, or known to have no bar);
the *last* stamp is the newest instant delivered. Every item a stream emits goes through
:meth:`Timeline.accept` / :meth:`Timeline.accept_tick`, which refuse anything at or before the
last stamp (``<=``), so nothing is delivered twice across backfill, live, retries and
reconnections.
"""

from __future__ import annotations

from datetime import datetime

from ..models import Bar, Timeframe
from ..models.calendar import Bucket, bucket_at, expects_bars, next_session_start
from .events import BarEvent

__all__ = ["Timeline"]


class Timeline:
    """Delivery state of one stream.

    Args:
        timeframe: the bar size (1 minute in ticks mode, for backfilled bars).
        outside_rth: sessions are 04:00-20:00 New York instead of 09:30-16:00.
        ticks: ticks mode (backfilled minute bars are stamped at their end).
        end: nothing starting at or after this instant is delivered (None: open-ended).
        after: everything at or before this instant was delivered already (``backfill_from``).
    """

    def __init__(
        self,
        timeframe: Timeframe,
        *,
        outside_rth: bool,
        ticks: bool,
        end: datetime | None,
        after: datetime | None,
    ) -> None:
        self.timeframe = timeframe
        self.outside_rth = outside_rth
        self.ticks = ticks
        self.end = end
        #: The newest stamp delivered: a bar's start, a tick's time, a ticks-mode bar's end.
        self.last: datetime | None = after
        #: End of the last settled interval.
        self.cursor: datetime | None = after

    def bucket(self, moment: datetime) -> Bucket | None:
        return bucket_at(moment, self.timeframe, outside_rth=self.outside_rth)

    def due(self) -> Bucket | None:
        """The first interval after the cursor (skipping nights and weekends), or None before
        anything is known."""
        if self.cursor is None:
            return None
        found = self.bucket(self.cursor)
        if found is None:
            found = self.bucket(next_session_start(self.cursor, outside_rth=self.outside_rth))
        return found

    def settle_empty(self, bucket: Bucket) -> None:
        """``bucket`` has no bar (nothing traded): move the cursor past it."""
        if self.cursor is None or self.cursor < bucket.end:
            self.cursor = bucket.end

    def skip_to(self, now: datetime) -> None:
        """Deliver nothing before the interval forming at ``now``."""
        forming = self.bucket(now)
        self.cursor = forming.start if forming is not None else now

    def reached_end(self, gateway_now: datetime | None) -> bool:
        """True once everything before ``end`` is settled."""
        if self.end is None:
            return False
        moment = gateway_now if self.ticks else self.cursor
        return moment is not None and moment >= self.end

    def expects_bars(self, start: datetime, end: datetime, now: datetime) -> bool:
        """See :func:`~backtrader_ibkr_cp.models.calendar.expects_bars`."""
        return expects_bars(start, end, now, self.timeframe, outside_rth=self.outside_rth)

    def fresh(self, bar: Bar) -> bool:
        return self.last is None or bar.timestamp > self.last

    def accept(self, bar: Bar, *, live: bool) -> BarEvent | None:
        """The event for ``bar`` if it is new and before ``end``, advancing the state."""
        bucket = self.bucket(bar.timestamp)
        end = bucket.end if bucket is not None else bar.timestamp + self.timeframe.duration
        if self.end is not None and bar.timestamp >= self.end:
            return None
        stamp = end if self.ticks else bar.timestamp
        if self.last is not None and stamp <= self.last:
            return None
        self.last = stamp
        if self.cursor is None or end > self.cursor:
            self.cursor = end
        return BarEvent(bar, end, live=live, tick=self.ticks)

    def accept_tick(self, tick: Bar) -> BarEvent | None:
        """The event for a one-tick bar if it is newer than everything delivered; the cursor
        moves to the end of its minute (a reconnection backfills whole minutes after it)."""
        if self.last is not None and tick.timestamp <= self.last:
            return None
        self.last = tick.timestamp
        minute = self.bucket(tick.timestamp)
        if minute is not None and (self.cursor is None or minute.end > self.cursor):
            self.cursor = minute.end
        return BarEvent(tick, tick.timestamp, live=True, tick=True)
