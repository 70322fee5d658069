"""``ibkr-cp status``, ``search`` and ``bars``: one-shot questions to a gateway."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import IO, Any

from ..errors import ConfigError, MarketError, RateLimitExceeded
from ..models import Bar, Timeframe
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
from .output import OUTPUT_SUFFIXES, check_output, write_bars

__all__ = ["add_bars", "add_search", "add_status"]


# -- status ------------------------------------------------------------------------------


def add_status(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        parents=parents,
        help="gateway health, session and market-data availability (read only)",
        description="Check that the gateway answers, that its brokerage session is "
        "authenticated and not held by another login (competing), and which market data a "
        "symbol gets. It only reads: it never opens the session nor takes it over from "
        "another login (TWS, the mobile app); it says what to do instead. Exit 0 when "
        "usable, 1 otherwise.",
    )
    add_gateway_options(p)
    p.add_argument(
        "--symbol", default="AAPL", help="symbol whose market data to check (default: AAPL; "
        "'' to skip)",
    )  # fmt: skip
    p.set_defaults(func=run_status)


def run_status(args: argparse.Namespace) -> int:
    """Report the gateway's state. Read only: ``reopen`` is off, so neither this function nor
    the client's recovery ever sends ``ssodh/init`` (which would end a competing login)."""
    client = make_client(args)
    client.api.recovery.reopen = False
    try:
        out = sys.stdout
        status = client.api.auth_status()
        out.write(f"gateway        {client.base_url}: answering\n")
        if status.server_name or status.server_version:
            out.write(f"server         {status.server_name} {status.server_version}\n".rstrip())
            out.write("\n")
        out.write(f"authenticated  {_yes(status.authenticated)}\n")
        out.write(f"competing      {_yes(status.competing)}\n")
        out.write(f"connected      {_yes(status.connected)}\n")
        out.flush()
        if not status.connected and not status.competing:
            raise client.api.recovery.login_error(
                endpoint="/iserver/auth/status", detail=status.message or status.fail
            )
        if status.competing or not status.authenticated:
            raise client.api.recovery.not_reopened(status)
        if args.symbol:
            _market_data(client, args.symbol, out)
        return 0
    finally:
        client.close()


def _market_data(client: Any, symbol: str, out: IO[str]) -> None:
    try:
        contract = client.resolve(symbol)
        snapshot = client.fetch_snapshot(contract)
    except RateLimitExceeded:
        raise  # the gateway is rate limiting: not usable now (exit 1)
    except MarketError as exc:
        out.write(f"market data    {symbol}: unavailable ({exc})\n")
        return
    availability = snapshot.availability
    what = availability.describe() if availability is not None else "unknown"
    last = f", last {snapshot.last}" if snapshot.last is not None else ""
    out.write(f"market data    {contract.symbol} ({contract.contract_id}): {what}{last}\n")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


# -- search ------------------------------------------------------------------------------


def add_search(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "search",
        parents=parents,
        help="list the contracts a symbol matches",
        description="List every contract the gateway's /iserver/secdef/search returns for "
        "SYMBOL (conid, type, exchange, currency, description).",
    )
    add_gateway_options(p)
    p.add_argument("symbol", metavar="SYMBOL", help="e.g. AAPL")
    p.add_argument("--sec-type", default=None, help="filter by security type, e.g. STK")
    p.set_defaults(func=run_search)


def run_search(args: argparse.Namespace) -> int:
    client = make_client(args)
    try:
        client.authenticate()
        contracts = client.search_contract(args.symbol, sec_type=args.sec_type)
    finally:
        client.close()
    if not contracts:
        raise ConfigError(
            f"no contract matches {args.symbol!r}; check the symbol (e.g. AAPL, BRK B)"
        )
    rows = [
        (c.contract_id, c.symbol, c.sec_type, c.exchange, c.currency, c.description)
        for c in contracts
    ]
    print_table(rows, ("conid", "symbol", "type", "exchange", "currency", "description"))
    return 0


# -- bars --------------------------------------------------------------------------------


def add_bars(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bars",
        parents=parents,
        help="download historical bars to CSV (or Parquet)",
        description="Download completed bars with start in [--from, --to) as CSV (datetime "
        "in UTC ISO-8601, open, high, low, close, volume in shares) to --output or stdout. "
        "A file ending in .parquet is written as Parquet (needs pandas and pyarrow).",
    )
    add_gateway_options(p)
    p.add_argument("symbol", metavar="SYMBOL", help="e.g. AAPL or AAPL-STK-NASDAQ-USD")
    p.add_argument(
        "--bar", type=parse_timeframe, default=Timeframe.MINUTE_5,
        help=f"bar size: {BAR_HELP} (default 5min)",
    )  # fmt: skip
    add_date_range(p)
    p.add_argument(
        "--output", "-o", metavar="FILE", default=None,
        help=f"a {' or '.join(OUTPUT_SUFFIXES)} file in an existing folder (default: CSV to "
        "stdout)",
    )  # fmt: skip
    p.add_argument("--outside-rth", action="store_true", help="include 04:00-20:00 ET bars")
    p.add_argument(
        "--store", metavar="PATH", default=None,
        help="go through this bar store (folder or URI): read what it holds, fetch and keep "
        "the rest (see ibkr-cp store --help)",
    )  # fmt: skip
    p.set_defaults(func=run_bars)


def planned_requests(timeframe: Timeframe, start: Any, end: Any, outside_rth: bool) -> int:
    """How many history requests the planner will make (0 when unknown)."""
    try:
        from ..history.planner import plan_windows
    except ImportError:
        return 0
    try:
        return len(plan_windows(timeframe, start, end, outside_rth=outside_rth))
    except MarketError:
        return 0


def fetch_with_progress(
    client: Any,
    symbol: str,
    timeframe: Timeframe,
    start: Any,
    end: Any,
    *,
    outside_rth: bool = False,
    stream: IO[str] | None = None,
) -> tuple[list[Bar], Progress]:
    """``client.fetch_bars(...)`` with a progress bar counting history requests."""
    total = planned_requests(timeframe, start, end, outside_rth)
    progress = Progress(f"{symbol} {bar_name(timeframe)}", total, stream)

    def on_event(event: Any) -> None:
        details = getattr(event, "details", {}) or {}
        if event.kind == "request" and str(details.get("path", "")).endswith("/history"):
            progress.step()

    client.add_listener(on_event)
    bars = client.fetch_bars(symbol, timeframe, start, end, outside_rth=outside_rth)
    return bars, progress


def run_bars(args: argparse.Namespace) -> int:
    check_range(args.start, args.end)
    check_output(args.output)
    client = make_client(args)
    try:
        client.authenticate()
        start, end = exchange_span(client, [args.symbol], args.start, args.end)
        if args.store is not None:
            from .store_cmds import fetch_through_store

            bars, progress = fetch_through_store(client, args, start, end)
        else:
            bars, progress = fetch_with_progress(
                client, args.symbol, args.bar, start, end, outside_rth=args.outside_rth
            )
    finally:
        client.close()
    where = args.output or "stdout"
    write_bars(bars, args.output)
    progress.done(f"{args.symbol} {bar_name(args.bar)}: {len(bars)} bars -> {where}")
    return 0
