"""The gateway's formatted numbers as floats. Pure: no I/O.

Snapshot values arrive as strings with IBKR's formatting: a last price may carry a one-letter
prefix (``"C173.96"``: no trade today, this is the prior close; ``"H173.96"``: halted), sizes
carry thousands separators (``"1,300"``) and the formatted volume field ``87`` carries a
magnitude suffix (``"25.5M"``). Each parser also accepts a plain JSON number.

Every parser raises :class:`~backtrader_ibkr_cp.errors.DataIntegrityError` naming the field and
the text it could not read; NaN and infinities are rejected.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from ..errors import DataIntegrityError

__all__ = ["PRICE_PREFIXES", "parse_conid", "parse_number", "parse_price", "parse_volume"]

#: Last-price prefixes: ``C`` = prior close (no trade yet today), ``H`` = trading halted.
PRICE_PREFIXES = frozenset({"C", "H"})

# An optional sign, digits (either plain, or grouped by three with commas), an optional
# fraction and an optional exponent. "1,30" (not a group of three) is rejected: it could be a
# decimal comma, and guessing would be worse than failing.
_NUMBER = re.compile(
    r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][+-]?\d+)?"
    r"|[+-]?\.\d+(?:[eE][+-]?\d+)?"
)

_CONID = re.compile(r"[0-9]{1,18}")

#: Magnitude suffixes of the formatted volume field ``87``.
_SUFFIXES = {"K": Decimal(1_000), "M": Decimal(1_000_000), "B": Decimal(1_000_000_000)}


def _fail(field: str, text: object, expected: str) -> DataIntegrityError:
    return DataIntegrityError(
        f"cannot read {field} {text!r} from the gateway: expected {expected}; the response is "
        "malformed, retry the request and report it if it persists",
        field=field,
        text=repr(text)[:200],
    )


def _decimal(digits: str, field: str, text: str, expected: str) -> Decimal:
    """``digits`` (``text`` without prefix or suffix) as a Decimal; errors quote ``text``."""
    cleaned = digits.strip()
    if not _NUMBER.fullmatch(cleaned):
        raise _fail(field, text, expected)
    try:
        return Decimal(cleaned.replace(",", ""))
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only valid numbers
        raise _fail(field, text, expected) from exc


def _finite(value: float, field: str, text: object, expected: str) -> float:
    if not math.isfinite(value):
        raise _fail(field, text, expected)
    return value


def _from_json_number(value: object, field: str, expected: str) -> float | None:
    """The float for a JSON number (bool is not a number), None for a string, else an error."""
    if isinstance(value, bool):
        raise _fail(field, value, expected)
    if isinstance(value, (int, float)):
        try:
            return _finite(float(value), field, value, expected)
        except OverflowError as exc:  # an int too large for a float
            raise _fail(field, value, expected) from exc
    if isinstance(value, str):
        return None
    raise _fail(field, value, expected)


def parse_number(text: object, *, field: str = "number") -> float:
    """``"1,300"`` -> ``1300.0``; ``"168.42"`` -> ``168.42``; a JSON number passes through.

    Thousands separators must group by three. Raises DataIntegrityError on anything else
    (empty text, letters, NaN, infinity, booleans).
    """
    expected = "a number such as '1,300' or '168.42'"
    number = _from_json_number(text, field, expected)
    if number is not None:
        return number
    assert isinstance(text, str)
    return _finite(float(_decimal(text, field, text, expected)), field, text, expected)


def parse_price(text: object, *, field: str = "price") -> tuple[float, str]:
    """``"C173.96"`` -> ``(173.96, "C")``; ``"173.96"`` -> ``(173.96, "")``.

    The second item is IBKR's prefix: ``""`` (a trade price), ``"C"`` (the prior close; no
    trade yet today) or ``"H"`` (trading halted). A JSON number has no prefix.
    """
    expected = "a price such as '173.96', 'C173.96' (prior close) or 'H173.96' (halted)"
    number = _from_json_number(text, field, expected)
    if number is not None:
        return number, ""
    assert isinstance(text, str)
    cleaned = text.strip()
    prefix = cleaned[:1] if cleaned[:1] in PRICE_PREFIXES else ""
    value = _decimal(cleaned[len(prefix) :], field, text, expected)
    return _finite(float(value), field, text, expected), prefix


def parse_volume(text: object, *, field: str = "volume") -> float:
    """``"25.5M"`` -> ``25_500_000.0``; ``"830K"``, ``"1.2B"``, ``"1,234"`` likewise.

    Suffixes ``K``, ``M``, ``B`` (case-insensitive) scale by 10^3, 10^6, 10^9, computed in
    decimal so ``"25.5M"`` is exactly 25500000. The result is in shares and never negative.
    """
    expected = "a volume such as '1,234', '830K', '25.5M' or '1.2B'"
    number = _from_json_number(text, field, expected)
    if number is None:
        assert isinstance(text, str)
        cleaned = text.strip()
        scale = _SUFFIXES.get(cleaned[-1:].upper(), Decimal(1))
        digits = cleaned[:-1] if scale != 1 else cleaned
        number = _finite(
            float(_decimal(digits, field, text, expected) * scale), field, text, expected
        )
    if number < 0:
        raise _fail(field, text, "a volume that is not negative")
    return number


def parse_conid(value: object, *, field: str = "conid") -> int:
    """A conid as IBKR sends it (int in snapshots, digit string in secdef search) -> int.

    Raises DataIntegrityError unless it is a positive integer (booleans are not integers).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and _CONID.fullmatch(value.strip()) and int(value) > 0:
        return int(value)
    raise _fail(field, value, "a positive integer contract id such as 265598")
