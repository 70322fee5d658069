"""Bars and ticks from polled snapshots. Pure: no I/O, no threads, no local clock.

The clock is each snapshot's ``timestamp`` (the gateway's ``_updated``), never the local one:
the gateway (or the simulator, which may run a fast clock) decides when a bar is over.

:class:`BarBuilder` turns the last price of successive snapshots into OHLC bars of one
:class:`Timeframe`, cut by the wire calendar (``models.calendar``), with the volume taken from the
change of the cumulative day volume (field ``7762``, shares) across the bar. It only returns bars
it watched from their start: the bar that is forming when the builder starts (or restarts after
:meth:`BarBuilder.reset`) is incomplete and is dropped, as are buckets in which no trade was
seen. The live stream fills those from the gateway's history.

:class:`TickBuilder` turns each snapshot that shows a new trade into a one-tick bar, for
backtrader's ``resampledata``/``replaydata``.

Ignored by both: pre-flight snapshots (no fields yet), snapshots without a timestamp, a last
price carrying IBKR's ``C`` prefix (the prior close: no trade today yet), snapshots older than
one already seen, and prices outside the session (regular hours unless ``outside_rth``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..models import Bar, Snapshot, Timeframe
from ..models.calendar import Bucket, bucket_at

__all__ = ["BarBuilder", "TickBuilder"]


@dataclass
class _Forming:
    bucket: Bucket
    open: float
    high: float
    low: float
    close: float
    volume: float
    watched: bool

    def add(self, price: float, volume: float) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += volume

    def bar(self) -> Bar:
        return Bar(self.bucket.start, self.open, self.high, self.low, self.close, self.volume)


class _Trades:
    """Tracks the last price and cumulative volume to tell when a snapshot shows a trade."""

    def __init__(self) -> None:
        self.last_time: datetime | None = None
        self.price: float | None = None
        self.volume: float | None = None

    def observe(self, snapshot: Snapshot) -> tuple[float, float, bool] | None:
        """``(price, volume since the previous snapshot, traded)`` for a usable snapshot
        carrying a trade price, else None. Updates the state either way."""
        assert snapshot.timestamp is not None
        self.last_time = snapshot.timestamp
        delta: float | None = None
        if snapshot.volume is not None:
            if self.volume is not None:
                # A smaller cumulative volume means the gateway's day counter was reset.
                delta = (
                    snapshot.volume - self.volume
                    if snapshot.volume >= self.volume
                    else snapshot.volume
                )
            self.volume = snapshot.volume
        price = snapshot.last
        if price is None or snapshot.last_is_prior_close:
            return None
        previous = self.price
        self.price = price
        if previous is None:
            # First trade price seen: a trade is known only from the volume baseline (e.g. a
            # pre-open snapshot carrying the prior close).
            if delta is None:
                return None
            return price, delta, delta > 0
        if delta is None and price != previous and snapshot.last_size is not None:
            delta = snapshot.last_size
        traded = price != previous or (delta is not None and delta > 0)
        return price, delta or 0.0, traded

    def fresh(self, snapshot: Snapshot) -> bool:
        if snapshot.is_preflight or snapshot.timestamp is None:
            return False
        return self.last_time is None or snapshot.timestamp > self.last_time


class BarBuilder:
    """Builds completed OHLCV bars of ``timeframe`` from snapshots of one contract.

    ``update`` and ``flush`` return the bars completed by that call, oldest first; each bar is
    stamped at its start (tz-aware UTC) like the gateway's history. Not thread-safe: one
    builder per feed, fed from one thread.
    """

    def __init__(self, timeframe: Timeframe | str, *, outside_rth: bool = False) -> None:
        self.timeframe = Timeframe.parse(timeframe)
        self.outside_rth = outside_rth
        self._trades = _Trades()
        self._forming: _Forming | None = None
        self._since: datetime | None = None
        #: Bars dropped because the builder did not watch them from their start.
        self.incomplete = 0

    @property
    def forming(self) -> Bucket | None:
        """The bucket of the bar being built, or None."""
        return self._forming.bucket if self._forming is not None else None

    @property
    def watching_since(self) -> datetime | None:
        """Gateway time of the first snapshot since the start or the last :meth:`reset`."""
        return self._since

    def reset(self) -> None:
        """Forget everything (after a lost connection): the next bar will be incomplete."""
        self._trades = _Trades()
        self._forming = None
        self._since = None

    def update(self, snapshot: Snapshot) -> list[Bar]:
        """Feed one snapshot; return the bars it completed (usually none, at most one or two)."""
        if not self._trades.fresh(snapshot):
            return []
        now = snapshot.timestamp
        assert now is not None
        completed = self.flush(now)
        if self._since is None:
            self._since = now
        observed = self._trades.observe(snapshot)
        if observed is None:
            return completed
        price, volume, traded = observed
        bucket = bucket_at(now, self.timeframe, outside_rth=self.outside_rth)
        if bucket is None or not traded:
            return completed
        forming = self._forming
        if forming is None or forming.bucket != bucket:
            watched = self._since < bucket.start
            self._forming = _Forming(bucket, price, price, price, price, volume, watched)
        else:
            forming.add(price, volume)
        return completed

    def flush(self, now: datetime) -> list[Bar]:
        """Close the forming bar if gateway time ``now`` is at or past its end."""
        forming = self._forming
        if forming is None or now < forming.bucket.end:
            return []
        self._forming = None
        if not forming.watched:
            self.incomplete += 1
            return []
        return [forming.bar()]


class TickBuilder:
    """One-tick bars (open = high = low = close = the trade price) from snapshots.

    A snapshot makes a tick when its last price differs from the previous snapshot's or the
    cumulative volume grew; the tick's volume is that growth in shares (the last size when the
    gateway sends no cumulative volume). The first snapshot only sets the baseline. Ticks are
    stamped with the snapshot's gateway time.
    """

    def __init__(self, *, outside_rth: bool = False) -> None:
        self.outside_rth = outside_rth
        self._trades = _Trades()

    def reset(self) -> None:
        """Forget the baseline (after a lost connection)."""
        self._trades = _Trades()

    def update(self, snapshot: Snapshot) -> Bar | None:
        """The tick this snapshot shows, or None."""
        if not self._trades.fresh(snapshot):
            return None
        observed = self._trades.observe(snapshot)
        if observed is None:
            return None
        price, volume, traded = observed
        now = snapshot.timestamp
        assert now is not None
        if not traded or bucket_at(now, Timeframe.MINUTE_1, outside_rth=self.outside_rth) is None:
            return None
        return Bar(now, price, price, price, price, volume)
