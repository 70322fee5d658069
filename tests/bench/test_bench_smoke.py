"""Smoke test of the benchmarks: each runs in a tiny configuration and prints its table.

No timing is asserted here (performance claims come only from ``bench/run_all.py``): the
tests check that every script still runs end to end against the simulator and prints a
well-formed Markdown table whose rows carry a verdict.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
HEADER = "| Benchmark | Measurement | Result | Target | Met |"


@pytest.fixture(scope="module")
def bench_modules() -> Iterator[dict[str, ModuleType]]:
    """The benchmark scripts, imported as scripts are (bench/ on sys.path)."""
    sys.path.insert(0, str(BENCH))
    try:
        import bench_backfill
        import bench_barstore
        import bench_broker
        import bench_live
        import bench_replay
        import run_all

        yield {
            "backfill": bench_backfill,
            "replay": bench_replay,
            "live": bench_live,
            "barstore": bench_barstore,
            "broker": bench_broker,
            "run_all": run_all,
        }
    finally:
        sys.path.remove(str(BENCH))


def table_rows(output: str, benchmark: str) -> list[list[str]]:
    """The data rows of the Markdown table in ``output`` (cells stripped), checked for shape."""
    lines = output.splitlines()
    assert HEADER in lines, output
    start = lines.index(HEADER)
    assert lines[start + 1] == "| --- | --- | --- | --- | --- |"
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        assert len(cells) == 5, line
        assert cells[0] == benchmark, line
        assert cells[4] in ("yes", "NO", "-"), line
        rows.append(cells)
    assert rows, output
    return rows


def smoke_rows(
    bench_modules: dict[str, ModuleType], capsys: pytest.CaptureFixture[str], benchmark: str
) -> list[list[str]]:
    """Run ``benchmark``'s ``main`` in its smoke configuration; the rows it printed."""
    assert bench_modules[benchmark].main(bench_modules["run_all"].SMOKE[benchmark]) == 0
    return table_rows(capsys.readouterr().out, benchmark)


def test_backfill_prints_its_table(
    bench_modules: dict[str, ModuleType],
    capsys: pytest.CaptureFixture[str],
    no_thread_leak: None,
) -> None:
    rows = smoke_rows(bench_modules, capsys, "backfill")
    measured = [row[1] for row in rows]
    assert any(m.startswith("history requests") for m in measured)
    assert any(m.startswith("wall time") for m in measured)
    assert any(m.startswith("ibind") for m in measured)  # a result or "ibind not installed"
    # Exactness is not a timing claim: two sessions must come back exactly as the truth.
    truth = next(row for row in rows if row[1] == "bars vs simulator ground truth")
    assert truth[4] == "yes", truth


def test_replay_prints_its_table(
    bench_modules: dict[str, ModuleType],
    capsys: pytest.CaptureFixture[str],
    no_thread_leak: None,
) -> None:
    rows = smoke_rows(bench_modules, capsys, "replay")
    same = next(row for row in rows if row[1] == "same final value and trades")
    assert same[4] == "yes", same
    assert any(row[1] == "ratio cassette / PandasData" for row in rows)


def test_live_prints_its_table(
    bench_modules: dict[str, ModuleType],
    capsys: pytest.CaptureFixture[str],
    no_thread_leak: None,
) -> None:
    rows = smoke_rows(bench_modules, capsys, "live")
    measured = " ".join(row[1] for row in rows)
    assert "snapshot requests per poll cycle, 3 feed(s)" in measured
    assert "REST requests per minute, 3 feed(s)" in measured
    assert "bar close -> next()" in measured and "WebSocket" in measured
    assert "resident memory" in measured


def test_broker_prints_its_table(
    bench_modules: dict[str, ModuleType],
    capsys: pytest.CaptureFixture[str],
    no_thread_leak: None,
) -> None:
    rows = smoke_rows(bench_modules, capsys, "broker")
    measured = [row[1] for row in rows]
    for path in ("polled order/trade lists", "WebSocket pushes"):
        assert any(m.startswith("order submit -> Accepted") and path in m for m in measured)
        assert any(m.startswith("fill -> Completed") and path in m for m in measured)


def test_barstore_prints_its_table(
    bench_modules: dict[str, ModuleType],
    capsys: pytest.CaptureFixture[str],
    no_thread_leak: None,
) -> None:
    rows = smoke_rows(bench_modules, capsys, "barstore")
    measured = " ".join(row[1] for row in rows)
    for what in ("fill an empty store", "ratio store / PandasData", "ratio cassette / PandasData"):
        assert what in measured
    # Not timing claims: the same bars and results everywhere, no request from a covered sweep.
    for what in ("same final value and trades", "sweep: no store / store", "from the store"):
        row = next(row for row in rows if what in row[1])
        assert row[4] == "yes", row


def test_run_all_writes_the_combined_table(
    bench_modules: dict[str, ModuleType],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    output = tmp_path / "latest.md"
    argv = ["--smoke", "--only", "backfill", "--output", str(output)]
    assert bench_modules["run_all"].main(argv) == 0
    printed = capsys.readouterr().out
    assert "Python " in printed and "cores" in printed
    table_rows(printed, "backfill")
    assert output.read_text(encoding="utf-8") == printed
