"""The instant each delivered item is stamped with in backtrader's lines. Pure.

Every bar is stamped when it is complete, so no mix of feeds and timeframes can see the
future: backtrader delivers each feed's bars in stamp order, and a bar stamped at its start
would show a 1-hour bar (and its close) at the first 5-minute bar of that hour.

- Intraday bars: their end (``stamp="end"``, the default), the right edge backtrader's own
  resampler uses; their start (``stamp="start"``: IBKR's ``t``, the instant
  ``GatewayClient.fetch_bars`` and the simulator's ground truth use) only for a feed that is
  neither resampled nor replayed.
- Daily, weekly and monthly bars: the close of their period's last session (16:00 New York,
  20:00 outside regular hours): the daily bar of 2024-03-08 is stamped 2024-03-08 16:00
  New York, a weekly bar at its Friday's close, a monthly bar at its last weekday's close, so
  the date shown is the exchange's trading date.
- Ticks mode: each tick at its trade time; backfilled one-minute bars at their end.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..live.events import BarEvent
from ..models import Timeframe

__all__ = ["STAMPS", "lines_stamp"]

#: Values of the feed's ``stamp`` parameter.
STAMPS = ("end", "start")


def lines_stamp(event: BarEvent, timeframe: Timeframe | None, *, at_end: bool = True) -> datetime:
    """The naive-UTC datetime to write into ``lines.datetime`` for ``event``."""
    if event.tick or timeframe is None:
        moment = event.stamp
    elif timeframe.is_intraday and not at_end:
        moment = event.bar.timestamp
    else:
        moment = event.end
    return moment.astimezone(timezone.utc).replace(tzinfo=None)
