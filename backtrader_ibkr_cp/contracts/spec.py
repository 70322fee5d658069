"""Contract specs: ``SYMBOL[-SECTYPE[-EXCHANGE[-CURRENCY]]]`` or a conid. Pure: no I/O.

Examples: ``"AAPL"``, ``"AAPL-STK"``, ``"AAPL-STK-SMART-USD"``, ``"IBM-STK-NYSE"``,
``"BRK B"`` (IBKR writes share classes with a space), ``265598`` or ``"265598"`` (a conid).
Parts are case-insensitive; an empty part takes its default (``"AAPL-STK--USD"``). The
exchange ``SMART`` (the default) means "any listing"; any other exchange must be the
listing's primary exchange. No currency means "prefer US (USD) listings".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError
from ..models.contract import Contract

__all__ = ["GRAMMAR", "SEC_TYPES", "ContractSpec"]

GRAMMAR = (
    "SYMBOL[-SECTYPE[-EXCHANGE[-CURRENCY]]] (e.g. AAPL, AAPL-STK-SMART-USD, IBM-STK-NYSE) or a "
    "conid (e.g. 265598)"
)

#: IBKR security types a spec may name.
SEC_TYPES = frozenset(
    {"STK", "IND", "BOND", "FUT", "OPT", "FOP", "WAR", "IOPT", "CFD", "CASH", "FUND", "CMDTY",
     "CRYPTO", "BILL"}
)  # fmt: skip

_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9. /&]{0,19}")
_EXCHANGE = re.compile(r"[A-Z][A-Z0-9.]{0,15}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_CONID = re.compile(r"[0-9]{1,12}")
_MAX_CONID = 2**31 - 1


def _invalid(text: object, why: str) -> ConfigError:
    return ConfigError(f"contract {text!r} is not valid: {why}; use {GRAMMAR}", spec=repr(text))


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """What the user asked for. ``conid`` is set (and ``symbol`` empty) for a conid spec.

    ``exchange`` ``"SMART"`` matches any listing; ``currency`` ``""`` prefers USD listings.
    """

    symbol: str = ""
    sec_type: str = "STK"
    exchange: str = "SMART"
    currency: str = ""
    conid: int | None = None

    @classmethod
    def parse(cls, value: str | int | ContractSpec) -> ContractSpec:
        """Parse a spec string or conid; ConfigError showing the grammar when it is bad."""
        if isinstance(value, ContractSpec):
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise _invalid(value, f"a {type(value).__name__} is neither a spec nor a conid")
        if isinstance(value, int):
            return cls._conid(value, value)
        text = value.strip()
        if _CONID.fullmatch(text):
            return cls._conid(int(text), value)
        parts = [part.strip().upper() for part in text.split("-")]
        if len(parts) > 4:
            raise _invalid(value, f"it has {len(parts)} parts, at most 4 are allowed")
        symbol, sec_type, exchange, currency = parts + [""] * (4 - len(parts))
        if not _SYMBOL.fullmatch(symbol):
            raise _invalid(value, f"symbol {symbol!r} is not a ticker symbol")
        sec_type = sec_type or "STK"
        if sec_type not in SEC_TYPES:
            raise _invalid(
                value, f"security type {sec_type!r} is unknown (use {', '.join(sorted(SEC_TYPES))})"
            )
        exchange = exchange or "SMART"
        if not _EXCHANGE.fullmatch(exchange):
            raise _invalid(value, f"exchange {exchange!r} is not an exchange code such as NYSE")
        if currency and not _CURRENCY.fullmatch(currency):
            raise _invalid(value, f"currency {currency!r} is not a 3-letter code such as USD")
        return cls(symbol, sec_type, exchange, currency)

    @classmethod
    def _conid(cls, conid: int, original: object) -> ContractSpec:
        if not 0 < conid <= _MAX_CONID:
            raise _invalid(original, f"conid {conid} is out of range (1 to {_MAX_CONID})")
        return cls(conid=conid)

    @property
    def any_exchange(self) -> bool:
        return self.exchange == "SMART"

    def matches(self, contract: Contract) -> bool:
        """True when ``contract`` fits the security type, exchange and currency asked for."""
        if self.conid is not None:
            return contract.conid == self.conid
        return (
            contract.symbol.upper() == self.symbol
            and contract.sec_type.upper() == self.sec_type
            and (self.any_exchange or contract.exchange.upper() == self.exchange)
            and (not self.currency or contract.currency.upper() == self.currency)
        )

    def __str__(self) -> str:
        if self.conid is not None:
            return str(self.conid)
        parts = [self.symbol, self.sec_type, self.exchange, self.currency]
        return "-".join(part for part in parts if part)
