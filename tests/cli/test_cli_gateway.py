"""``ibkr-cp status``, ``search``, ``bars`` and ``record`` in-process against the simulator."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from backtrader_ibkr_cp.cassettes import read_metadata
from backtrader_ibkr_cp.cli import main
from backtrader_ibkr_cp.simulator import GatewaySimulator


def test_status_reports_a_healthy_session_and_market_data(
    sim: GatewaySimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--gateway", sim.url]) == 0
    out = capsys.readouterr().out
    assert f"{sim.url}/v1/api: answering" in out
    assert "authenticated  yes" in out and "competing      no" in out
    assert "market data    AAPL (265598): real time" in out


def test_status_of_an_unreachable_gateway_is_one_line_saying_what_to_do(
    closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["status", "--gateway", f"https://127.0.0.1:{closed_port}"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert f"127.0.0.1:{closed_port}" in err and "is the gateway running" in err
    assert "Traceback" not in err


def test_debug_adds_the_traceback(closed_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--debug", "status", "--gateway", f"https://127.0.0.1:{closed_port}"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("error: ")


def test_search_lists_every_listing(
    sim: GatewaySimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "AAPL", "--gateway", sim.url]) == 0
    out = capsys.readouterr().out
    for conid, exchange in (("265598", "NASDAQ"), ("38708077", "MEXI"), ("273982664", "EBS")):
        assert any(conid in line and exchange in line for line in out.splitlines())


def test_search_for_an_unknown_symbol_is_a_clear_error(
    sim: GatewaySimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "NOSUCHSYM", "--gateway", sim.url]) == 2
    assert capsys.readouterr().err == (
        "error: no contract matches 'NOSUCHSYM'; check the symbol (e.g. AAPL, BRK B)\n"
    )


def test_bars_writes_the_ground_truth_as_csv(
    sim: GatewaySimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "aapl.csv"
    argv = ["bars", "AAPL", "--bar", "15min", "--from", "2024-02-26", "--to", "2024-03-02"]
    assert main([*argv, "--gateway", sim.url, "--output", str(out)]) == 0
    truth = sim.truth(
        "AAPL",
        "15min",
        datetime(2024, 2, 26, tzinfo=timezone.utc),
        datetime(2024, 3, 2, tzinfo=timezone.utc),
    )
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(truth) == 5 * 26
    for row, bar in zip(rows, truth, strict=True):
        assert datetime.fromisoformat(row["datetime"]) == bar.timestamp
        assert [float(row[k]) for k in ("open", "high", "low", "close", "volume")] == [
            bar.open, bar.high, bar.low, bar.close, bar.volume
        ]  # fmt: skip
    assert f"AAPL 15min: {len(truth)} bars -> {out}" in capsys.readouterr().err


def test_bars_to_stdout(sim: GatewaySimulator, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bars", "MSFT", "--bar", "1h", "--from", "2024-03-04", "--to", "2024-03-05"]
    assert main([*argv, "--gateway", sim.url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "datetime,open,high,low,close,volume"
    assert len(lines) == 1 + 7  # 09:30, 10:00, 11:00, ... 15:00 New York
    assert lines[1].startswith("2024-03-04T14:30:00+00:00,")


def test_record_writes_a_replayable_cassette_with_its_run(
    sim: GatewaySimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rec.json"
    argv = ["record", "--cassette", str(path), "AAPL", "--bar", "1h", "--client",
            "--from", "2024-03-04", "--to", "2024-03-06", "--gateway", sim.url]  # fmt: skip
    assert main(argv) == 0
    assert "AAPL 14 bars" in capsys.readouterr().out
    meta = read_metadata(path)
    assert meta["symbols"] == ["AAPL"] and meta["bar"] == "1h"
    # --from 2024-03-04 is midnight in New York (EST), stored as UTC
    assert meta["from"] == "2024-03-04T05:00:00+00:00" and meta["recorded_with"] == "client"
    assert len(json.loads(path.read_text())["interactions"]) >= 3
    assert not list(tmp_path.glob(".rec.json.recording-*"))  # no temporary file left


def test_a_failed_recording_leaves_no_file(
    closed_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rec.json"
    argv = ["record", "--cassette", str(path), "AAPL", "--client", "--from", "2024-03-04",
            "--to", "2024-03-06", "--gateway", f"https://127.0.0.1:{closed_port}"]  # fmt: skip
    assert main(argv) == 1
    assert not path.exists() and not list(tmp_path.iterdir())
    assert capsys.readouterr().err.count("\n") == 1


def test_record_through_the_store_replays_the_same_backtest(
    sim: GatewaySimulator, tmp_path: Path
) -> None:
    from backtrader_ibkr_cp.bt.backtest import run_backtest

    path = tmp_path / "store.json"
    start = datetime(2024, 2, 26, tzinfo=timezone.utc)
    end = datetime(2024, 3, 6, tzinfo=timezone.utc)
    argv = ["record", "--cassette", str(path), "AAPL", "MSFT", "--bar", "30min",
            "--from", "2024-02-26", "--to", "2024-03-06", "--gateway", sim.url]  # fmt: skip
    assert main(argv) == 0
    assert read_metadata(path)["recorded_with"] == "store"
    sim.stop()
    replayed = run_backtest(["AAPL", "MSFT"], "30min", start, end, cassette=path)
    for symbol in ("AAPL", "MSFT"):
        half_hour = timedelta(minutes=30)  # bars are stamped at their end
        truth = [(t.timestamp + half_hour, t.close) for t in sim.truth(symbol, "30min", start, end)]
        assert [(b[0], b[4]) for b in replayed.bars[symbol]] == truth


def test_a_store_recording_without_bars_fails_and_leaves_no_file(
    sim: GatewaySimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "none.json"
    argv = ["record", "--cassette", str(path), "NOSUCHSYM", "--from", "2024-03-04",
            "--to", "2024-03-05", "--gateway", sim.url]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no STK contract for 'NOSUCHSYM'") and err.count("\n") == 1
    assert not list(tmp_path.iterdir())
