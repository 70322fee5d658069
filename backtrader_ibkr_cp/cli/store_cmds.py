"""``ibkr-cp store fill | ls | export``: the Parquet bar store from the command line.

``fill`` fetches only what the store is missing, through ``GatewayClient.fetch_bars``, and
writes every piece (about :data:`REQUESTS_PER_PIECE` history requests) as soon as it arrives,
so Ctrl-C loses at most the piece in flight and the same command continues where it stopped.
``ls`` and ``export`` read the store only: no gateway. ``ibkr-cp bars --store PATH`` goes
through :func:`fetch_through_store`.

The store is ``--store PATH`` (a folder or a pyarrow URI), else ``$IBKR_CP_BAR_STORE``, else
the user's data folder (``~/.local/share/backtrader_ibkr_cp/bars`` on Linux; see
``backtrader_ibkr_cp.barstore.location``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise
from typing import IO, Any
from zoneinfo import ZoneInfo

from ..barstore import BarStore, SeriesInfo, Span, fill, to_fetch
from ..barstore.location import ENV_BAR_STORE
from ..errors import DataUnavailable
from ..models import Bar, Contract, Timeframe
from .common import (
    BAR_HELP,
    Progress,
    add_date_range,
    add_gateway_options,
    bar_name,
    check_range,
    exchange_span,
    make_client,
    parse_timeframe,
    print_table,
)
from .output import check_output, write_bars

__all__ = ["REQUESTS_PER_PIECE", "add_store", "fetch_through_store", "open_store"]

#: History requests per piece written: twice the default history concurrency (4), so each
#: piece keeps the request pool busy and an interrupted fill loses little.
REQUESTS_PER_PIECE = 8

_STORE_HELP = (
    f"bar store folder or URI (default: ${ENV_BAR_STORE}, else the user data folder, "
    "~/.local/share/backtrader_ibkr_cp/bars on Linux)"
)


def open_store(path: str | None) -> BarStore:
    """The store at ``path``, else ``$IBKR_CP_BAR_STORE``, else the user data folder."""
    return BarStore(path) if path else BarStore.from_env()


def add_store(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "store",
        parents=parents,
        help="a local Parquet bar store: fill it once, backtest from it many times",
        description="Keep completed bars in a Parquet bar store: `fill` fetches only what "
        "the store is missing, `ls` lists what it holds, `export` writes a series to CSV or "
        "Parquet. A backtest the store covers needs no gateway.",
    )
    actions = p.add_subparsers(dest="store_command", metavar="ACTION", parser_class=type(p))
    actions.required = True

    fill_p = actions.add_parser(
        "fill",
        parents=parents,
        help="fetch what the store is missing",
        description="Fetch the completed bars of each SYMBOL with start in [--from, --to) "
        "that the store does not hold yet, and write each piece as it arrives: after Ctrl-C "
        "or an error, run the same command again to continue. Spans already held make no "
        "request; --refresh fetches them again (bars IBKR corrected replace the stored ones).",
    )
    add_gateway_options(fill_p)
    fill_p.add_argument("symbols", metavar="SYMBOL", nargs="+", help="e.g. AAPL IBM-STK-NYSE")
    _series_options(fill_p)
    add_date_range(fill_p)
    fill_p.add_argument("--refresh", action="store_true", help="fetch held spans again")
    fill_p.set_defaults(func=run_fill)

    ls_p = actions.add_parser(
        "ls",
        parents=parents,
        help="list the series in the store",
        description="List every series in the store (contract, bar size, hours, bar count, "
        "the span held); --spans lists each span held separately. Needs no gateway.",
    )
    ls_p.add_argument("--store", metavar="PATH", default=None, help=_STORE_HELP)
    ls_p.add_argument("--spans", "-l", action="store_true", help="list every span held")
    ls_p.set_defaults(func=run_ls)

    export_p = actions.add_parser(
        "export",
        parents=parents,
        help="write a stored series to CSV or Parquet",
        description="Write the stored bars of SYMBOL with start in [--from, --to) (default: "
        "all) as CSV (datetime in UTC ISO-8601, open, high, low, close, volume in shares) or, "
        "for a file ending in .parquet, as Parquet. Needs no gateway.",
    )
    export_p.add_argument("symbol", metavar="SYMBOL", help="a symbol, spec or conid in the store")
    _series_options(export_p)
    add_date_range(export_p, required=False)
    export_p.add_argument("--output", "-o", metavar="FILE", default=None, help="default: stdout")
    export_p.set_defaults(func=run_export)


def _series_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bar", type=parse_timeframe, default=Timeframe.MINUTE_5,
        help=f"bar size: {BAR_HELP} (default 5min)",
    )  # fmt: skip
    parser.add_argument("--outside-rth", action="store_true", help="04:00-20:00 ET bars")
    parser.add_argument("--store", metavar="PATH", default=None, help=_STORE_HELP)


# -- fill --------------------------------------------------------------------------------


class _HistoryCounter:
    """Steps the current progress bar on every history request the client sends."""

    def __init__(self) -> None:
        self.progress: Progress | None = None

    def __call__(self, event: Any) -> None:
        details = getattr(event, "details", {}) or {}
        history = event.kind == "request" and str(details.get("path", "")).endswith("/history")
        if history and self.progress is not None:
            self.progress.step()


def _splitter(timeframe: Timeframe, outside_rth: bool) -> Any:
    """Cut a span into pieces of about REQUESTS_PER_PIECE history windows, at window ends."""
    from ..history.planner import plan_windows

    def split(span: Span) -> list[Span]:
        windows = plan_windows(timeframe, span.start, span.end, outside_rth=outside_rth)
        cuts = [w.end for w in windows[REQUESTS_PER_PIECE - 1 : -1 : REQUESTS_PER_PIECE]]
        bounds = [span.start, *(c for c in cuts if span.start < c < span.end), span.end]
        return [Span(a, b) for a, b in pairwise(bounds)]

    return split


def _requests(timeframe: Timeframe, spans: Sequence[Span], outside_rth: bool) -> int:
    from ..history.planner import plan_windows

    return sum(len(plan_windows(timeframe, s.start, s.end, outside_rth=outside_rth)) for s in spans)


def fill_series(
    client: Any,
    store: BarStore,
    symbol: str,
    timeframe: Timeframe,
    start: datetime,
    end: datetime,
    *,
    outside_rth: bool = False,
    refresh: bool = False,
    counter: _HistoryCounter | None = None,
    stream: IO[str] | None = None,
) -> tuple[Contract, int, Progress]:
    """Fill ``symbol``'s series from ``client`` (a GatewayClient) at the gateway's clock.
    Returns the contract, the number of pieces written, and the progress bar (not done)."""
    contract = client.resolve(symbol)
    now = client.server_time()
    todo = to_fetch(
        store, contract, timeframe, start, end, outside_rth=outside_rth, now=now, refresh=refresh
    )
    total = _requests(timeframe, todo, outside_rth)
    progress = Progress(f"{symbol} {bar_name(timeframe)}", total, stream)
    if counter is not None:
        counter.progress = progress

    def fetch(piece: Span) -> list[Bar]:
        bars: list[Bar] = client.fetch_bars(
            contract, timeframe, piece.start, piece.end, outside_rth=outside_rth
        )
        return bars

    report = fill(
        store, contract, timeframe, start, end, fetch, outside_rth=outside_rth, now=now,
        refresh=refresh, split=_splitter(timeframe, outside_rth),
    )  # fmt: skip
    return contract, len(report.pieces), progress


def run_fill(args: argparse.Namespace) -> int:
    check_range(args.start, args.end)  # and again by exchange_span once the zone is known
    store = open_store(args.store)
    client = make_client(args)
    counter = _HistoryCounter()
    client.add_listener(counter)
    try:
        client.authenticate()
        start, end = exchange_span(client, args.symbols, args.start, args.end)
        for symbol in args.symbols:
            contract, pieces, progress = fill_series(
                client, store, symbol, args.bar, start, end,
                outside_rth=args.outside_rth, refresh=args.refresh, counter=counter,
            )  # fmt: skip
            held = len(store.read_columns(contract, args.bar, start, end, args.outside_rth))
            what = f"{pieces} spans fetched" if pieces else "nothing to fetch"
            name = bar_name(args.bar)
            progress.done(f"{symbol} {name}: {what}, {held} bars held -> {store.location}")
    except KeyboardInterrupt:
        sys.stderr.write(
            "\nstopped: the spans written so far are kept; run the same command again to continue\n"
        )
        raise
    finally:
        client.close()
    return 0


def fetch_through_store(
    client: Any, args: argparse.Namespace, start: datetime, end: datetime
) -> tuple[list[Bar], Progress]:
    """For ``ibkr-cp bars --store PATH``: fill the store with what it is missing of
    ``[start, end)`` (tz-aware), then read the span from the store."""
    store = open_store(args.store)
    counter = _HistoryCounter()
    client.add_listener(counter)
    contract, _, progress = fill_series(
        client, store, args.symbol, args.bar, start, end,
        outside_rth=args.outside_rth, counter=counter,
    )  # fmt: skip
    return store.read(contract, args.bar, start, end, args.outside_rth), progress


# -- ls ----------------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _row(info: SeriesInfo) -> tuple[object, ...]:
    key = info.key
    symbol = info.contract.symbol if info.contract is not None else "?"
    first = _stamp(info.coverage[0].start) if info.coverage else "-"
    last = _stamp(info.coverage[-1].end) if info.coverage else "-"
    hours = "all" if key.outside_rth else "rth"
    bar = bar_name(key.timeframe)
    return (symbol, key.conid, bar, hours, info.bars, len(info.coverage), first, last)


def run_ls(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    found = store.series()
    out = sys.stdout
    if not found:
        out.write(
            f"the bar store {store.location} is empty; fill it with `ibkr-cp store fill "
            "SYMBOL --bar 5min --from DATE --to DATE`\n"
        )
        return 0
    headers = ("symbol", "conid", "bar", "hours", "bars", "spans", "from (UTC)", "to (UTC)")
    found.sort(key=lambda info: (str(_row(info)[0]), info.key.conid, _row(info)[2:4]))
    rows = [_row(info) for info in found]
    print_table(rows, headers, out)
    for info, row in zip(found, rows, strict=True):
        if info.problem is not None:
            out.write(f"unreadable: {info.problem}\n")
        if args.spans and info.coverage:
            out.write(f"{row[0]} {row[2]} {row[3]}:\n")
            for span in info.coverage:
                out.write(f"  {_stamp(span.start)} -> {_stamp(span.end)}\n")
    out.write(f"store: {store.location}\n")
    return 0


# -- export ------------------------------------------------------------------------------


def _in_zone(moment: datetime | None, contract: Contract) -> datetime | None:
    """A ``--from``/``--to`` without a zone is exchange time (the contract's), as in ``bars``."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=ZoneInfo(contract.time_zone))


def run_export(args: argparse.Namespace) -> int:
    check_output(args.output)
    store = open_store(args.store)
    contract = store.contract(args.symbol)
    start, end = _in_zone(args.start, contract), _in_zone(args.end, contract)
    if start is not None and end is not None:
        check_range(start, end)
    columns = store.read_columns(contract, args.bar, start, end, args.outside_rth)
    name = bar_name(args.bar)
    if not len(columns):
        raise DataUnavailable(
            f"the bar store {store.location} holds no {name} bars for {contract.symbol} in "
            f"that range; fill it first with `ibkr-cp store fill {args.symbol} --bar {name} "
            "--from DATE --to DATE`"
        )
    if start is not None and end is not None:
        gaps = store.missing(contract, args.bar, start, end, args.outside_rth)
        if gaps:
            sys.stderr.write(
                f"note: the store is missing {len(gaps)} spans of that range (the first: "
                f"{gaps[0]}); `ibkr-cp store fill` fetches them\n"
            )
    write_bars(columns.to_bars(), args.output)
    where = args.output or "stdout"
    sys.stderr.write(f"{contract.symbol} {name}: {len(columns)} bars -> {where}\n")
    return 0
