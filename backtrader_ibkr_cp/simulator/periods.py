"""History ``period`` values: parsing, the allowed bar sizes per period, and window starts.

Units and ranges (IBKR): ``Nmin`` 1-30, ``Nh`` 1-8, ``Nd`` 1-1000 (N trading *sessions*),
``Nw`` 1-792 (N x 7 calendar days), ``Nm`` 1-182 (calendar months), ``Ny`` 1-15 (years).

Allowed bar sizes follow IBKR's step-size table. A period that falls between two columns of the
table takes the larger column's minimum bar and the smaller column's maximum bar, so ``3d``
(between ``1d``: 1min-8h and ``1w``: 10min-1w) allows 10min-8h. Periods are compared by their
nominal length in days (a month is 1/12 year, a day 1 day, whatever its sessions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from .calendar import BAR_SIZES, BarSize, as_utc, last_session_day, previous_trading_day
from .calendar import session_bounds as _session_bounds

__all__ = ["Period", "allowed_bars", "window_start"]

_UNITS: dict[str, tuple[int, Fraction]] = {
    # unit: (maximum count, nominal length in days)
    "min": (30, Fraction(1, 1440)),
    "h": (8, Fraction(1, 24)),
    "d": (1000, Fraction(1)),
    "w": (792, Fraction(7)),
    "m": (182, Fraction(365, 12)),
    "y": (15, Fraction(365)),
}
_PATTERN = re.compile(r"^([0-9]{1,4})(min|h|d|w|m|y)$")


@dataclass(frozen=True)
class Period:
    """A history period such as ``Period(5, "d")`` (five trading sessions)."""

    count: int
    unit: str

    @property
    def text(self) -> str:
        """The wire form, e.g. ``"5d"``."""
        return f"{self.count}{self.unit}"

    @property
    def nominal_days(self) -> Fraction:
        """Nominal length in days, used only to place the period in IBKR's table."""
        return self.count * _UNITS[self.unit][1]

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse ``"30min"``, ``"1h"``, ``"5d"``, ``"2w"``, ``"3m"``, ``"1y"``; ValueError else."""
        match = _PATTERN.match(text)
        if match is None:
            raise ValueError(
                f"period {text!r} is not valid; use N followed by min, h, d, w, m or y "
                "(e.g. 30min, 8h, 5d, 2w, 6m, 1y)"
            )
        count, unit = int(match.group(1)), match.group(2)
        maximum = _UNITS[unit][0]
        if not 1 <= count <= maximum:
            raise ValueError(f"period {text!r} is out of range; {unit} periods allow 1-{maximum}")
        return cls(count, unit)


# IBKR's step-size table: (column period, smallest bar, largest bar).
_TABLE: tuple[tuple[Period, str, str], ...] = (
    (Period(30, "min"), "1min", "1min"),
    (Period(1, "h"), "1min", "8h"),
    (Period(1, "d"), "1min", "8h"),
    (Period(1, "w"), "10min", "1w"),
    (Period(1, "m"), "1h", "1m"),
    (Period(3, "m"), "2h", "1m"),
    (Period(6, "m"), "4h", "1m"),
    (Period(1, "y"), "8h", "1m"),
    (Period(2, "y"), "1d", "1m"),
    (Period(3, "y"), "1d", "1m"),
    (Period(15, "y"), "1w", "1m"),
)


def allowed_bars(period: Period) -> tuple[str, ...]:
    """The bar strings IBKR accepts for ``period``, smallest first."""
    length = period.nominal_days
    smaller = [row for row in _TABLE if row[0].nominal_days <= length]
    larger = [row for row in _TABLE if row[0].nominal_days >= length]
    low_row = larger[0] if larger else _TABLE[-1]
    high_row = smaller[-1] if smaller else _TABLE[0]
    names = list(BAR_SIZES)
    low, high = names.index(low_row[1]), names.index(high_row[2])
    return tuple(names[low : high + 1])


def check_pair(period: Period, bar: BarSize) -> None:
    """ValueError naming the valid bar sizes when ``bar`` is not allowed for ``period``."""
    allowed = allowed_bars(period)
    if bar.text not in allowed:
        raise ValueError(
            f"bar {bar.text!r} is not allowed with period {period.text!r}; "
            f"use one of {', '.join(allowed)} or another period"
        )


def _minus_months(anchor: datetime, months: int) -> datetime:
    total = anchor.year * 12 + (anchor.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    day = anchor.day
    while True:
        try:
            return anchor.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


def window_start(period: Period, anchor: datetime, outside_rth: bool) -> datetime:
    """UTC start of the window that ends at ``anchor`` (exclusive) and reaches back ``period``.

    ``Nd`` counts trading sessions: the window starts at the session start of the N-th most
    recent session that started before ``anchor``. Other units are calendar arithmetic on the
    UTC anchor.
    """
    anchor = as_utc(anchor)
    unit, count = period.unit, period.count
    if unit == "min":
        return anchor - timedelta(minutes=count)
    if unit == "h":
        return anchor - timedelta(hours=count)
    if unit == "w":
        return anchor - timedelta(days=7 * count)
    if unit == "m":
        return _minus_months(anchor, count)
    if unit == "y":
        return _minus_months(anchor, 12 * count)
    day = last_session_day(anchor - timedelta(microseconds=1), outside_rth)
    for _ in range(count - 1):
        day = previous_trading_day(day)
    return _session_bounds(day, outside_rth)[0]
