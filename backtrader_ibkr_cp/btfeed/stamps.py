"""The instant each delivered item is stamped with in backtrader's lines. Pure.

- Intraday bars: their start (IBKR's ``t``, the same instant ``sim.truth`` and
  ``GatewayClient.fetch_bars`` use); their end (``right_edge``) when they feed backtrader's
  resampler or replayer, which assume right-edge stamps.
- Daily, weekly and monthly bars: the close of their period's last session (16:00 New York,
  20:00 outside regular hours): the daily bar of 2024-03-08 is stamped 2024-03-08 16:00
  New York, a weekly bar at its Friday's close, a monthly bar at its last weekday's close.
  The date shown is the exchange's trading date and the bar sorts after every intraday bar
  of its period, so a strategy mixing timeframes never sees a daily bar before the day is
  over. (backtrader's CSV feeds use ``sessionend`` 23:59:59.99999 instead; stored as a float
  in UTC that instant can round to midnight and show the next day's date.)
- Ticks mode: each tick at its trade time; backfilled one-minute bars at their end.
"""

from __future__ import annotations

from datetime import datetime, timezone

from ..live.events import BarEvent
from ..models import Timeframe

__all__ = ["lines_stamp"]


def lines_stamp(
    event: BarEvent, timeframe: Timeframe | None, *, right_edge: bool = False
) -> datetime:
    """The naive-UTC datetime to write into ``lines.datetime`` for ``event``."""
    if event.tick or timeframe is None:
        moment = event.stamp
    elif timeframe.is_intraday and not right_edge:
        moment = event.bar.timestamp
    else:
        moment = event.end
    return moment.astimezone(timezone.utc).replace(tzinfo=None)
