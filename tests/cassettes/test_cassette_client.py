"""A GatewayClient records into a cassette and replays from it with the simulator stopped."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from backtrader_ibkr_cp.cassettes import Cassette, CassetteMiss
from backtrader_ibkr_cp.gateway import GatewayClient
from backtrader_ibkr_cp.simulator import GatewaySimulator

START = datetime(2024, 2, 20, tzinfo=timezone.utc)
END = datetime(2024, 3, 6, tzinfo=timezone.utc)  # ten sessions: ten concurrent windows


def _fetch(url: str, symbol: str = "AAPL", start: datetime = START) -> tuple[list[Any], int]:
    """Bars and the number of HTTP requests the client made."""
    requests_made: list[Any] = []
    with GatewayClient(url) as client:
        client.add_listener(lambda e: requests_made.append(e) if e.kind == "request" else None)
        client.authenticate()
        bars = client.fetch_bars(symbol, "5min", start, END)
    return bars, len(requests_made)


def test_replay_with_the_simulator_stopped_gives_the_same_bars(
    sim: GatewaySimulator, tmp_path: Path, no_thread_leak: None
) -> None:
    path = tmp_path / "aapl.json"
    truth = sim.truth("AAPL", "5min", START, END)
    with Cassette(path, record_mode="once") as cassette:
        recorded, sent = _fetch(sim.url)
        held = cassette.interactions
    assert [(b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in recorded] == [
        (t.timestamp, t.open, t.high, t.low, t.close, t.volume) for t in truth
    ]
    # every request of the concurrent fetch is in the file (none escaped the recording)
    assert held == sent == len(json.loads(path.read_text())["interactions"])
    sim.stop()

    with Cassette(path) as cassette:  # another origin: the simulator's port is gone
        replayed, _ = _fetch("https://localhost:5000")
        assert cassette.play_count >= sent
    assert replayed == recorded


def test_a_run_the_cassette_does_not_hold_raises_cassette_miss(
    sim: GatewaySimulator, tmp_path: Path
) -> None:
    path = tmp_path / "aapl.json"
    with Cassette(path, record_mode="once"):
        _fetch(sim.url)
    sim.stop()
    with pytest.raises(CassetteMiss) as caught, Cassette(path):
        _fetch("https://localhost:5000", symbol="MSFT")
    assert caught.value.method == "GET"
    assert caught.value.path == "/v1/api/iserver/secdef/search"
    assert "symbol=MSFT" in caught.value.query
