"""``/iserver/marketdata/snapshot`` JSON into :class:`Snapshot` objects. Pure: no I/O.

The gateway answers a list with one dict per conid. The first answer for a conid (the
"pre-flight") carries only ``conid`` and ``conidEx``; later answers add one *string* per
requested field code, formatted as described in ``models.values``. A field that is absent, or
sent as an empty string, is "not available yet" and becomes None.

Field codes and meanings: IBKR Web API v1.0 documentation, "Market Data Fields" (see
``/work/shared/reference/ibkr-cp-api.md`` section 2.3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import DataIntegrityError
from .market import Availability, Snapshot
from .values import parse_conid, parse_number, parse_price, parse_volume

__all__ = ["DEFAULT_FIELDS", "FIELDS", "parse_snapshots"]

ENDPOINT = "/iserver/marketdata/snapshot"

#: Snapshot field code -> meaning. All values arrive as strings unless noted.
FIELDS: Mapping[str, str] = {
    "31": "last price (prefix C = prior close, H = halted)",
    "55": "symbol",
    "58": "text",
    "70": "day high",
    "71": "day low",
    "82": "change vs prior close",
    "83": "change percent",
    "84": "bid price",
    "85": "ask size",
    "86": "ask price",
    "87": "volume, formatted (K/M/B suffix)",
    "88": "bid size",
    "201": "right (P/C)",
    "6004": "exchange",
    "6008": "conid (int)",
    "6070": "security type",
    "6072": "months",
    "6073": "regular expiry",
    "6119": "market data delivery marker (server id)",
    "6457": "underlying conid (int)",
    "6508": "service params",
    "6509": "market data availability",
    "7051": "company name",
    "7057": "ask exchange",
    "7058": "last exchange",
    "7059": "last size",
    "7068": "bid exchange",
    "7087": "historical volatility percent (30 days)",
    "7088": "historical volatility close percent",
    "7219": "contract description",
    "7220": "contract description 2",
    "7221": "listing exchange",
    "7282": "average daily volume (90 days)",
    "7289": "market cap",
    "7290": "P/E",
    "7291": "EPS",
    "7293": "52-week high",
    "7294": "52-week low",
    "7295": "day open",
    "7296": "day close",
    "7635": "mark price",
    "7741": "prior close",
    "7762": "day volume, high precision (shares)",
    "7768": "has trading permissions (1/0)",
}

#: The fields the live poller asks for: last, symbol, day high/low, bid, ask size, ask, bid size,
#: last size, volume (high precision), volume (formatted, fallback), open, prior close,
#: availability.
DEFAULT_FIELDS: tuple[str, ...] = (
    "31",
    "55",
    "70",
    "71",
    "84",
    "85",
    "86",
    "88",
    "7059",
    "7762",
    "87",
    "7295",
    "7741",
    "6509",
)

_PRICES = {
    "84": "bid",
    "86": "ask",
    "70": "day_high",
    "71": "day_low",
    "7295": "day_open",
    "7741": "prior_close",
}
_SIZES = {"85": "ask_size", "88": "bid_size", "7059": "last_size"}


def _error(conid: object, what: str, value: object) -> DataIntegrityError:
    return DataIntegrityError(
        f"snapshot for conid {conid}: {what} {repr(value)[:100]} is malformed; retry the "
        "request and report it if it persists",
        endpoint=ENDPOINT,
        conid=conid,
        field=what,
    )


def _conid(entry: Mapping[str, Any]) -> int:
    value = entry.get("conid")
    try:
        return parse_conid(value)
    except DataIntegrityError as exc:
        raise _error(value, "conid", value) from exc


def _updated(conid: int, value: object) -> datetime | None:
    if value is None:
        return None
    try:
        millis = parse_number(value, field="_updated")
        return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=millis)
    except (DataIntegrityError, OverflowError) as exc:
        raise _error(conid, "field _updated (epoch ms)", value) from exc


def _field(conid: int, entry: Mapping[str, Any], code: str, parse: Callable[[object], Any]) -> Any:
    value = entry.get(code)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return parse(value)
    except DataIntegrityError as exc:
        raise _error(conid, f"field {code} ({FIELDS.get(code, 'unknown')})", value) from exc


def _price(value: object) -> float:
    return parse_price(value)[0]


def _parse_entry(entry: object) -> Snapshot:
    if not isinstance(entry, Mapping):
        raise _error("?", "entry", entry)
    conid = _conid(entry)
    values: dict[str, Any] = {"conid": conid, "timestamp": _updated(conid, entry.get("_updated"))}
    last = _field(conid, entry, "31", parse_price)
    if last is not None:
        values["last"] = last[0]
        values["last_is_prior_close"] = last[1] == "C"
        values["halted"] = last[1] == "H"
    for code, name in _PRICES.items():
        values[name] = _field(conid, entry, code, _price)
    for code, name in _SIZES.items():
        values[name] = _field(conid, entry, code, parse_number)
    volume = _field(conid, entry, "7762", parse_number)
    if volume is None:
        volume = _field(conid, entry, "87", parse_volume)
    elif volume < 0:
        raise _error(conid, "field 7762 (day volume)", entry.get("7762"))
    values["volume"] = volume
    symbol = entry.get("55")
    if symbol is not None and not isinstance(symbol, str):
        raise _error(conid, "field 55 (symbol)", symbol)
    values["symbol"] = symbol or None
    availability = entry.get("6509", "")
    if not isinstance(availability, str):
        raise _error(conid, "field 6509 (availability)", availability)
    values["availability"] = Availability(availability.strip())
    return Snapshot(**values, raw=dict(entry))


def parse_snapshots(body: Any) -> list[Snapshot]:
    """One :class:`Snapshot` per entry of the gateway's list, in the gateway's order.

    Pre-flight entries (only ``conid``/``conidEx``) give a Snapshot with every field None
    (``is_preflight`` is True). ``_updated`` (epoch ms, the gateway's clock) becomes a UTC
    ``timestamp``. Volume is field ``7762`` (exact shares) when present, else the formatted
    ``87``. Sizes (``85``, ``88``, ``7059``) are returned as the gateway formats them.

    Raises DataIntegrityError naming the conid and field when the body is not a list, an entry
    has no usable conid, or a value cannot be read.
    """
    if not isinstance(body, list):
        raise DataIntegrityError(
            f"snapshot response is a {type(body).__name__}, not a list of entries; is this a "
            "Client Portal Gateway? retry, and report it if it persists",
            endpoint=ENDPOINT,
        )
    return [_parse_entry(entry) for entry in body]
