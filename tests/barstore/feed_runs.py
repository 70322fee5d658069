"""Backtests through ``IBKRCPStore(bar_store=...)``, and worker functions for spawned processes.

Worker functions live here, at module level, so a ``spawn`` child can import them. Dates are
naive New York times, as a feed's ``fromdate``/``todate`` are read in the exchange's zone.
"""

from __future__ import annotations

import datetime as dt
import faulthandler
import os
from typing import Any

import backtrader as bt

from backtrader_ibkr_cp import IBKRCPStore
from tests.support.instants import NY
from tests.support.recorder import Recorder

HISTORY = "/iserver/marketdata/history"
#: Real seconds a spawned worker may run before it dumps its threads' stacks and exits.
CHILD_SECONDS = 80.0


def feed(store: IBKRCPStore, fromdate: dt.datetime, todate: dt.datetime | None, **kw: Any) -> Any:
    """An AAPL feed of ``store``: historical 5-minute bars unless ``kw`` says otherwise."""
    return store.getdata(
        dataname=kw.pop("dataname", "AAPL"),
        timeframe=bt.TimeFrame.Minutes,
        compression=kw.pop("compression", 5),
        historical=kw.pop("historical", True),
        fromdate=fromdate,
        todate=todate,
        **kw,
    )


def backtest(
    url: str,
    bar_store: Any,
    fromdate: dt.datetime,
    todate: dt.datetime | None,
    *,
    feed_kw: dict[str, Any] | None = None,
    **run_kw: Any,
) -> Any:
    """One run of the recording strategy over a fresh store; returns the strategy (its
    ``data`` is the feed)."""
    IBKRCPStore._reset()
    try:
        store = IBKRCPStore(gateway_url=url, bar_store=bar_store)
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(feed(store, fromdate, todate, **(feed_kw or {})), name="AAPL")
        cerebro.addstrategy(Recorder)
        run_kw.setdefault("runonce", False)  # notifications are only delivered bar by bar
        (strategy,) = cerebro.run(**run_kw)
        return strategy
    finally:
        IBKRCPStore._reset()


def ny(*args: int) -> dt.datetime:
    """A New York wall time, tz-aware (for ``sim.truth``)."""
    return dt.datetime(*args, tzinfo=NY)  # type: ignore[misc]


def lines_of(data: Any) -> list[bytes]:
    """The raw contents of a feed's seven line buffers."""
    names = ("datetime", "open", "high", "low", "close", "volume", "openinterest")
    return [bytes(getattr(data.lines, name).array) for name in names]


# -- spawned workers ------------------------------------------------------------------------


def fill_span(
    url: str,
    folder: str,
    fromdate: dt.datetime,
    todate: dt.datetime,
    ready: Any,
    go: Any,
    done: Any,
) -> None:
    """Run a store-backed backtest of ``[fromdate, todate]`` once every worker is ready;
    puts ``(fromdate, bars seen)`` on ``done``."""
    ready.put(os.getpid())
    go.wait()
    strategy = backtest(url, folder, fromdate, todate)
    done.put((fromdate, len(strategy.rows["AAPL"])))


def backtest_as(
    uid: int,
    pacing_dir: str,
    url: str,
    folder: str,
    span: tuple[dt.datetime, dt.datetime],
    result: Any,
) -> None:
    """As user ``uid``: a store-backed backtest of ``span``. Puts (error class, message,
    path) or ("no error", "", None) on ``result``. Should it hang for :data:`CHILD_SECONDS`,
    it writes every thread's stack to ``<folder>.stacks`` and exits (read by the test)."""
    stacks = open(f"{folder}.stacks", "w")  # noqa: SIM115 - kept open for faulthandler
    faulthandler.dump_traceback_later(CHILD_SECONDS, exit=True, file=stacks)
    os.environ["IBKR_CP_PACING_DIR"] = pacing_dir
    dt.datetime.strptime("2024", "%Y")  # imports _strptime while /root is still readable
    os.setgid(uid)
    os.setuid(uid)
    try:
        backtest(url, folder, *span)
    except Exception as exc:
        result.put((type(exc).__name__, str(exc), getattr(exc, "path", None)))
        return
    result.put(("no error", "", None))
