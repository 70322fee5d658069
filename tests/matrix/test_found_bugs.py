"""Regression tests for bugs the fault matrix found (each docstring names the bug)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import backtrader as bt
import pytest
from matrix_cells import HISTORY, SESSION_OPEN, UTC, truth_rows, utc

from backtrader_ibkr_cp import DataUnavailable, IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator


class Rows(bt.Strategy):  # type: ignore[misc]
    """Records the bars, statuses and store messages of one data."""

    def __init__(self) -> None:
        self.rows: list[tuple[dt.datetime, float, float, float, float, float]] = []
        self.statuses: list[str] = []
        self.messages: list[str] = []

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        self.statuses.append(data._getstatusname(status))

    def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.messages.append(str(msg))

    def next(self) -> None:
        d = self.data
        when = bt.num2date(d.datetime[0]).replace(tzinfo=UTC)
        self.rows.append((when, d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))


def historical_run(sim: GatewaySimulator, **store: Any) -> Rows:
    """AAPL one-minute bars 09:30-09:39 New York (stamped 09:31-09:40, at their ends),
    historical only; ``runonce=False`` so that notifications reach the strategy."""
    cerebro = bt.Cerebro(stdstats=False)
    options = {"poll_interval": 0.25, "timeout": 0.5, "streaming": "poll", **store}
    data = IBKRCPStore(gateway_url=sim.url, **options).getdata(
        dataname="AAPL",
        timeframe=bt.TimeFrame.Minutes,
        compression=1,
        fromdate=SESSION_OPEN,
        todate=dt.datetime(2024, 3, 5, 9, 40),
        historical=True,
    )
    cerebro.adddata(data, name="AAPL")
    cerebro.addstrategy(Rows)
    guard = threading.Timer(20.0, cerebro.runstop)
    guard.start()
    try:
        (strategy,) = cerebro.run(runonce=False)
    finally:
        guard.cancel()
        guard.join()
    return strategy  # type: ignore[no-any-return]


def assert_ten_true_bars(sim: GatewaySimulator, rows: list[Any]) -> None:
    assert len(rows) == 10 and rows[0][0] == utc(SESSION_OPEN) + dt.timedelta(minutes=1)
    assert rows == truth_rows(sim, "AAPL", rows)


def test_a_transient_no_data_answer_does_not_empty_a_historical_run(
    no_thread_leak: None, frozen_weekday: GatewaySimulator
) -> None:
    """Bug: two "No data." answers in a row (one request and its one retry) made the span
    count as empty: a historical run ended DISCONNECTED with no bar at all, and a live backfill
    skipped to now, silently (matrix cells ``no_data-backfill-*``). Now a span that must hold
    complete bars is asked again before it is given up, with a store message."""
    frozen_weekday.inject("no_data", 2, path=HISTORY)
    strategy = historical_run(frozen_weekday)
    assert frozen_weekday.pending_faults == 0
    assert_ten_true_bars(frozen_weekday, strategy.rows)


def test_a_span_that_stays_empty_is_reported(
    no_thread_leak: None, frozen_weekday: GatewaySimulator
) -> None:
    """Bug (same): a span with bars that the gateway keeps answering "No data." for was
    dropped without a word. A historical run now raises DataUnavailable saying which span got
    no bars and what to check (a live backfill says it through notify_store and goes on)."""
    frozen_weekday.inject("no_data", 100, path=HISTORY)
    with pytest.raises(DataUnavailable) as raised:
        historical_run(frozen_weekday)
    said = str(raised.value)
    assert "No data." in said and "14:30" in said and "permission" in said, said


def test_strict_mode_retries_a_malformed_answer_instead_of_stopping(
    no_thread_leak: None, frozen_weekday: GatewaySimulator
) -> None:
    """Bug: with strict=True every DataIntegrityError was fatal, so four truncated answers in
    a row (the transport retries three) stopped the feed as if a bar were invalid. strict is
    about invalid bars; a truncated body is transient and is retried like in default mode."""
    frozen_weekday.inject("malformed", 4, path=HISTORY)
    strategy = historical_run(frozen_weekday, strict=True)
    assert frozen_weekday.pending_faults == 0
    assert_ten_true_bars(frozen_weekday, strategy.rows)
