"""``GET /iserver/marketdata/snapshot``: pre-flight, then string fields from the price path.

Needs ``/iserver/accounts`` first in the brokerage session (else 400 "Please query /accounts
first"). The first request for a conid since the session opened or since it was unsubscribed
is the pre-flight: it answers only ``{"conid", "conidEx"}``. Later requests answer the fields
requested so far (fields are remembered per conid), as strings:

``31`` last (``C`` + prior close before the day's first trade, ``H`` prefix when halted),
``55`` symbol, ``70``/``71`` day high/low, ``82``/``83`` change / change %, ``84`` bid,
``85`` ask size, ``86`` ask, ``88`` bid size, ``87`` formatted volume (``"25.5M"``),
``7059`` last size, ``7762`` cumulative day volume in shares, ``7295`` day open, ``7741`` prior
close, ``6004``/``7221`` exchange, ``6008`` conid (int), ``6070`` sec type, ``7051`` company
name. Every entry also carries ``conid``, ``conidEx``, ``server_id``, ``6119``, ``_updated``
(gateway clock, epoch ms) and ``6509`` (availability). With availability ``N`` (not
subscribed) no price, size or volume fields are sent. Prices are real time whatever the code.
Sizes use thousands separators; the bid is one cent below the ask, the ask equals the last.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .context import SimContext
from .instruments import SimInstrument
from .quotes import MarketState, market_state, top_of_book
from .wire import Request, Response

__all__ = ["MAX_CONIDS", "MAX_FIELDS", "field_values", "format_volume", "serve_snapshot"]

MAX_CONIDS = 100
MAX_FIELDS = 50


def price_text(cents: int) -> str:
    """``17396`` -> ``"173.96"``."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def format_volume(shares: int) -> str:
    """IBKR's short volume: ``830123`` -> ``"830K"``, ``25_500_000`` -> ``"25.5M"``."""
    value = float(shares)
    for suffix, scale in (("", 1.0), ("K", 1e3), ("M", 1e6), ("B", 1e9)):
        scaled = value / scale
        if scaled < 999.5 or suffix == "B":
            if suffix == "":
                return str(shares)
            return f"{scaled:.3g}{suffix}"
    raise AssertionError("unreachable")  # pragma: no cover


def _values(
    ctx: SimContext, inst: SimInstrument, state: MarketState, halted: bool
) -> dict[str, Any]:
    book = top_of_book(ctx.market.seed, inst.conid, state.minute, int(state.second))
    last = state.last
    if state.traded:
        last_text = ("H" if halted else "") + price_text(last)
    else:
        last_text = "C" + price_text(last)
    values: dict[str, Any] = {
        "31": last_text,
        "84": price_text(max(1, last - 1)),
        "86": price_text(last),
        "85": f"{book.ask_size:,}",
        "88": f"{book.bid_size:,}",
        "7741": price_text(state.prior_close),
        "7762": str(state.volume),
        "87": format_volume(state.volume),
        "82": price_text(last - state.prior_close),
        "83": f"{100.0 * (last - state.prior_close) / state.prior_close:.2f}",
    }
    if state.traded:
        assert state.day_open is not None and state.day_high is not None
        assert state.day_low is not None
        values["70"] = price_text(state.day_high)
        values["71"] = price_text(state.day_low)
        values["7295"] = price_text(state.day_open)
        values["7059"] = f"{book.last_size:,}"
    return values


def _static(inst: SimInstrument) -> dict[str, Any]:
    return {
        "55": inst.symbol,
        "6004": inst.exchange,
        "7221": inst.exchange,
        "6008": inst.conid,
        "6070": inst.sec_type,
        "7051": inst.name,
    }


def field_values(ctx: SimContext, inst: SimInstrument, now: datetime) -> dict[str, Any]:
    """Every field code the simulator can answer for ``inst`` at ``now``, as the snapshot
    endpoint formats it (without ``6509``, ``_updated`` and the ids). Shared with the
    WebSocket's ``smd`` messages, so both show the same values at the same instant."""
    values = _static(inst)
    if ctx.instruments.availability(inst.conid)[0] != "N":
        state = market_state(ctx.market, inst, now)
        values.update(_values(ctx, inst, state, ctx.instruments.halted(inst.conid)))
    return values


def parse_ids(text: str | None) -> list[str]:
    """Comma-separated values (blank items dropped)."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def serve_snapshot(request: Request, ctx: SimContext) -> Response:
    """Answer one snapshot request (see module doc)."""
    if not ctx.session.accounts_queried:
        return Response.error(400, "Please query /accounts first")
    conid_texts = parse_ids(request.query.get("conids"))
    fields = parse_ids(request.query.get("fields"))
    if not conid_texts:
        return Response.error(400, "conids is required, e.g. conids=265598,8314")
    if len(conid_texts) > MAX_CONIDS:
        return Response.error(
            400, f"{len(conid_texts)} conids requested; at most {MAX_CONIDS} per request"
        )
    if len(fields) > MAX_FIELDS:
        return Response.error(
            400, f"{len(fields)} fields requested; at most {MAX_FIELDS} per request"
        )
    instruments: list[SimInstrument] = []
    for text in dict.fromkeys(conid_texts):
        inst = ctx.instruments.get(int(text)) if text.isdigit() else None
        if inst is None:
            return Response.error(400, f"conid {text!r} is not a known contract; resolve it first")
        instruments.append(inst)

    now = ctx.clock.now()
    updated = int(now.timestamp() * 1000)
    entries: list[dict[str, Any]] = []
    for index, inst in enumerate(instruments):
        new, wanted = ctx.session.subscribe(inst.conid, fields)
        entry: dict[str, Any] = {"conidEx": str(inst.conid), "conid": inst.conid}
        if new:
            entries.append(entry)
            continue
        server_id = f"q{index}"
        entry.update({"server_id": server_id, "_updated": updated, "6119": server_id})
        availability = ctx.instruments.availability(inst.conid)
        values = field_values(ctx, inst, now)
        for field in sorted(wanted, key=lambda f: (len(f), f)):
            if field in values:
                entry[field] = values[field]
        entry["6509"] = availability
        entries.append(entry)
    return Response.json(entries)
