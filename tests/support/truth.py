"""Ground truth as the rows a strategy records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from backtrader_ibkr_cp.models import Timeframe
from backtrader_ibkr_cp.models.calendar import bar_end
from backtrader_ibkr_cp.simulator import SimBar

from .instants import UTC

#: What a strategy records per bar: (lines stamp as UTC, open, high, low, close, volume).
Row = tuple[dt.datetime, float, float, float, float, float]


def truth_rows(
    bars: Iterable[SimBar], bar: str, *, outside_rth: bool = False, at_end: bool = True
) -> list[Row]:
    """``sim.truth(..., bar)`` as recorded rows: each bar stamped at its end (the feed's
    default, the instant it is complete), or at its start with ``at_end=False``."""
    timeframe = Timeframe.parse(bar)
    rows = []
    for b in bars:
        start = b.timestamp.astimezone(UTC)
        stamp = bar_end(start, timeframe, outside_rth=outside_rth) if at_end else start
        rows.append((stamp, b.open, b.high, b.low, b.close, b.volume))
    return rows


def starts(rows: Iterable[Row], bar: str, *, outside_rth: bool = False) -> list[dt.datetime]:
    """The bar starts of end-stamped rows (for comparing with ``sim.truth`` spans)."""
    timeframe = Timeframe.parse(bar)
    out = []
    for row in rows:
        stamp = row[0]
        candidate = stamp - timeframe.duration
        # an intraday bar clipped at the session open is shorter than its nominal length
        while bar_end(candidate, timeframe, outside_rth=outside_rth) < stamp:
            candidate += dt.timedelta(minutes=1)
        out.append(candidate)
    return out
