"""A historical run that cannot get its data raises the typed error out of ``cerebro.run()``.

Bug: in backtrader's default historical mode (runonce, preload) no notification is ever
delivered, so an unknown symbol, an unsupported compression, a request missing from a
cassette, or a gateway that is down or not logged in ended the run quietly with zero bars
(or in an unrelated backtrader IndexError once an indicator was added). Each case below ran
to completion before the fix.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path
from typing import Any

import backtrader as bt
import pytest

from backtrader_ibkr_cp import (
    AuthenticationError,
    ConfigError,
    DataUnavailable,
    GatewayConnectionError,
    IBKRCPStore,
    MarketError,
)
from backtrader_ibkr_cp.contracts.resolver import AmbiguousContract, ContractNotFound
from backtrader_ibkr_cp.simulator import GatewaySimulator

CASSETTE = Path(__file__).resolve().parents[2] / "cassettes" / "aapl_msft_5min_synthetic.json"


class ErrorsSmaCross(bt.Strategy):  # type: ignore[misc]
    """The README's strategy shape: indicators, so an empty feed used to crash in them."""

    def __init__(self) -> None:
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=10), bt.ind.SMA(period=30))


def backtest(store: IBKRCPStore, **data: Any) -> None:
    params: dict[str, Any] = {
        "dataname": "AAPL",
        "timeframe": bt.TimeFrame.Minutes,
        "compression": 5,
        "fromdate": dt.datetime(2024, 3, 4),
        "todate": dt.datetime(2024, 3, 8),
        "historical": True,
    }
    params.update(data)
    cerebro = bt.Cerebro()  # backtrader's defaults: runonce=True, preload=True
    cerebro.adddata(store.getdata(**params))
    cerebro.addstrategy(ErrorsSmaCross)
    cerebro.run()


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        ({"dataname": "NOSUCH"}, ContractNotFound, "NOSUCH"),
        ({"dataname": "DUAL"}, AmbiguousContract, "DUAL"),
        ({"compression": 7}, ConfigError, "Minutes/5"),
        (
            {"fromdate": dt.datetime(2024, 3, 8), "todate": dt.datetime(2024, 3, 4)},
            ConfigError,
            "fromdate",
        ),
    ],
    ids=["unknown-symbol", "ambiguous-symbol", "compression-7", "from-after-to"],
)
def test_bad_input_raises_out_of_cerebro_run(
    no_thread_leak: None,
    frozen_sim: GatewaySimulator,
    data: dict[str, Any],
    error: type[Exception],
    words: str,
) -> None:
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    with pytest.raises(error, match=words):
        backtest(store, **data)


def test_a_gateway_that_is_not_logged_in_raises_with_where_to_log_in(
    no_thread_leak: None, frozen_sim: GatewaySimulator
) -> None:
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    store_client_logout(frozen_sim)
    with pytest.raises(AuthenticationError, match="log in at"):
        backtest(store)
    assert frozen_sim.stats.requests["/iserver/marketdata/history"] == 0


def store_client_logout(sim: GatewaySimulator) -> None:
    """End the gateway's login (as after IBKR's nightly reset with no one to log in)."""
    import requests

    requests.post(sim.api_url + "/logout", json={}, verify=sim.cert_path, timeout=5)


def test_a_gateway_that_is_down_raises_a_connection_error(no_thread_leak: None) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    store = IBKRCPStore(gateway_url=f"https://127.0.0.1:{port}", timeout=1.0)
    with pytest.raises(GatewayConnectionError, match="refused"):
        backtest(store)


def test_no_bars_for_a_span_with_sessions_raises_data_unavailable(
    no_thread_leak: None, frozen_sim: GatewaySimulator
) -> None:
    frozen_sim.inject("no_data", 1000, path="/iserver/marketdata/history")
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    with pytest.raises(DataUnavailable, match="No data"):
        backtest(store)


def test_a_request_missing_from_the_cassette_raises_cassette_miss(no_thread_leak: None) -> None:
    from backtrader_ibkr_cp.cassettes import CassetteMiss

    store = IBKRCPStore(cassette=str(CASSETTE))
    with pytest.raises(CassetteMiss):
        backtest(store, dataname="IBM")  # the cassette holds AAPL and MSFT only


def test_a_missing_cassette_file_raises_and_names_it(no_thread_leak: None, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    store = IBKRCPStore(cassette=str(missing))
    with pytest.raises(MarketError, match=r"nope\.json"):
        backtest(store)


def test_a_corrupt_cassette_raises_and_names_the_file(no_thread_leak: None, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text(json.dumps({"interactions": [{"request": {}}]})[:20])
    store = IBKRCPStore(cassette=str(corrupt))
    with pytest.raises(MarketError, match=r"corrupt\.json"):
        backtest(store)


def test_after_a_raise_the_next_run_in_the_process_works_and_nothing_leaks(
    no_thread_leak: None, frozen_sim: GatewaySimulator
) -> None:
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    with pytest.raises(ContractNotFound):
        backtest(store, dataname="NOSUCH")
    assert store.client is None  # the failed run let go of the store: nothing left open
    seen: list[int] = []

    class Count(bt.Strategy):  # type: ignore[misc]
        def next(self) -> None:
            seen.append(len(self.data))

        def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
            raise AssertionError(f"a message of the failed run reached this one: {msg}")

    cerebro = bt.Cerebro(runonce=False)
    cerebro.adddata(
        store.getdata(
            dataname="AAPL",
            timeframe=bt.TimeFrame.Minutes,
            compression=5,
            fromdate=dt.datetime(2024, 3, 4),
            todate=dt.datetime(2024, 3, 5),
            historical=True,
        )
    )
    cerebro.addstrategy(Count)
    cerebro.run()
    assert len(seen) == 78
