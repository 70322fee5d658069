"""``ibkr-cp bars -o FILE`` writes what FILE says or refuses before downloading anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.cli.cli_process import ibkr_cp

DATES = ("--from", "2024-03-04", "--to", "2024-03-05")


@pytest.mark.parametrize("name", ("x.xlsx", "x.json", "x"))
def test_an_unsupported_output_type_is_refused_listing_the_supported_ones(
    name: str, tmp_path: Path, closed_port: int
) -> None:
    out = tmp_path / name
    gateway = f"https://127.0.0.1:{closed_port}"  # nothing may be downloaded
    result = ibkr_cp("bars", "AAPL", *DATES, "-o", str(out), "--gateway", gateway)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "cannot write" in result.stderr and ".csv or .parquet" in result.stderr
    assert not out.exists()


def test_an_output_folder_that_does_not_exist_is_refused_not_created(
    tmp_path: Path, closed_port: int
) -> None:
    folder = tmp_path / "no" / "such"
    gateway = f"https://127.0.0.1:{closed_port}"
    result = ibkr_cp("bars", "AAPL", *DATES, "-o", str(folder / "x.csv"), "--gateway", gateway)
    assert result.returncode == 2
    assert f"the folder {folder} does not exist" in result.stderr
    assert "mkdir -p" in result.stderr
    assert not (tmp_path / "no").exists()


def test_csv_in_an_existing_folder_is_written(sim: GatewaySimulator, tmp_path: Path) -> None:
    out = tmp_path / "aapl.CSV"
    result = ibkr_cp("bars", "AAPL", *DATES, "-o", str(out), "--gateway", sim.url)
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 1 + 78
