"""``ibkr-cp store fill | ls | export`` and ``bars --store`` against the gateway simulator.

The simulator's clock is frozen on a Saturday, so every bar of the weeks before is complete;
``--from``/``--to`` without a zone are New York time, as everywhere in ``ibkr-cp``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest

from backtrader_ibkr_cp import Bar, BarStore
from backtrader_ibkr_cp.barstore import Span, fill
from backtrader_ibkr_cp.cli import main
from backtrader_ibkr_cp.cli.common import make_client
from backtrader_ibkr_cp.cli.store_cmds import REQUESTS_PER_PIECE, _splitter
from backtrader_ibkr_cp.history.planner import minimum_requests
from backtrader_ibkr_cp.models import Timeframe
from backtrader_ibkr_cp.simulator import GatewaySimulator

NEW_YORK = ZoneInfo("America/New_York")
SATURDAY = datetime(2024, 3, 9, 12, tzinfo=timezone.utc)
HISTORY = "/iserver/marketdata/history"
FROM, TO = "2024-02-19", "2024-03-09"  # three weeks, 15 sessions


def ny(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=NEW_YORK)


def rows(bars: list[Bar]) -> list[tuple[object, ...]]:
    return [(b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in bars]


def truth(
    sim: GatewaySimulator, symbol: str, start: str = FROM, end: str = TO
) -> list[tuple[object, ...]]:
    return [
        (b.timestamp, b.open, b.high, b.low, b.close, b.volume)
        for b in sim.truth(symbol, "5min", ny(start), ny(end))
    ]


@pytest.fixture
def sim(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sim_factory: Callable[..., GatewaySimulator],
) -> GatewaySimulator:
    monkeypatch.delenv("IBKR_GATEWAY_URL", raising=False)
    monkeypatch.setenv("IBKR_CP_BAR_STORE", str(tmp_path / "env-store"))
    return sim_factory(seed=11, speed=0.0, start=SATURDAY)


def fill_argv(sim: GatewaySimulator, store: Path, *symbols: str, end: str = TO) -> list[str]:
    return ["store", "fill", *symbols, "--bar", "5min", "--from", FROM, "--to", end,
            "--store", str(store), "--gateway", sim.url]  # fmt: skip


def test_fill_stores_the_ground_truth_and_a_second_fill_asks_nothing(
    sim: GatewaySimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path = tmp_path / "bars"
    assert main(fill_argv(sim, store_path, "AAPL", "IBM")) == 0
    fetched = sim.stats.requests[HISTORY]
    assert fetched == 2 * minimum_requests("5min", ny(FROM), ny(TO)) == 2 * 15
    assert sim.stats.rate_limited == 0
    err = capsys.readouterr().err
    assert f"AAPL 5min: 2 spans fetched, 1170 bars held -> {store_path}" in err

    store = BarStore(store_path)
    for symbol in ("AAPL", "IBM"):
        stored = store.read(symbol, "5min", ny(FROM), ny(TO))
        assert rows(stored) == truth(sim, symbol)
        assert len(stored) == 15 * 78
        assert all(b.timestamp.tzinfo is timezone.utc for b in stored)

    assert main(fill_argv(sim, store_path, "AAPL", "IBM")) == 0
    assert sim.stats.requests[HISTORY] == fetched  # not one more history request
    assert "AAPL 5min: nothing to fetch, 1170 bars held" in capsys.readouterr().err


def test_extending_the_range_fetches_only_the_new_sessions(
    sim: GatewaySimulator, tmp_path: Path
) -> None:
    store_path = tmp_path / "bars"
    assert main(fill_argv(sim, store_path, "MSFT", end="2024-03-02")) == 0
    first = sim.stats.requests[HISTORY]
    assert first == 10
    assert main(fill_argv(sim, store_path, "MSFT")) == 0
    assert sim.stats.requests[HISTORY] - first == 5  # the week of 2024-03-04 only
    assert rows(BarStore(store_path).read("MSFT", "5min")) == truth(sim, "MSFT")


def test_an_interrupted_fill_keeps_its_pieces_and_the_next_run_continues(
    sim: GatewaySimulator, tmp_path: Path
) -> None:
    """Ctrl-C during the third piece: the two pieces written stay; ``store fill`` then asks
    only for the rest."""
    store = BarStore(tmp_path / "bars")
    client = make_client(_Args(sim.url))
    tf = Timeframe.MINUTE_5
    contract = client.resolve("AAPL")
    calls: list[Span] = []

    def fetch(piece: Span) -> list[Bar]:
        calls.append(piece)
        if len(calls) == 3:
            raise KeyboardInterrupt
        bars: list[Bar] = client.fetch_bars(contract, tf, piece.start, piece.end)
        return bars

    span = (ny("2024-02-05"), ny(TO))  # 25 sessions: pieces of 8, 8, 8, 1 requests
    try:
        with pytest.raises(KeyboardInterrupt):
            fill(store, contract, tf, *span, fetch, now=SATURDAY, split=_splitter(tf, False))
    finally:
        client.close()
    assert sim.stats.requests[HISTORY] == 2 * REQUESTS_PER_PIECE
    assert store.coverage("AAPL", tf) == [Span(calls[0].start, calls[1].end)]

    argv = ["store", "fill", "AAPL", "--from", "2024-02-05", "--to", TO,
            "--store", str(tmp_path / "bars"), "--gateway", sim.url]  # fmt: skip
    assert main(argv) == 0
    assert sim.stats.requests[HISTORY] == 25  # 16 before the interruption, 9 now
    assert rows(store.read("AAPL", tf)) == truth(sim, "AAPL", "2024-02-05")


class _Args:
    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.verify = None


def test_ls_export_and_a_fully_covered_read_need_no_gateway(
    sim: GatewaySimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path = tmp_path / "bars"
    assert main(fill_argv(sim, store_path, "AAPL")) == 0
    expected = truth(sim, "AAPL")
    week = truth(sim, "AAPL", "2024-03-04", TO)
    sim.stop()
    capsys.readouterr()

    store = BarStore(store_path)
    assert store.contract("AAPL").conid == 265598  # from the store: no secdef search
    assert rows(store.read("AAPL", "5min", ny(FROM), ny(TO))) == expected
    assert store.missing("AAPL", "5min", ny(FROM), ny(TO), now=SATURDAY) == []

    assert main(["store", "ls", "--store", str(store_path), "--spans"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["symbol", "conid", "bar", "hours", "bars", "spans", "from",
                              "(UTC)", "to", "(UTC)"]  # fmt: skip
    assert out[2].split() == ["AAPL", "265598", "5min", "rth", "1170", "1", "2024-02-19",
                              "05:00", "2024-03-09", "05:00"]  # fmt: skip
    assert "  2024-02-19 05:00 -> 2024-03-09 05:00" in out
    assert out[-1] == f"store: {store_path}"

    csv_path = tmp_path / "aapl.csv"
    argv = ["store", "export", "AAPL", "--bar", "5min", "--from", "2024-03-04", "--to", TO,
            "--store", str(store_path), "-o", str(csv_path)]  # fmt: skip
    assert main(argv) == 0
    assert f"AAPL 5min: {len(week)} bars -> {csv_path}" in capsys.readouterr().err
    with open(csv_path, newline="") as handle:
        got = [
            (datetime.fromisoformat(r["datetime"]),
             *(float(r[k]) for k in ("open", "high", "low", "close", "volume")))
            for r in csv.DictReader(handle)
        ]  # fmt: skip
    assert got == week

    parquet_path = tmp_path / "aapl.parquet"
    argv = ["store", "export", "AAPL", "--store", str(store_path), "-o", str(parquet_path)]
    assert main(argv) == 0
    table = pq.read_table(parquet_path)
    assert table.column_names == ["datetime", "open", "high", "low", "close", "volume"]
    exported = list(zip(*(table.column(n).to_pylist() for n in table.column_names), strict=True))
    assert [(t.astimezone(timezone.utc), *rest) for t, *rest in exported] == expected


def test_export_of_what_the_store_does_not_hold_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["store", "export", "AAPL", "--store", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the bar store") and "holds no contract for 'AAPL" in err
    assert main(["store", "ls", "--store", str(tmp_path)]) == 0
    assert "is empty; fill it with `ibkr-cp store fill" in capsys.readouterr().out


def test_bars_through_the_store_reads_what_it_holds_and_fetches_the_rest(
    sim: GatewaySimulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path = tmp_path / "bars"
    out = tmp_path / "ibm.csv"
    argv = ["bars", "IBM", "--bar", "5min", "--from", "2024-03-04", "--to", TO,
            "--store", str(store_path), "--gateway", sim.url, "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert sim.stats.requests[HISTORY] == 5
    assert rows(BarStore(store_path).read("IBM", "5min")) == truth(sim, "IBM", "2024-03-04")
    first = out.read_text()
    assert main(argv) == 0
    assert sim.stats.requests[HISTORY] == 5  # all held: nothing fetched
    assert out.read_text() == first
    assert f"IBM 5min: {5 * 78} bars -> {out}" in capsys.readouterr().err


def test_the_default_store_is_the_environment_variable(
    sim: GatewaySimulator, tmp_path: Path
) -> None:
    argv = ["store", "fill", "KO", "--from", "2024-03-04", "--to", TO, "--gateway", sim.url]
    assert main(argv) == 0
    assert len(BarStore(tmp_path / "env-store").read("KO", "5min")) == 5 * 78


def test_refresh_fetches_held_spans_again(sim: GatewaySimulator, tmp_path: Path) -> None:
    store_path = tmp_path / "bars"
    argv = fill_argv(sim, store_path, "AAPL", end="2024-02-24")
    assert main(argv) == 0 and sim.stats.requests[HISTORY] == 5
    assert main([*argv, "--refresh"]) == 0 and sim.stats.requests[HISTORY] == 10
    assert rows(BarStore(store_path).read("AAPL", "5min")) == truth(sim, "AAPL", FROM, "2024-02-24")


def test_store_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store"]) == 2
    assert "ibkr-cp store: error: the following arguments are required: ACTION" in (
        capsys.readouterr().err
    )
    assert main(["store", "fill", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--gateway URL" in text and "--store PATH" in text and "IBKR_CP_BAR_STORE" in text
    assert main(["store", "fill", "AAPL", "--from", "2024-03-02", "--to", "2024-03-01"]) == 2
    assert "is not after --from" in capsys.readouterr().err
    assert main(["store", "export", "AAPL", "-o", "x.txt"]) == 2
    assert "cannot write '.txt' files" in capsys.readouterr().err
