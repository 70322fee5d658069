"""Every (TimeFrame, compression) of the Timeframe table works end to end, bar for bar."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import backtrader as bt
import pytest

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.models import Timeframe
from backtrader_ibkr_cp.simulator import GatewaySimulator

NY = ZoneInfo("America/New_York")
END = dt.datetime(2024, 3, 16, tzinfo=NY)


@pytest.mark.parametrize("tf", list(Timeframe), ids=[tf.bar for tf in Timeframe])
def test_each_supported_bar_size_equals_truth(
    no_thread_leak: None,
    frozen_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
    tf: Timeframe,
) -> None:
    span = {1: 2, 2: 3, 3: 4, 5: 5}.get(tf.minutes, 10) if tf.is_intraday else 0
    start = {
        "1d": dt.datetime(2024, 1, 2),
        "1w": dt.datetime(2023, 6, 5),
        "1m": dt.datetime(2022, 1, 1),
    }.get(tf.bar, dt.datetime(2024, 3, 15) - dt.timedelta(days=span))
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    data = store.getdata(
        dataname="AAPL",
        timeframe=tf.bt_timeframe,
        compression=tf.bt_compression,
        historical=True,
        fromdate=start,
        todate=END.replace(tzinfo=None),
    )
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data, name="AAPL")
    cerebro.addstrategy(recorder)
    strategy = run_cerebro(cerebro)
    truth = frozen_sim.truth("AAPL", tf.bar, start=start.replace(tzinfo=NY), end=END)
    expected = to_rows(truth, tf.bar)  # every bar stamped when complete
    got = strategy.rows["AAPL"]
    assert len(expected) > 5
    assert got == expected
