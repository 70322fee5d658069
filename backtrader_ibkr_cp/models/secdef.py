"""Contract-lookup JSON into :class:`Contract` objects. Pure: no I/O.

``/iserver/secdef/search`` answers one entry per listing: ``conid`` is a *string*,
``description`` is the primary exchange, ``sections[0].secType`` the security type, and there
is no currency. ``/trsrv/stocks`` answers ``{SYMBOL: [{name, assetClass, contracts: [{conid,
exchange, isUS}]}]}``. Neither says the currency, so it comes from :data:`EXCHANGES`, a table
of the usual listing venues (IBKR exchange codes) with their trading currency and time zone.
A venue missing from the table gives currency ``""`` (unknown; ``isUS`` listings get USD).
``/trsrv/secdef?conids=...`` answers ``{"secdef": [{conid, ticker, assetClass,
listingExchange, currency, name, ...}]}`` (the currency is given), one entry per known conid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NamedTuple

from ..errors import ApiError, DataIntegrityError
from .contract import Contract
from .values import parse_conid

__all__ = [
    "EXCHANGES",
    "Venue",
    "parse_secdef_search",
    "parse_trsrv_secdef",
    "parse_trsrv_stocks",
    "venue",
]

SEARCH_ENDPOINT = "/iserver/secdef/search"
STOCKS_ENDPOINT = "/trsrv/stocks"
SECDEF_ENDPOINT = "/trsrv/secdef"


class Venue(NamedTuple):
    """A listing exchange's trading currency (ISO code) and IANA time zone."""

    currency: str
    time_zone: str


_DEFAULT_ZONE = "America/New_York"
_US = Venue("USD", _DEFAULT_ZONE)

#: IBKR exchange code -> Venue. US venues (IBKR codes) and the foreign venues IBKR returns for
#: US names (AAPL: MEXI, EBS, LSEETF, AEQLIT; IBM: IBIS, LSE).
EXCHANGES: Mapping[str, Venue] = {
    **dict.fromkeys(
        ("NASDAQ", "NYSE", "ARCA", "AMEX", "BATS", "IEX", "ISLAND", "PINK", "CBOE", "MEMX"),
        _US,
    ),
    **dict.fromkeys(("NYSENAT", "CHX", "LTSE", "PSE", "BYX", "EDGEA", "EDGX", "OTCBB"), _US),
    "MEXI": Venue("MXN", "America/Mexico_City"),
    "EBS": Venue("CHF", "Europe/Zurich"),
    "IBIS": Venue("EUR", "Europe/Berlin"),
    "FWB": Venue("EUR", "Europe/Berlin"),
    "SWB": Venue("EUR", "Europe/Berlin"),
    "GETTEX": Venue("EUR", "Europe/Berlin"),
    "SBF": Venue("EUR", "Europe/Paris"),
    "AEB": Venue("EUR", "Europe/Amsterdam"),
    "BVME": Venue("EUR", "Europe/Rome"),
    "LSE": Venue("GBP", "Europe/London"),
    "LSEETF": Venue("GBP", "Europe/London"),
    "AEQLIT": Venue("CAD", "America/Toronto"),
    "TSE": Venue("CAD", "America/Toronto"),
    "VENTURE": Venue("CAD", "America/Toronto"),
    "ASX": Venue("AUD", "Australia/Sydney"),
    "SEHK": Venue("HKD", "Asia/Hong_Kong"),
    "TSEJ": Venue("JPY", "Asia/Tokyo"),
}


def venue(exchange: str) -> Venue | None:
    """The Venue of an IBKR exchange code (case-insensitive), or None when not in the table."""
    return EXCHANGES.get(exchange.strip().upper())


def _malformed(endpoint: str, what: str) -> DataIntegrityError:
    return DataIntegrityError(
        f"{endpoint} answered {what}; retry the request and report it if it persists",
        endpoint=endpoint,
    )


def _in_band(body: Any, endpoint: str) -> None:
    if isinstance(body, Mapping) and body.get("error") not in (None, ""):
        message = str(body["error"])
        raise ApiError(
            f"{endpoint} failed: {message}; check the symbol and retry",
            endpoint=endpoint,
            status=200,
            gateway_message=message,
        )


def _conid(value: object, endpoint: str) -> int:
    try:
        return parse_conid(value)
    except DataIntegrityError as exc:
        raise _malformed(
            endpoint, f"a contract with conid {str(value)[:40]!r}, not a positive integer"
        ) from exc


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _contract(
    conid: int, symbol: str, sec_type: str, exchange: str, description: str, is_us: bool = False
) -> Contract:
    found = venue(exchange) if exchange else None
    if found is None and is_us:
        found = _US
    return Contract(
        contract_id=conid,
        symbol=symbol,
        sec_type=sec_type or "STK",
        exchange=exchange,
        currency=found.currency if found else "",
        description=description,
        time_zone=found.time_zone if found else _DEFAULT_ZONE,
    )


def parse_secdef_search(body: Any) -> list[Contract]:
    """One Contract per listing of a ``/iserver/secdef/search`` answer, in the gateway's order.

    ``[]`` (unknown symbol) gives ``[]``. Entries without a symbol (bond-issuer groups such as
    ``{"conid": "2147483647", "companyHeader": "Corporate Fixed Income", "issuers": [...]}``)
    are not tradable listings and are skipped. ``{"error": ...}`` -> ApiError; a non-list body
    or an unusable conid -> DataIntegrityError.
    """
    _in_band(body, SEARCH_ENDPOINT)
    if not isinstance(body, list):
        raise _malformed(SEARCH_ENDPOINT, f"a {type(body).__name__}, not a list of contracts")
    contracts: list[Contract] = []
    for entry in body:
        if not isinstance(entry, Mapping):
            raise _malformed(SEARCH_ENDPOINT, f"an entry that is a {type(entry).__name__}")
        symbol = _text(entry.get("symbol"))
        if not symbol:
            continue
        sections = entry.get("sections")
        first = sections[0] if isinstance(sections, list) and sections else None
        sec_type = _text(first.get("secType")) if isinstance(first, Mapping) else ""
        contracts.append(
            _contract(
                _conid(entry.get("conid"), SEARCH_ENDPOINT),
                symbol,
                sec_type,
                _text(entry.get("description")),
                _text(entry.get("companyName")) or _text(entry.get("companyHeader")),
            )
        )
    return contracts


def parse_trsrv_stocks(body: Any) -> dict[str, list[Contract]]:
    """``/trsrv/stocks`` -> ``{symbol: [Contract, ...]}``, one Contract per listed conid.

    ``sec_type`` is the product's ``assetClass`` and ``description`` its ``name``; a venue not
    in :data:`EXCHANGES` with ``isUS: true`` gets USD.
    """
    _in_band(body, STOCKS_ENDPOINT)
    if not isinstance(body, Mapping):
        raise _malformed(STOCKS_ENDPOINT, f"a {type(body).__name__}, not an object")
    result: dict[str, list[Contract]] = {}
    for symbol, products in body.items():
        if not isinstance(products, list):
            raise _malformed(STOCKS_ENDPOINT, f"{symbol!r} with a {type(products).__name__}")
        found: list[Contract] = []
        for product in products:
            listings = product.get("contracts") if isinstance(product, Mapping) else None
            if not isinstance(listings, list):
                raise _malformed(STOCKS_ENDPOINT, f"a product of {symbol!r} without contracts")
            assert isinstance(product, Mapping)
            for listing in listings:
                if not isinstance(listing, Mapping):
                    raise _malformed(STOCKS_ENDPOINT, f"a listing of {symbol!r} that is no object")
                found.append(
                    _contract(
                        _conid(listing.get("conid"), STOCKS_ENDPOINT),
                        str(symbol),
                        _text(product.get("assetClass")),
                        _text(listing.get("exchange")),
                        _text(product.get("name")),
                        is_us=listing.get("isUS") is True,
                    )
                )
        result[str(symbol)] = found
    return result


def parse_trsrv_secdef(body: Any) -> list[Contract]:
    """One Contract per entry of a ``/trsrv/secdef`` answer, in the gateway's order.

    ``symbol`` is the ``ticker``, ``sec_type`` the ``assetClass``, ``exchange`` the
    ``listingExchange``, ``currency`` as given (else from :data:`EXCHANGES`), ``description``
    the ``name``. A conid the gateway does not know is simply absent (``{"secdef": []}``).
    ``{"error": ...}`` -> ApiError; another shape or an unusable conid -> DataIntegrityError.
    """
    _in_band(body, SECDEF_ENDPOINT)
    entries = body.get("secdef") if isinstance(body, Mapping) else None
    if not isinstance(entries, list):
        raise _malformed(SECDEF_ENDPOINT, f"a {type(body).__name__} without a 'secdef' list")
    contracts: list[Contract] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise _malformed(SECDEF_ENDPOINT, f"an entry that is a {type(entry).__name__}")
        exchange = _text(entry.get("listingExchange"))
        contract = _contract(
            _conid(entry.get("conid"), SECDEF_ENDPOINT),
            _text(entry.get("ticker")),
            _text(entry.get("assetClass")),
            exchange,
            _text(entry.get("name")),
            is_us=entry.get("isUS") is True,
        )
        currency = _text(entry.get("currency")).upper()
        contracts.append(replace(contract, currency=currency) if currency else contract)
    return contracts
