"""``/iserver/marketdata/history`` JSON into bars. Pure: no I/O.

Wire facts (``/work/shared/reference/ibkr-cp-api.md`` section 2.1, IBKR's OpenAPI spec):

- ``data[].t`` is epoch **milliseconds**, UTC, the bar's *start*.
- ``o``, ``h``, ``l``, ``c`` are real prices: they are NOT scaled by ``priceFactor`` (which only
  applies to the ``high``/``low`` summary strings).
- ``v`` is volume in **lots of 100** for US stocks and ETFs: IBKR documents that "volume factor
  will always be 100 (reported volume = actual volume/100)", and a recorded AAPL month of
  ``v = 6942998.04`` is ~694 million shares. Snapshot field ``7762`` is in shares, so to make
  history and live bars agree :func:`parse_history` multiplies ``v`` by ``volume_multiplier``
  (default 100). Pass ``1.0`` to keep the gateway's raw number (e.g. for contracts where the
  lot rule does not hold).
- ``points`` is unreliable (real responses say 0 with one bar); the bar count is ``len(data)``.
- The server id is spelled ``serverId`` in real responses and ``serverid`` in IBKR's example.
- An empty window answers HTTP 200 ``{"error": "No data."}``.

Well-formed bars that break OHLC rules (``high < low``) are returned as they are: deciding what
to drop is :class:`~backtrader_ibkr_cp.models.bar.BarValidator`'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import ApiError, ConfigError, DataIntegrityError, DataUnavailable
from .bar import Bar
from .market import Availability

__all__ = ["HistoryResponse", "parse_history", "parse_history_time"]

ENDPOINT = "/iserver/marketdata/history"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NO_DATA = "no data"  # IBKR: {"error": "No data."}
_TIME_FORMAT = "%Y%m%d-%H:%M:%S"
_UNKNOWN = Availability("")


@dataclass(frozen=True)
class HistoryResponse:
    """One parsed history response.

    ``bars`` in the gateway's order (not validated). ``availability`` from ``mdAvailability``;
    ``price_factor`` IBKR's ``priceFactor`` (informational, 1.0 when absent);
    ``delay_seconds`` from ``mktDataDelay`` (0 = not delayed; 900 seen for delayed data);
    ``start_time`` the response's ``startTime`` (UTC) or None; ``server_id`` the gateway's
    ``serverId``/``serverid`` or ``""``.
    """

    symbol: str
    bars: list[Bar]
    availability: Availability = _UNKNOWN
    price_factor: float = 1.0
    delay_seconds: float = 0.0
    start_time: datetime | None = None
    server_id: str = ""
    text: str = field(default="", compare=False)


def parse_history_time(text: str) -> datetime:
    """``"20230818-08:00:00"`` (IBKR's ``YYYYMMDD-HH:MM:SS``, UTC) -> aware UTC datetime.

    Raises ValueError when the text does not match.
    """
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=timezone.utc)


def _number(value: object, what: str, index: int) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataIntegrityError(
            f"history bar #{index}: {what} {value!r} is not a number; the response is "
            "malformed, retry the request and report it if it persists",
            endpoint=ENDPOINT,
            index=index,
            field=what,
        )
    try:
        return float(value)
    except OverflowError as exc:
        raise DataIntegrityError(
            f"history bar #{index}: {what} {value!r} is out of range; retry the request and "
            "report it if it persists",
            endpoint=ENDPOINT,
            index=index,
            field=what,
        ) from exc


_NUMERIC = (int, float)


def _bar(entry: object, index: int, volume_multiplier: float) -> Bar:
    """One ``{t, o, h, l, c, v}`` entry as a Bar (a fast path for well-formed entries; any
    doubt goes through :func:`_checked_bar`, which names what is wrong)."""
    if type(entry) is dict:
        t, o, h = entry.get("t"), entry.get("o"), entry.get("h")
        low, c, v = entry.get("l"), entry.get("c"), entry.get("v")
        if (
            type(t) in _NUMERIC
            and type(o) in _NUMERIC
            and type(h) in _NUMERIC
            and type(low) in _NUMERIC
            and type(c) in _NUMERIC
            and type(v) in _NUMERIC
        ):
            try:
                timestamp = _EPOCH + timedelta(milliseconds=t)  # type: ignore[arg-type]
                volume = float(v) * volume_multiplier  # type: ignore[arg-type]
            except (OverflowError, ValueError):
                return _checked_bar(entry, index, volume_multiplier)
            return Bar(
                timestamp,
                float(o),  # type: ignore[arg-type]
                float(h),  # type: ignore[arg-type]
                float(low),  # type: ignore[arg-type]
                float(c),  # type: ignore[arg-type]
                round(volume, 6) if math.isfinite(volume) else volume,
            )
    return _checked_bar(entry, index, volume_multiplier)


def _checked_bar(entry: object, index: int, volume_multiplier: float) -> Bar:
    if not isinstance(entry, dict):
        raise DataIntegrityError(
            f"history bar #{index} is a {type(entry).__name__}, not an object with o, h, l, c, "
            "v, t; retry the request and report it if it persists",
            endpoint=ENDPOINT,
            index=index,
        )
    values = {key: _number(entry.get(key), key, index) for key in ("t", "o", "h", "l", "c", "v")}
    try:
        if not math.isfinite(values["t"]):
            raise OverflowError
        timestamp = _EPOCH + timedelta(milliseconds=values["t"])
    except OverflowError as exc:
        raise DataIntegrityError(
            f"history bar #{index}: t {entry.get('t')!r} is not an epoch-milliseconds time; "
            "retry the request and report it if it persists",
            endpoint=ENDPOINT,
            index=index,
            field="t",
        ) from exc
    volume = values["v"] * volume_multiplier
    return Bar(
        timestamp=timestamp,
        open=values["o"],
        high=values["h"],
        low=values["l"],
        close=values["c"],
        volume=round(volume, 6) if math.isfinite(volume) else volume,
    )


def _raise_in_band(error: object) -> None:
    message = str(error)
    if message.strip().rstrip(".").lower() == _NO_DATA:
        raise DataUnavailable(
            'the gateway has no bars for this request ("No data."): the window may fall on a '
            "weekend or holiday, or the contract has no history for this bar size",
            endpoint=ENDPOINT,
            status=200,
            gateway_message=message,
        )
    raise ApiError(
        f"the gateway refused the history request: {message}; check the conid, bar size and period",
        endpoint=ENDPOINT,
        status=200,
        gateway_message=message,
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _metadata_number(value: object, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    number = float(value)
    return number if math.isfinite(number) else default


def parse_history(body: Any, *, volume_multiplier: float = 100.0) -> HistoryResponse:
    """Parse a history response; ``Bar.volume = v * volume_multiplier`` rounded to 6 decimals.

    Raises DataUnavailable for ``{"error": "No data."}``, ApiError (with the gateway's message)
    for any other in-band ``{"error": ...}``, DataIntegrityError naming the entry index when a
    bar is missing a key or has a non-numeric value, and ConfigError for a
    ``volume_multiplier`` that is not a positive finite number.
    """
    if (
        isinstance(volume_multiplier, bool)
        or not isinstance(volume_multiplier, (int, float))
        or not math.isfinite(volume_multiplier)
        or volume_multiplier <= 0
    ):
        raise ConfigError(
            f"volume_multiplier {volume_multiplier!r} is invalid; use a positive number "
            "(100.0 for IBKR's lots of 100, 1.0 for the raw value)"
        )
    if not isinstance(body, dict):
        raise DataIntegrityError(
            f"history response is a {type(body).__name__}, not an object; is this a Client "
            "Portal Gateway? retry, and report it if it persists",
            endpoint=ENDPOINT,
        )
    if body.get("error") not in (None, ""):
        _raise_in_band(body["error"])
    data = body.get("data")
    if not isinstance(data, list):
        raise DataIntegrityError(
            f"history response has no 'data' list (got {type(data).__name__}); retry the "
            "request and report it if it persists",
            endpoint=ENDPOINT,
        )
    bars = [_bar(entry, index, float(volume_multiplier)) for index, entry in enumerate(data)]
    start_text = body.get("startTime")
    try:
        start_time = parse_history_time(start_text) if isinstance(start_text, str) else None
    except ValueError:
        start_time = None
    availability = body.get("mdAvailability")
    return HistoryResponse(
        symbol=_text(body.get("symbol")),
        bars=bars,
        availability=Availability(availability if isinstance(availability, str) else ""),
        price_factor=_metadata_number(body.get("priceFactor"), 1.0),
        delay_seconds=_metadata_number(body.get("mktDataDelay"), 0.0),
        start_time=start_time,
        server_id=_text(body.get("serverId", body.get("serverid"))),
        text=_text(body.get("text")),
    )
