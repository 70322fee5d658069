"""A historical run the bar store covers: no gateway, no stream thread, not even a symbol
look-up (the store keeps the contract's details).

:meth:`StoredRun.find` decides, on this machine's clock (the store's ``clock``): the store
must hold every bar of the span that is complete and settled now. The run then reads the span
from the store, as columns for the one-pass preload (:mod:`.preload`) or as the same items a
stream would deliver, for the bar-by-bar path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..barstore import BarColumns, BarStore
from ..barstore.spans import from_ms
from ..errors import DataUnavailable
from ..history.stored import covers
from ..live.events import BarEvent, EndEvent, FeedStatus, StatusEvent, StreamEvent
from ..models import Contract, Timeframe
from ..models.calendar import expects_bars

__all__ = ["CLOSING", "OPENING", "StoredRun"]

#: The statuses a stored run reports, as a historical stream does: before its bars, after them.
OPENING = StatusEvent(FeedStatus.DELAYED, "reading the bar store")
CLOSING = StatusEvent(FeedStatus.DISCONNECTED, "historical data delivered")


@dataclass(frozen=True)
class StoredRun:
    """Bars starting in ``[start, end)`` (tz-aware UTC) of one stored series."""

    store: BarStore
    contract: Contract
    timeframe: Timeframe
    start: datetime
    end: datetime
    outside_rth: bool = False

    @classmethod
    def find(
        cls,
        store: BarStore,
        contract: Contract,
        timeframe: Timeframe,
        start: datetime,
        end: datetime | None,
        *,
        outside_rth: bool = False,
    ) -> StoredRun | None:
        """The run, if ``store`` covers ``[start, end)`` (``end`` None: up to now, i.e. up to
        the store's horizon); else None (the gateway is needed)."""
        now = store.clock()
        if not covers(store, contract, timeframe, start, end, outside_rth=outside_rth, now=now):
            return None
        if end is None:
            end = max(start, store.horizon(timeframe, outside_rth=outside_rth, now=now))
        return cls(store, contract, timeframe, start, end, outside_rth)

    def columns(self, label: str) -> BarColumns:
        """The stored bars. DataUnavailable when the store holds none although the span had
        sessions (a backtest never ends quietly with zero bars)."""
        columns = self.store.read_columns(
            self.contract, self.timeframe, self.start, self.end, self.outside_rth
        )
        now = self.store.clock()
        tf, rth = self.timeframe, self.outside_rth
        if not len(columns) and expects_bars(self.start, self.end, now, tf, outside_rth=rth):
            raise DataUnavailable(
                f"{label}: the bar store {self.store.location} holds no bars for "
                f"[{self.start.isoformat()}, {self.end.isoformat()}) although the exchange "
                "had sessions then; fetch the span again (`ibkr-cp store fill SYMBOL --refresh "
                "...`) or check the dates",
                conid=self.contract.conid,
            )
        return columns

    def events(self, label: str) -> list[StreamEvent]:
        """What a historical stream over the span delivers: DELAYED, the bars (stamped at
        their start, with their end), DISCONNECTED, the end."""
        columns = self.columns(label)
        ends = columns.end()
        bars = columns.to_bars()
        delivered: list[StreamEvent] = [OPENING]
        delivered += [
            BarEvent(bar, from_ms(end), live=False)
            for bar, end in zip(bars, ends.tolist(), strict=True)
        ]
        delivered += [CLOSING, EndEvent()]
        return delivered
