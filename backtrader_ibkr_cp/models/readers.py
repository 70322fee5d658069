"""Readers for one field of the order, execution, account and portfolio JSON. Pure: no I/O.

IBKR's order endpoints disagree on types field by field (reference/orders/ibkr-cp-orders.md
§1): ids are digit strings in one answer and ints in the next, prices are strings (``"457.00"``,
``""`` for a market order) or numbers, sizes are ``"1.0"`` or ``1.0``, times are epoch
milliseconds (``*_r``), epoch seconds (ledger) or UTC ``YYMMDDhhmmss`` text. Each reader takes
any of a field's known forms and returns one Python type, so a model field has one type
whatever endpoint filled it. A value none of the forms match raises
:class:`~backtrader_ibkr_cp.errors.DataIntegrityError` naming the endpoint and the field (never
an account id: values are quoted only for fields that cannot hold one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..errors import DataIntegrityError
from ..wire import ACCOUNT_ID
from .values import parse_number

__all__ = [
    "malformed",
    "read_bool",
    "read_epoch_ms",
    "read_epoch_s",
    "read_float",
    "read_id",
    "read_object",
    "read_short_time",
    "read_side",
    "read_text",
]

#: IBKR's side letters (executions, order status) and the words they stand for.
SIDES = {"B": "BUY", "S": "SELL", "BUY": "BUY", "SELL": "SELL"}


def _quoted(value: object) -> str:
    """``value`` for a message: at most 80 characters, account ids replaced."""
    return ACCOUNT_ID.sub("<account>", repr(value)[:80])


def malformed(endpoint: str, what: str) -> DataIntegrityError:
    """The error for an answer of ``endpoint`` that is not what IBKR documents."""
    return DataIntegrityError(
        f"{endpoint} answered {what}; is this a Client Portal Gateway? Retry, and report it "
        "if it persists",
        endpoint=endpoint,
    )


def read_object(body: Any, endpoint: str, what: str = "the answer") -> Mapping[str, Any]:
    """``body`` when it is a JSON object, else DataIntegrityError."""
    if not isinstance(body, Mapping):
        raise malformed(endpoint, f"{what} as a {type(body).__name__}, expected an object")
    return body


def read_id(value: object, endpoint: str, field: str) -> int:
    """An IBKR id sent as an int (``1210386759``) or a digit string (``"1210386759"``) as an
    int. Negative ids are kept (``conid: -1`` marks an order cancelled at once)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text.startswith("-") else text
        if digits.isdigit() and digits.isascii():
            return int(text)
    raise malformed(endpoint, f"{field} {_quoted(value)}, expected a whole-number id")


def read_float(value: object, endpoint: str, field: str) -> float | None:
    """A number sent as a JSON number or text (``"457.00"``, ``"1,300"``) as a float; None for
    null, ``""`` and IBKR's ``"NA"``."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().upper() in ("", "NA", "N/A"):
        return None
    try:
        number = parse_number(value, field=field)
    except DataIntegrityError:
        raise malformed(endpoint, f"{field} {_quoted(value)}, expected a number") from None
    return number


def read_text(value: object, endpoint: str, field: str) -> str | None:
    """A string (stripped; None for null and ``""``); numbers become their text."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise malformed(endpoint, f"{field} {_quoted(value)}, expected text")
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise malformed(endpoint, f"{field} as a {type(value).__name__}, expected text")
    text = value.strip()
    return text or None


def read_bool(value: object, endpoint: str, field: str, default: bool = False) -> bool:
    """A flag sent as a JSON boolean, ``0``/``1`` or ``"0"``/``"1"``/``"true"``/``"false"``."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return value.strip().lower() in ("1", "true")
    raise malformed(endpoint, f"{field} {_quoted(value)}, expected true or false")


def read_side(value: object, endpoint: str, field: str = "side") -> str:
    """``"B"``/``"BUY"`` -> ``"BUY"``, ``"S"``/``"SELL"`` -> ``"SELL"``; any other word
    (``"X"``, ``"ASSN"``) is kept as sent, upper-cased."""
    text = read_text(value, endpoint, field)
    if text is None:
        raise malformed(endpoint, f"no {field}")
    return SIDES.get(text.upper(), text.upper())


def _utc(epoch_seconds: float, endpoint: str, field: str) -> datetime:
    try:
        return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise malformed(endpoint, f"{field} {epoch_seconds!r}, out of range") from None


def read_epoch_ms(value: object, endpoint: str, field: str) -> datetime | None:
    """Epoch milliseconds (``1702317649000``) as an aware UTC datetime; None for null/0."""
    number = read_float(value, endpoint, field)
    if number is None or number == 0:
        return None
    if not math.isfinite(number) or number < 0:
        raise malformed(endpoint, f"{field} {number!r}, expected epoch milliseconds")
    return _utc(number / 1000.0, endpoint, field)


def read_epoch_s(value: object, endpoint: str, field: str) -> datetime | None:
    """Epoch seconds (the ledger's ``timestamp``) as an aware UTC datetime; None for null/0."""
    number = read_float(value, endpoint, field)
    if number is None or number == 0:
        return None
    if not math.isfinite(number) or number < 0:
        raise malformed(endpoint, f"{field} {number!r}, expected epoch seconds")
    return _utc(number, endpoint, field)


def read_short_time(value: object, endpoint: str, field: str) -> datetime | None:
    """IBKR's UTC ``YYMMDDhhmmss`` (``"231211180049"``) or ``YYYYMMDD-hh:mm:ss`` as an aware
    UTC datetime; None for null or ``""``."""
    text = read_text(value, endpoint, field)
    if text is None:
        return None
    for pattern in ("%y%m%d%H%M%S", "%Y%m%d-%H:%M:%S"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    raise malformed(endpoint, f"{field} {_quoted(text)}, expected UTC YYMMDDhhmmss")
