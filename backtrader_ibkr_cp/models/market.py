"""Quotes, ticks, snapshots and market-data availability. Pure: no I/O.

Parsing of the gateway's snapshot JSON into these objects lives in ``models.snapshot``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import DataUnavailable

__all__ = ["Availability", "Quote", "Snapshot", "Tick"]


@dataclass(frozen=True, slots=True)
class Availability:
    """IBKR market-data availability (snapshot field ``6509``, history ``mdAvailability``).

    ``code`` is the raw string, e.g. ``"RpB"``. Its first character: ``R`` real time, ``D``
    delayed, ``Z`` frozen, ``Y`` frozen delayed, ``N`` not subscribed, ``O`` the yearly market
    data API acknowledgement is missing, ``S`` streaming (history responses), ``i``
    incomplete, ``v`` VDR exempt. An empty code means "unknown".
    """

    code: str

    @property
    def primary(self) -> str:
        return self.code[:1]

    @property
    def realtime(self) -> bool:
        return self.primary in ("R", "S", "v")

    @property
    def delayed(self) -> bool:
        return self.primary in ("D", "Y")

    @property
    def frozen(self) -> bool:
        return self.primary in ("Z", "Y")

    @property
    def subscribed(self) -> bool:
        """False when IBKR says the user has no market-data permission for this contract."""
        return self.primary not in ("N", "O")

    def describe(self) -> str:
        names = {
            "R": "real time",
            "S": "streaming",
            "D": "delayed",
            "Z": "frozen",
            "Y": "frozen delayed",
            "N": "not subscribed",
            "O": "market data API acknowledgement missing",
            "i": "incomplete",
            "v": "VDR exempt",
            "": "unknown",
        }
        return names.get(self.primary, f"unknown code {self.code!r}")


@dataclass(frozen=True, slots=True)
class Quote:
    """Top of book for one contract. Sizes in shares; ``timestamp`` tz-aware UTC."""

    conid: int
    bid_price: float
    ask_price: float
    bid_size: float | None
    ask_size: float | None
    timestamp: datetime

    def spread(self) -> float:
        """``ask_price - bid_price`` (may be negative in a crossed market)."""
        return self.ask_price - self.bid_price

    @property
    def mid(self) -> float:
        return (self.bid_price + self.ask_price) / 2.0


@dataclass(frozen=True, slots=True)
class Tick:
    """The last trade for one contract. ``size`` in shares (None if unknown)."""

    conid: int
    price: float
    size: float | None
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One contract's parsed ``/iserver/marketdata/snapshot`` entry.

    Every value is None when the gateway did not (yet) send the field. ``timestamp`` is the
    gateway's ``_updated`` (tz-aware UTC) or None. ``last_is_prior_close`` is True when the
    last price carried IBKR's ``C`` prefix (no trade today: it is the previous close) and
    ``halted`` when it carried ``H``. ``volume`` is the high-precision cumulative day volume in
    shares (field ``7762``, else the formatted ``87``). ``raw`` keeps the gateway's dict.
    """

    conid: int
    timestamp: datetime | None = None
    last: float | None = None
    last_size: float | None = None
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    volume: float | None = None
    day_open: float | None = None
    day_high: float | None = None
    day_low: float | None = None
    prior_close: float | None = None
    symbol: str | None = None
    availability: Availability = Availability("")
    last_is_prior_close: bool = False
    halted: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_preflight(self) -> bool:
        """True for IBKR's first answer for a conid, which carries no market fields yet."""
        return self.last is None and self.bid is None and self.ask is None and self.volume is None

    def quote(self) -> Quote:
        """The top of book, or DataUnavailable when bid or ask is missing."""
        if self.bid is None or self.ask is None or self.timestamp is None:
            raise DataUnavailable(
                f"no bid/ask for conid {self.conid} yet (availability: "
                f"{self.availability.describe()}); check market-data permissions or retry",
                endpoint="/iserver/marketdata/snapshot",
                conid=self.conid,
            )
        return Quote(self.conid, self.bid, self.ask, self.bid_size, self.ask_size, self.timestamp)

    def tick(self) -> Tick:
        """The last trade, or DataUnavailable when there is no last price."""
        if self.last is None or self.timestamp is None:
            raise DataUnavailable(
                f"no last price for conid {self.conid} yet (availability: "
                f"{self.availability.describe()}); check market-data permissions or retry",
                endpoint="/iserver/marketdata/snapshot",
                conid=self.conid,
            )
        return Tick(self.conid, self.last, self.last_size, self.timestamp)
