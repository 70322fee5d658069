"""Replaying a stored cassette through a requests adapter (no vcrpy patching)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import backtrader as bt
import pytest
import requests

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.cassettes import CassetteMiss, CassetteNotFound, active_cassette
from backtrader_ibkr_cp.cassettes.replay import ReplayAdapter, replay_session
from backtrader_ibkr_cp.cassettes.storage import read_cassette_dict

SHIPPED = Path(__file__).resolve().parents[2] / "cassettes" / "aapl_msft_5min_synthetic.json"


def test_missing_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(CassetteNotFound, match="record it first"):
        ReplayAdapter(tmp_path / "nope.json")


def test_unknown_request_names_itself() -> None:
    session, adapter = replay_session(SHIPPED)
    assert adapter.interactions > 100
    with pytest.raises(CassetteMiss, match=r"GET /v1/api/iserver/secdef/search\?symbol=ZZZZ"):
        session.get("https://127.0.0.1:1/v1/api/iserver/secdef/search?symbol=ZZZZ", timeout=1)


def test_session_endpoints_repeat_and_polls_do_not() -> None:
    session, _ = replay_session(SHIPPED)
    url = "https://localhost:9/v1/api/iserver/auth/status"
    answers = [session.post(url, json={}, timeout=1) for _ in range(5)]
    assert all(r.status_code == 200 and r.json()["authenticated"] for r in answers)
    history = next(
        i["request"]
        for i in read_cassette_dict(SHIPPED)["interactions"]
        if "/marketdata/history" in i["request"]["uri"]
    )
    assert session.get(history["uri"], timeout=1).json()["data"]
    with pytest.raises(CassetteMiss, match="recorded fewer times"):
        session.get(history["uri"], timeout=1)


class ReplayCount(bt.Strategy):  # type: ignore[misc]
    def __init__(self) -> None:
        self.bars = 0
        self.patched_during_run: bool | None = None

    def next(self) -> None:
        self.bars += 1
        if self.patched_during_run is None:
            self.patched_during_run = active_cassette() is not None


def test_store_replays_without_patching_http() -> None:
    """The store serves a stored cassette through its own session's adapter: no process-wide
    vcrpy patch (which cost a lock per request and a re-scrub of every interaction)."""
    IBKRCPStore._reset()
    store = IBKRCPStore(cassette=str(SHIPPED))
    data = store.getdata(
        dataname="AAPL",
        timeframe=bt.TimeFrame.Minutes,
        compression=5,
        fromdate=dt.datetime(2024, 1, 2),
        todate=dt.datetime(2024, 4, 1),
        historical=True,
        tz="UTC",
    )
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.addstrategy(ReplayCount)
    (strategy,) = cerebro.run()
    IBKRCPStore._reset()
    assert strategy.bars == 4992
    assert strategy.patched_during_run is False
    assert requests.Session().get_adapter("https://x/").__class__.__name__ == "HTTPAdapter"
