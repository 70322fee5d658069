"""``ibkr-cp demo``: the bundled cassette's backtest, then a short live run on the simulator."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from backtrader_ibkr_cp.cli import main
from backtrader_ibkr_cp.cli.demo_cmd import find_bundled_cassette
from tests.cli.cli_process import ibkr_cp


def test_demo_backtests_the_bundled_cassette_then_paper_trades_live(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_thread_leak: None
) -> None:
    out = tmp_path / "out"
    argv = ["demo", "--out", str(out), "--live-bars", "4", "--speed", "300", "--timeout", "60"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    rows = {line.split("  ")[0]: line for line in text.splitlines()}
    assert "backtest (cassette)" in rows and "live paper (simulator)" in rows
    assert rows["backtest (cassette)"].split()[2] == "9984"  # two symbols x 64 sessions x 78
    with open(out / "demo_backtest_equity.csv", newline="") as handle:
        equity = list(csv.DictReader(handle))
    assert len(equity) > 4900 and float(equity[0]["value"]) == pytest.approx(100_000, rel=0.01)
    assert (out / "demo_live_equity.csv").is_file()
    # The live part traded the simulated paper account through IBKRCPBroker: an order per
    # symbol at least, and the broker's cash and positions equal the account's.
    account = next(line for line in text.splitlines() if line.startswith("paper account"))
    sent = int(account.split("; ")[2].split()[0])
    assert sent >= 2 and "0 filled" not in account
    view = next(line for line in text.splitlines() if line.startswith("the broker's view"))
    assert view.endswith("(agrees)")
    chart = out / "demo_equity.png"
    assert f"chart: {chart}" in text or "chart: skipped (matplotlib is not installed" in text


def test_the_bundled_cassette_is_labelled_synthetic_and_small() -> None:
    path = find_bundled_cassette()
    assert "synthetic" in path.name
    meta = json.loads(path.read_text().splitlines()[0].rstrip(",") + "]}")["metadata"]
    assert meta["synthetic"] is True and meta["symbols"] == ["AAPL", "MSFT"]
    assert meta["bar"] == "5min" and meta["from"] < "2024-01-03" and meta["to"] >= "2024-04-01"
    assert path.stat().st_size < 5_000_000
    assert (path.parent / "README.md").read_text().count("SYNTHETIC") >= 1


def test_demo_with_a_cassette_that_does_not_describe_its_run(tmp_path: Path) -> None:
    bare = tmp_path / "bare.json"
    bare.write_text('{"version":1,"interactions":[\n]}\n')
    result = ibkr_cp("demo", "--cassette", str(bare), "--live-bars", "0")
    assert result.returncode == 2
    err = result.stderr
    assert err.count("\n") == 1 and f"the cassette {bare} does not describe its run" in err
    # it points at what exists: a recording command, not options demo does not have
    assert f"ibkr-cp record --cassette {bare} SYMBOL... --bar" in err
    assert "explicitly" not in err
