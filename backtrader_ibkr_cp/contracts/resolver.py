"""Symbol, spec or conid -> :class:`Contract`, with a memory and on-disk cache.

Threading model: a :class:`ContractResolver` may be shared by every thread of a process.
Lookups of one ``(symbol, sec_type)`` are serialised so concurrent resolutions of the same
symbol make one search; different symbols resolve in parallel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import AmbiguousContract, ConfigError, ContractNotFound
from ..models.contract import Contract
from .cache import ContractCache
from .spec import GRAMMAR, ContractSpec

__all__ = [
    "AmbiguousContract",
    "Chooser",
    "ContractNotFound",
    "ContractResolver",
    "ContractSpec",
    "Lookup",
    "Search",
]

log = logging.getLogger(__name__)

SEARCH_ENDPOINT = "/iserver/secdef/search"
LOOKUP_ENDPOINT = "/trsrv/secdef"

#: ``search(symbol, sec_type) -> [Contract, ...]``: ``ApiClient.secdef_search``.
Search = Callable[[str, str], Sequence[Contract]]
#: ``lookup(conid) -> Contract | None``: the gateway's contract for a conid, None when it has
#: none (``ApiClient.contract_by_conid``).
Lookup = Callable[[int], Contract | None]
#: ``choose(spec, candidates) -> Contract | None``: picks among ambiguous listings (a hook).
Chooser = Callable[[ContractSpec, Sequence[Contract]], Contract | None]


def _listing(contract: Contract) -> str:
    name = f", {contract.description}" if contract.description else ""
    return f"{contract.spec()} (conid {contract.conid}{name})"


class ContractResolver:
    """Resolves ``"AAPL"``, ``"IBM-STK-NYSE"``, a conid or a :class:`Contract`.

    Args:
        search: ``search(symbol, sec_type)`` returning the gateway's listings.
        cache_dir: folder for ``contracts.json`` (created on first write); None keeps the
            cache in memory only.
        ttl: seconds a search result stays valid (default one day; 0 disables caching).
        clock: seconds since the epoch (injectable for tests).
        choose: ``choose(spec, candidates)`` picking one of several matching listings, or
            None to let :class:`AmbiguousContract` be raised.
        lookup: ``lookup(conid)`` returning the gateway's contract for a conid or None (see
            :data:`Lookup`); None takes a conid on trust (a minimal ``Contract``, no request).
    """

    def __init__(
        self,
        search: Search,
        *,
        cache_dir: str | Path | None = None,
        ttl: float = 86400.0,
        clock: Callable[[], float] = time.time,
        choose: Chooser | None = None,
        lookup: Lookup | None = None,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl >= 0:
            raise ConfigError(f"ttl {ttl!r} is invalid; use seconds >= 0 (86400 = one day)")
        self._search = search
        self._lookup = lookup
        self._choose = choose
        self._cache = ContractCache(
            Path(cache_dir) / "contracts.json" if cache_dir is not None else None,
            ttl=float(ttl),
            clock=clock,
        )
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}

    def resolve(self, value: str | int | Contract | ContractSpec) -> Contract:
        """The one contract ``value`` names.

        A Contract passes through. A conid gives the cached contract, else the one ``lookup``
        finds (cached; ContractNotFound when the gateway does not know the conid); without
        ``lookup``, a minimal ``Contract(conid, symbol=str(conid))``. A spec is searched (cached),
        filtered by security type, exchange (``SMART`` = any) and currency (none given: USD
        listings preferred). Raises ConfigError for a malformed spec, ContractNotFound when
        nothing matches, AmbiguousContract when several do and ``choose`` picks none.
        """
        if isinstance(value, Contract):
            return value
        spec = ContractSpec.parse(value)
        if spec.conid is not None:
            return self._by_conid(spec.conid)
        listings = self._listings(spec.symbol, spec.sec_type)
        matching = [c for c in listings if spec.matches(c)]
        if not spec.currency:
            us = [c for c in matching if c.currency.upper() == "USD"]
            matching = us or matching
        if len(matching) == 1:
            return matching[0]
        if not matching:
            raise self._not_found(spec, listings)
        if self._choose is not None:
            chosen = self._choose(spec, tuple(matching))
            if chosen is not None:
                if not isinstance(chosen, Contract):
                    raise ConfigError(f"choose() returned {chosen!r}, not a Contract or None")
                return chosen
        lines = "\n  ".join(_listing(c) for c in matching)
        raise AmbiguousContract(
            f"{spec} matches {len(matching)} listings:\n  {lines}\npass a fuller spec "
            f"({GRAMMAR.split(' (')[0]}) or the conid",
            spec=str(spec),
            candidates=matching,
        )

    def supports(self, value: str | int | Contract | ContractSpec) -> bool:
        """True when ``value`` names at least one listing (ambiguous specs count; a conid
        counts when the gateway knows it, or always without ``lookup``). False for an unknown
        symbol or conid or a malformed spec; gateway errors propagate."""
        try:
            self.resolve(value)
        except AmbiguousContract:
            return True
        except (ContractNotFound, ConfigError):
            return False
        return True

    def clear(self) -> None:
        """Forget every cached search (memory and disk)."""
        self._cache.clear()

    def _by_conid(self, conid: int) -> Contract:
        cached = self._cache.by_conid(conid)
        if cached is not None:
            return cached
        if self._lookup is None:
            return Contract(conid, str(conid))
        key = f"conid:{conid}"
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            cached = self._cache.by_conid(conid)
            if cached is not None:
                return cached
            found = self._lookup(conid)
            if found is None:
                raise ContractNotFound(
                    f"conid {conid} is not a contract the gateway knows ({LOOKUP_ENDPOINT} has "
                    "no such conid); check the number, or find the conid by symbol with "
                    "`ibkr-cp search SYMBOL`",
                    spec=str(conid),
                    endpoint=LOOKUP_ENDPOINT,
                )
            self._cache.put(key, [found])
            return found

    def _listings(self, symbol: str, sec_type: str) -> list[Contract]:
        key = f"{symbol}|{sec_type}"
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            found = list(self._search(symbol, sec_type))
            log.debug("secdef search %s %s: %d listings", symbol, sec_type, len(found))
            if found:  # an unknown symbol is asked again next time
                self._cache.put(key, found)
            return found

    @staticmethod
    def _not_found(spec: ContractSpec, listings: Sequence[Contract]) -> ContractNotFound:
        if listings:
            found = "; ".join(_listing(c) for c in listings)
            message = (
                f"no {spec.sec_type} contract for {str(spec)!r} among the {len(listings)} "
                f"listings of {spec.symbol}: {found}; use one of these specs or its conid"
            )
        else:
            message = (
                f"no {spec.sec_type} contract for {spec.symbol!r} at the gateway; check the "
                f"symbol or search with `ibkr-cp search {spec.symbol}`"
            )
        return ContractNotFound(message, spec=str(spec), candidates=listings)
