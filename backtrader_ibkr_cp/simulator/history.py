"""``GET /iserver/marketdata/history``: parameters, window and the IBKR-shaped response.

``startTime`` (UTC ``YYYYMMDD-HH:MM:SS``, default the gateway's now) is the END anchor of the
window: bars starting at or after it are not returned. The window reaches back ``period`` (see
:mod:`.periods`); a bar is returned when it overlaps the window, has data at the gateway's now
(the still-forming bar is included with its values so far), and is among the most recent 1000.
``v`` is volume / 100 (IBKR's lots of 100 for US stocks). An empty window answers 200
``{"error": "No data."}``; bad parameters answer 400 ``{"error": "..."}``.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from typing import Any

from .bars import RawBar
from .calendar import UTC, BarSize
from .context import SimContext
from .periods import Period, check_pair, window_start
from .wire import Request, Response, format_utc

__all__ = ["serve_history"]

_TIME_FORMAT = "%Y%m%d-%H:%M:%S"
_server_ids = itertools.count(20_000)


class BadRequest(ValueError):
    """A history parameter is invalid (answered 400)."""


def parse_bool(name: str, text: str | None, default: bool) -> bool:
    """``"true"``/``"false"`` (any case) or ``default`` when missing; BadRequest otherwise."""
    if text is None or text == "":
        return default
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise BadRequest(f"{name} must be true or false, got {text!r}")


def parse_start_time(text: str | None, now: datetime) -> datetime:
    """The UTC anchor from ``startTime``, or ``now`` when missing."""
    if text is None or text == "":
        return now
    try:
        return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(
            f"startTime {text!r} is not valid; use UTC YYYYMMDD-HH:MM:SS, e.g. 20240304-14:30:00"
        ) from None


def _bar_json(bar: RawBar) -> dict[str, Any]:
    return {
        "o": bar.open / 100,
        "c": bar.close / 100,
        "h": bar.high / 100,
        "l": bar.low / 100,
        "v": bar.volume / 100,
        "t": int(bar.start.timestamp()) * 1000,
    }


def _extreme(bars: list[RawBar], high: bool) -> str:
    """IBKR's ``high``/``low`` string: price*100 / total volume/100 / minutes from start."""
    pick = max(bars, key=lambda b: b.high) if high else min(bars, key=lambda b: b.low)
    price = pick.high if high else pick.low
    volume = sum(b.volume for b in bars) / 100
    minutes = int((pick.start - bars[0].start).total_seconds() // 60)
    return f"{price}/{volume}/{minutes}"


def serve_history(request: Request, ctx: SimContext, max_points: int = 1000) -> Response:
    """Answer one history request (see module doc); keeps the last ``max_points`` bars."""
    started = time.perf_counter()
    now = ctx.clock.now()
    try:
        conid_text = request.query.get("conid")
        if not conid_text:
            raise BadRequest("conid is required, e.g. conid=265598")
        if not conid_text.strip().isdigit():
            raise BadRequest(f"conid must be an integer, got {conid_text!r}")
        instrument = ctx.instruments.get(int(conid_text))
        if instrument is None:
            raise BadRequest(f"conid {conid_text} is not a known contract; resolve it first")
        bar_text = request.query.get("bar")
        if not bar_text:
            raise BadRequest("bar is required, e.g. bar=5min")
        size = BarSize.parse(bar_text)
        period = Period.parse(request.query.get("period") or "1w")
        check_pair(period, size)
        anchor = parse_start_time(request.query.get("startTime"), now)
        outside_rth = parse_bool(
            "outsideRth", request.query.get("outsideRth"), ctx.outside_rth_default
        )
    except ValueError as error:
        return Response.error(400, str(error))

    start = window_start(period, anchor, outside_rth)
    bars = ctx.bars.bars(instrument, size, start, anchor, now, outside_rth)[-max_points:]
    if not bars:
        return Response.json({"error": "No data."})
    availability = ctx.instruments.availability(instrument.conid)
    body: dict[str, Any] = {
        "serverId": str(next(_server_ids)),
        "symbol": instrument.symbol,
        "text": instrument.name,
        "priceFactor": 100,
        "startTime": format_utc(bars[0].start),
        "high": _extreme(bars, high=True),
        "low": _extreme(bars, high=False),
        "timePeriod": period.text,
        "barLength": size.seconds,
        "mdAvailability": availability,
        "outsideRth": outside_rth,
        "tradingDayDuration": 1440,
        "volumeFactor": 1,
        "priceDisplayRule": 1,
        "priceDisplayValue": "2",
        "chartPanStartTime": format_utc(anchor),
        "direction": -1,
        "negativeCapable": False,
        "messageVersion": 2,
        "travelTime": 0,
        "data": [_bar_json(bar) for bar in bars],
        "points": len(bars),
        "mktDataDelay": 900 if availability[0] in "DY" else 0,
    }
    body["travelTime"] = int((time.perf_counter() - started) * 1000)
    return Response.json(body)
