"""Fill a store from a fetch function: ask :meth:`BarStore.missing`, fetch each missing piece,
write it as soon as it arrives.

The fetch function is handed in (``GatewayClient.fetch_bars`` bound to a contract, a cassette,
a test's list), so this module knows nothing of the gateway. Writing each piece as it arrives
makes a fill resumable: after Ctrl-C or an error, the pieces already written stay, and the next
fill asks only for the rest. Everything a fill writes is judged complete at one ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..models.bar import Bar
from ..models.contract import Contract
from ..models.timeframe import Timeframe
from .horizon import can_hold_bars
from .spans import Span, to_ms
from .store import BarStore

__all__ = ["Fetch", "FillReport", "Split", "fill", "to_fetch"]

#: ``fetch(span) -> bars`` starting in ``span`` (completed bars, any order).
Fetch = Callable[[Span], Sequence[Bar]]
#: ``split(span) -> pieces`` tiling ``span`` in order, each fetched and written on its own.
Split = Callable[[Span], Sequence[Span]]


@dataclass
class FillReport:
    """What a fill did: ``pieces`` fetched and written (in order), ``bars`` written."""

    pieces: list[Span] = field(default_factory=list)
    bars: int = 0


def to_fetch(
    store: BarStore,
    contract: Contract,
    timeframe: Timeframe | str,
    start: datetime,
    end: datetime,
    *,
    outside_rth: bool = False,
    now: datetime | None = None,
    refresh: bool = False,
) -> list[Span]:
    """The spans a fill of ``[start, end)`` fetches: :meth:`BarStore.missing`, or with
    ``refresh`` the whole span up to the store's horizon (so corrected bars replace the
    stored ones)."""
    tf = Timeframe.parse(timeframe)
    moment = now if now is not None else store.clock()
    if not refresh:
        return store.missing(contract, tf, start, end, outside_rth, now=moment)
    horizon = store.horizon(tf, outside_rth=outside_rth, now=moment)
    limit = min(to_ms(end, name="end", ceil=True), to_ms(horizon))
    if limit <= to_ms(start, name="start"):
        return []
    whole = Span.of_ms(to_ms(start), limit)
    return [whole] if can_hold_bars(whole, tf, outside_rth=outside_rth) else []


def fill(
    store: BarStore,
    contract: Contract,
    timeframe: Timeframe | str,
    start: datetime,
    end: datetime,
    fetch: Fetch,
    *,
    outside_rth: bool = False,
    now: datetime | None = None,
    refresh: bool = False,
    split: Split | None = None,
    on_written: Callable[[Span, int], None] | None = None,
) -> FillReport:
    """Fetch what ``store`` is missing of ``[start, end)`` for ``contract`` and write it.

    ``now`` is the gateway's clock (default ``store.clock()``); bars not complete at ``now``
    are neither asked for nor stored. ``refresh`` fetches the whole span again (bars IBKR
    corrected since replace the stored ones). ``split`` cuts each span to fetch into pieces
    written one by one; ``on_written(piece, bar_count)`` is called after each write. The
    contract is stored even when nothing is missing. Errors from ``fetch`` propagate; what
    was written before them stays.
    """
    tf = Timeframe.parse(timeframe)
    moment = now if now is not None else store.clock()
    store.put_contract(contract)
    todo = to_fetch(
        store, contract, tf, start, end, outside_rth=outside_rth, now=moment, refresh=refresh
    )
    report = FillReport()
    for gap in todo:
        for piece in split(gap) if split is not None else (gap,):
            bars = [bar for bar in fetch(piece) if piece.contains(bar.timestamp)]
            store.write(contract, tf, bars, span=piece, outside_rth=outside_rth, now=moment)
            report.pieces.append(piece)
            report.bars += len(bars)
            if on_written is not None:
                on_written(piece, len(bars))
    return report
