"""``ibkr-cp record`` (record a backtest's gateway traffic) and ``ibkr-cp plugins``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ..models import Timeframe
from .common import (
    BAR_HELP,
    add_date_range,
    add_gateway_options,
    check_range,
    exchange_span,
    make_client,
    parse_timeframe,
    print_table,
)

__all__ = ["add_plugins", "add_record"]


def add_record(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "record",
        parents=parents,
        help="record a historical backtest's gateway traffic into a cassette",
        description="Run a historical backtest of SYMBOL... through IBKRCPStore against the "
        "gateway and record every request and answer into --cassette (secrets scrubbed). "
        "Replay it offline with IBKRCPStore(cassette=PATH) and the same symbols, bar and "
        "dates. The file is replaced only when the run succeeds.",
    )
    add_gateway_options(p)
    p.add_argument("--cassette", required=True, metavar="PATH", help="e.g. cassettes/aapl.json")
    p.add_argument("symbols", metavar="SYMBOL", nargs="+", help="one or more symbols")
    p.add_argument(
        "--bar", type=parse_timeframe, default=Timeframe.MINUTE_5,
        help=f"bar size: {BAR_HELP} (default 5min)",
    )  # fmt: skip
    add_date_range(p)
    p.add_argument("--outside-rth", action="store_true", help="include 04:00-20:00 ET bars")
    p.add_argument(
        "--append", action="store_true",
        help="keep the existing cassette and add the requests it lacks (new_episodes)",
    )  # fmt: skip
    p.add_argument(
        "--client", action="store_true",
        help="record GatewayClient.fetch_bars calls instead of a backtrader run",
    )  # fmt: skip
    p.set_defaults(func=run_record)


def _span(args: argparse.Namespace) -> tuple[datetime, datetime]:
    """``--from``/``--to`` made aware; naive ones in the symbols' exchange time zone (which
    takes a look-up at the gateway, outside the recording)."""
    if args.start.tzinfo is not None and args.end.tzinfo is not None:
        return exchange_span(None, args.symbols, args.start, args.end)
    client = make_client(args)
    try:
        client.authenticate()
        return exchange_span(client, args.symbols, args.start, args.end)
    finally:
        client.close()


def run_record(args: argparse.Namespace) -> int:
    check_range(args.start, args.end)
    start, end = _span(args)
    common: dict[str, Any] = {
        "gateway_url": args.gateway,
        "verify": args.verify,
        "outside_rth": args.outside_rth,
        "append": args.append,
    }
    if args.client:
        from ..cassettes.recording import record_client_run

        result = record_client_run(args.cassette, args.symbols, args.bar, start, end, **common)
    else:
        from ..bt.backtest import record_store_run

        result = record_store_run(args.cassette, args.symbols, args.bar, start, end, **common)
    counts = ", ".join(f"{symbol} {n} bars" for symbol, n in result.bars.items())
    sys.stdout.write(
        f"recorded {result.interactions} interactions ({counts}) into {result.path} "
        f"({result.size_bytes / 1024:.0f} KiB)\n"
    )
    sys.stdout.write(
        f"replay: IBKRCPStore(cassette={str(Path(result.path))!r}) with the same symbols, bar "
        "and dates\n"
    )
    return 0


def add_plugins(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plugins",
        parents=parents,
        help="list installed plugins and the feeds they provide",
        description="List the plugins loaded from the 'backtrader_ibkr_cp' entry-point group "
        "and every feed available by name (ibkr_cp_register_feeds and 'backtrader.feeds'). "
        "IBKR_CP_PLUGINS=a,b limits the installed plugins loaded; "
        "IBKR_CP_DISABLE_PLUGIN_AUTOLOAD=1 loads none.",
    )
    p.set_defaults(func=run_plugins)


def run_plugins(args: argparse.Namespace) -> int:
    from ..plugins import available_feeds, get_plugin_manager

    del args
    pm = get_plugin_manager()
    dists = {id(plugin): f"{d.project_name} {d.version}" for plugin, d in pm.list_plugin_distinfo()}
    rows = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        rows.append((name, dists.get(id(plugin), "built-in"), ", ".join(hooks)))
    print_table(rows, ("plugin", "distribution", "hooks"))
    sys.stdout.write("\n")
    feeds = available_feeds(pm)
    print_table(
        [(f.name, f.source, f.distribution or "-", f.description or "-") for f in feeds.values()],
        ("feed", "source", "distribution", "description"),
    )
    return 0
