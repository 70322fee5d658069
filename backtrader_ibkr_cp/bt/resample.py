"""backtrader's resampler and replayer, cutting intraday bars on the exchange's clock.

backtrader decides when an intraday bar is over on the *stored* time (``num2date`` without a
time zone), while it labels the bar with the feed's local time. This feed stores UTC (so feeds
of different exchanges interleave correctly), so a 2-, 3-, 4- or 8-hour bar was cut at UTC
hours: 11:00-13:00 New York instead of IBKR's 10:00-12:00 (backtrader's own issue, mementum
PR #467). These subclasses judge the boundary on the feed's local time, as backtrader already
does for the bar's label and for "on edge" checks. Nothing else changes.
"""

from __future__ import annotations

from typing import Any

from backtrader.feed import DataClone
from backtrader.resamplerfilter import Replayer, Resampler

__all__ = ["ExchangeClone", "ExchangeReplayer", "ExchangeResampler"]


def _barover_subdays(self: Any, data: Any) -> bool:
    """``_BaseResampler._barover_subdays`` with both times taken in the feed's time zone."""
    if self._eoscheck(data):
        return True
    if data.datetime[0] < self.bar.datetime:
        return False
    point, _ = self._gettmpoint(self.data.num2date(self.bar.datetime).time())
    barpoint, _ = self._gettmpoint(self.data.num2date(data.datetime[0]).time())
    if barpoint <= point:
        return False
    if not self.p.bar2edge or self.p.compression == 1:
        return True
    return bool(barpoint // self.p.compression > point // self.p.compression)


class ExchangeResampler(Resampler):  # type: ignore[misc]
    """``bt.filters.Resampler`` with bar boundaries on the exchange's clock."""

    _barover_subdays = _barover_subdays


class ExchangeReplayer(Replayer):  # type: ignore[misc]
    """``bt.filters.Replayer`` with bar boundaries on the exchange's clock."""

    _barover_subdays = _barover_subdays


class ExchangeClone(DataClone):  # type: ignore[misc]
    """What ``cerebro.resampledata(d)`` makes of a feed already added with ``adddata(d)``:
    backtrader's clone, resampling and replaying on the exchange's clock too."""

    def resample(self, **kwargs: Any) -> None:
        self.addfilter(ExchangeResampler, **kwargs)

    def replay(self, **kwargs: Any) -> None:
        self.addfilter(ExchangeReplayer, **kwargs)
