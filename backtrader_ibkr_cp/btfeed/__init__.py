"""Helpers of the backtrader feed that need no backtrader: time zones and bar stamps."""

from __future__ import annotations

from .stamps import lines_stamp
from .tz import LocalizingZone, localizing_tz

__all__ = ["LocalizingZone", "lines_stamp", "localizing_tz"]
