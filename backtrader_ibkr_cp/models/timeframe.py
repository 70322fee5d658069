"""Bar sizes: IBKR's bar strings and backtrader's ``(TimeFrame, compression)`` pairs.

One table, used by the client (``bar=`` query parameter), the history planner and the
backtrader feed. backtrader is not imported here: its ``TimeFrame`` constants are plain ints
(``Minutes=4, Days=5, Weeks=6, Months=7``), pinned by a test against backtrader itself.
"""

from __future__ import annotations

import enum
from datetime import timedelta

from ..errors import ConfigError

__all__ = ["BT_DAYS", "BT_MINUTES", "BT_MONTHS", "BT_WEEKS", "Timeframe"]

#: backtrader.TimeFrame constants (``TimeFrame.Minutes`` etc.).
BT_MINUTES = 4
BT_DAYS = 5
BT_WEEKS = 6
BT_MONTHS = 7

_BT_NAMES = {BT_MINUTES: "Minutes", BT_DAYS: "Days", BT_WEEKS: "Weeks", BT_MONTHS: "Months"}


class Timeframe(enum.Enum):
    """A bar size IBKR's ``/iserver/marketdata/history`` accepts.

    ``bar`` is IBKR's bar string (note ``"1m"`` is one *month*), ``bt_timeframe`` and
    ``bt_compression`` the backtrader pair, ``minutes`` the bar length in minutes for
    intraday sizes (0 for daily and longer).
    """

    MINUTE_1 = ("1min", BT_MINUTES, 1)
    MINUTE_2 = ("2min", BT_MINUTES, 2)
    MINUTE_3 = ("3min", BT_MINUTES, 3)
    MINUTE_5 = ("5min", BT_MINUTES, 5)
    MINUTE_10 = ("10min", BT_MINUTES, 10)
    MINUTE_15 = ("15min", BT_MINUTES, 15)
    MINUTE_30 = ("30min", BT_MINUTES, 30)
    HOUR_1 = ("1h", BT_MINUTES, 60)
    HOUR_2 = ("2h", BT_MINUTES, 120)
    HOUR_3 = ("3h", BT_MINUTES, 180)
    HOUR_4 = ("4h", BT_MINUTES, 240)
    HOUR_8 = ("8h", BT_MINUTES, 480)
    DAY_1 = ("1d", BT_DAYS, 1)
    WEEK_1 = ("1w", BT_WEEKS, 1)
    MONTH_1 = ("1m", BT_MONTHS, 1)

    def __init__(self, bar: str, bt_timeframe: int, bt_compression: int) -> None:
        self.bar = bar
        self.bt_timeframe = bt_timeframe
        self.bt_compression = bt_compression

    @property
    def minutes(self) -> int:
        """Bar length in minutes for intraday sizes; 0 for daily, weekly and monthly."""
        return self.bt_compression if self.bt_timeframe == BT_MINUTES else 0

    @property
    def is_intraday(self) -> bool:
        return self.bt_timeframe == BT_MINUTES

    @property
    def duration(self) -> timedelta:
        """Nominal bar length: exact for intraday, 1/7/31 days for daily/weekly/monthly."""
        if self.is_intraday:
            return timedelta(minutes=self.minutes)
        return timedelta(days={BT_DAYS: 1, BT_WEEKS: 7, BT_MONTHS: 31}[self.bt_timeframe])

    @classmethod
    def parse(cls, value: Timeframe | str) -> Timeframe:
        """Accept a Timeframe, its name (``"MINUTE_5"``) or IBKR bar string (``"5min"``)."""
        if isinstance(value, Timeframe):
            return value
        if isinstance(value, str):
            text = value.strip()
            for tf in cls:
                if text == tf.bar or text.upper() == tf.name:
                    return tf
            aliases = {"5mins": "5min", "1hour": "1h", "1day": "1d", "1week": "1w", "1month": "1m"}
            alias = aliases.get(text.lower())
            if alias is not None:
                return cls.parse(alias)
        raise ConfigError(
            f"bar size {value!r} is not supported; use one of {', '.join(tf.bar for tf in cls)}"
        )

    @classmethod
    def from_backtrader(cls, timeframe: int, compression: int) -> Timeframe:
        """The Timeframe for backtrader's ``(TimeFrame, compression)``, or ConfigError."""
        for tf in cls:
            if tf.bt_timeframe == timeframe and tf.bt_compression == compression:
                return tf
        raise ConfigError(
            f"timeframe {_BT_NAMES.get(timeframe, str(timeframe))}/{compression} has no IBKR "
            f"bar size; use one of {cls.supported_text()}"
        )

    @classmethod
    def supported_text(cls) -> str:
        """Human list of the supported backtrader pairs, e.g. ``"Minutes/1, Minutes/2, ..."``."""
        return ", ".join(f"{_BT_NAMES[tf.bt_timeframe]}/{tf.bt_compression}" for tf in cls)
