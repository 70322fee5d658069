"""The simulated contract universe: US stocks, two ETFs, foreign listings and an ambiguous symbol.

Conids marked "IBKR" are IBKR's real contract ids (reference/ibkr-cp-api.md and the samples);
all others are SYNTHETIC: plausible numbers chosen for the simulator, not verified against IBKR.
Prices are in the listing's currency.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["US_EXCHANGES", "InstrumentBook", "SimInstrument", "default_instruments"]

#: Exchanges whose listings count as US listings (``isUS`` in /trsrv/stocks).
US_EXCHANGES = frozenset({"NYSE", "NASDAQ", "ARCA", "AMEX", "BATS", "IEX"})

#: Market-data availability codes the simulator accepts (first letter: R real time,
#: D delayed, Z frozen, Y frozen delayed, N not subscribed).
_AVAILABILITY_FIRST = frozenset("RDZYN")


@dataclass(frozen=True)
class SimInstrument:
    """One listing: ``conid`` (IBKR contract id), ``symbol``, ``name`` (company name),
    ``exchange`` (primary listing exchange), ``currency``, ``sec_type`` ("STK"; ETFs are STK
    at IBKR too), ``base_price`` (typical price level, listing currency), ``us`` (US listing).
    """

    conid: int
    symbol: str
    name: str
    exchange: str
    currency: str
    sec_type: str
    base_price: float
    us: bool


def _stk(
    symbol: str, conid: int, exchange: str, name: str, price: float, currency: str = "USD"
) -> SimInstrument:
    us = exchange in US_EXCHANGES and currency == "USD"
    return SimInstrument(conid, symbol, name, exchange, currency, "STK", price, us)


def default_instruments() -> tuple[SimInstrument, ...]:
    """The built-in universe, US primary listings first."""
    return (
        _stk("AAPL", 265598, "NASDAQ", "APPLE INC", 185.0),  # IBKR
        _stk("IBM", 8314, "NYSE", "INTL BUSINESS MACHINES CORP", 165.0),  # IBKR
        _stk("MSFT", 272093, "NASDAQ", "MICROSOFT CORP", 410.0),  # IBKR
        _stk("AMZN", 3691937, "NASDAQ", "AMAZON.COM INC", 175.0),  # IBKR
        _stk("GOOGL", 208813719, "NASDAQ", "ALPHABET INC-CL A", 150.0),  # IBKR
        _stk("META", 107113386, "NASDAQ", "META PLATFORMS INC-CLASS A", 480.0),  # IBKR
        _stk("TSLA", 76792991, "NASDAQ", "TESLA INC", 210.0),  # IBKR
        _stk("NVDA", 4815747, "NASDAQ", "NVIDIA CORP", 120.0),  # IBKR
        _stk("SPY", 756733, "ARCA", "SPDR S&P 500 ETF TRUST", 510.0),  # IBKR, ETF
        _stk("QQQ", 320227571, "NASDAQ", "INVESCO QQQ TRUST SERIES 1", 440.0),  # IBKR, ETF
        _stk("JPM", 1520593, "NYSE", "JPMORGAN CHASE & CO", 195.0),  # SYNTHETIC
        _stk("V", 49462172, "NYSE", "VISA INC-CLASS A SHARES", 275.0),  # SYNTHETIC
        _stk("JNJ", 8719, "NYSE", "JOHNSON & JOHNSON", 155.0),  # SYNTHETIC
        _stk("WMT", 13824, "NYSE", "WALMART INC", 68.0),  # SYNTHETIC
        _stk("PG", 8733, "NYSE", "PROCTER & GAMBLE CO/THE", 162.0),  # SYNTHETIC
        _stk("XOM", 13977, "NYSE", "EXXON MOBIL CORP", 112.0),  # SYNTHETIC
        _stk("KO", 8894, "NYSE", "COCA-COLA CO/THE", 61.0),  # SYNTHETIC
        _stk("DIS", 6459, "NYSE", "WALT DISNEY CO/THE", 105.0),  # SYNTHETIC
        _stk("NFLX", 15124833, "NASDAQ", "NETFLIX INC", 620.0),  # SYNTHETIC
        _stk("INTC", 270639, "NASDAQ", "INTEL CORP", 32.0),  # SYNTHETIC
        _stk("CSCO", 268084, "NASDAQ", "CISCO SYSTEMS INC", 49.0),  # SYNTHETIC
        _stk("AMD", 4391, "NASDAQ", "ADVANCED MICRO DEVICES", 160.0),  # SYNTHETIC
        _stk("BAC", 10098, "NYSE", "BANK OF AMERICA CORP", 37.0),  # SYNTHETIC
        # Deliberately ambiguous symbol: two US listings on different exchanges (SYNTHETIC).
        _stk("DUAL", 900000101, "NYSE", "DUAL LISTING HOLDINGS CORP", 42.0),
        _stk("DUAL", 900000102, "NASDAQ", "DUAL LISTING TECHNOLOGIES INC", 18.0),
        # Foreign listings returned by secdef search next to the US one.
        _stk("AAPL", 38708077, "MEXI", "APPLE INC", 3150.0, "MXN"),  # IBKR
        _stk("AAPL", 273982664, "EBS", "APPLE INC", 162.0, "CHF"),  # IBKR
        _stk("IBM", 1411277, "IBIS", "INTL BUSINESS MACHINES CORP", 152.0, "EUR"),  # IBKR
        _stk("IBM", 41645598, "LSE", "INTL BUSINESS MACHINES CORP", 165.0),  # IBKR (USD, not US)
    )


class InstrumentBook:
    """The instruments a simulator serves, plus per-conid runtime state.

    Thread-safe: the server threads read it while the test thread may add instruments or
    change a conid's market-data availability (``"RpB"`` by default) or halted flag.
    """

    def __init__(self, instruments: tuple[SimInstrument, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._by_conid: dict[int, SimInstrument] = {}
        self._availability: dict[int, str] = {}
        self._halted: set[int] = set()
        self.view: Mapping[int, SimInstrument] = MappingProxyType(self._by_conid)
        for instrument in instruments:
            self.add(instrument)

    def add(self, instrument: SimInstrument) -> None:
        """Register ``instrument``; ValueError when its conid is taken or values are bad."""
        if instrument.conid <= 0:
            raise ValueError(f"conid must be a positive integer, got {instrument.conid}")
        if instrument.base_price <= 0:
            raise ValueError(f"base_price must be > 0, got {instrument.base_price}")
        if not instrument.symbol or instrument.symbol != instrument.symbol.strip().upper():
            raise ValueError(f"symbol must be upper-case without spaces, got {instrument.symbol!r}")
        with self._lock:
            if instrument.conid in self._by_conid:
                taken = self._by_conid[instrument.conid]
                raise ValueError(
                    f"conid {instrument.conid} is already {taken.symbol} on {taken.exchange}; "
                    "pick another conid"
                )
            self._by_conid[instrument.conid] = instrument

    def get(self, conid: int) -> SimInstrument | None:
        """The instrument with ``conid``, or None."""
        return self._by_conid.get(conid)

    def __iter__(self) -> Iterator[SimInstrument]:
        with self._lock:
            return iter(list(self._by_conid.values()))

    def listings(self, symbol: str) -> list[SimInstrument]:
        """All listings of ``symbol`` (case-insensitive), US listings first, in table order."""
        wanted = symbol.strip().upper()
        found = [inst for inst in self if inst.symbol == wanted]
        return sorted(found, key=lambda inst: not inst.us)

    def by_name(self, text: str) -> list[SimInstrument]:
        """Listings whose company name contains ``text`` (case-insensitive), US first."""
        wanted = text.strip().upper()
        found = [inst for inst in self if wanted and wanted in inst.name.upper()]
        return sorted(found, key=lambda inst: not inst.us)

    def primary(self, symbol: str) -> SimInstrument:
        """The first US listing of ``symbol``; KeyError naming the known symbols otherwise."""
        for inst in self.listings(symbol):
            if inst.us:
                return inst
        known = ", ".join(sorted({inst.symbol for inst in self if inst.us}))
        raise KeyError(f"no US listing of {symbol!r} in the simulator; known symbols: {known}")

    def resolve(self, key: str | int) -> SimInstrument:
        """An instrument from a conid (int or digit string) or a symbol (primary US listing)."""
        if isinstance(key, int) or (isinstance(key, str) and key.strip().isdigit()):
            conid = int(key)
            inst = self.get(conid)
            if inst is None:
                raise KeyError(f"conid {conid} is not a simulator instrument")
            return inst
        return self.primary(key)

    def availability(self, conid: int) -> str:
        """Market-data availability code of ``conid`` (``"RpB"`` unless changed)."""
        with self._lock:
            return self._availability.get(conid, "RpB")

    def set_availability(self, conid: int, code: str) -> None:
        """Set ``conid``'s availability code (``"RpB"``, ``"DpB"``, ``"N"``, ``"ZB"``, ...)."""
        if not code or code[0] not in _AVAILABILITY_FIRST or len(code) > 3:
            raise ValueError(
                f"availability code {code!r} is not valid; use up to 3 characters starting with "
                "R (real time), D (delayed), Z (frozen), Y (frozen delayed) or N (not subscribed)"
            )
        self._require(conid)
        with self._lock:
            self._availability[conid] = code

    def halted(self, conid: int) -> bool:
        """True when ``conid`` is marked halted (snapshot last price gets the ``H`` prefix)."""
        with self._lock:
            return conid in self._halted

    def set_halted(self, conid: int, halted: bool) -> None:
        """Mark ``conid`` halted or trading again."""
        self._require(conid)
        with self._lock:
            if halted:
                self._halted.add(conid)
            else:
                self._halted.discard(conid)

    def _require(self, conid: int) -> None:
        if conid not in self._by_conid:
            raise KeyError(f"conid {conid} is not a simulator instrument")
