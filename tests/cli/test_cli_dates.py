"""``--from``/``--to`` without a zone are exchange time, as the feed's fromdate/todate."""

from __future__ import annotations

from pathlib import Path

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.cli.cli_process import ibkr_cp


def _stamps(csv_text: str) -> list[str]:
    return [line.split(",", 1)[0] for line in csv_text.splitlines()[1:]]


def test_a_date_time_without_a_zone_is_new_york_time_for_a_us_stock(
    sim: GatewaySimulator,
) -> None:
    # 14:00-16:00 New York (EST) is 19:00-21:00 UTC: the last two hours of the session.
    span = ("--from", "2024-03-04T14:00", "--to", "2024-03-04T16:00")
    result = ibkr_cp("bars", "AAPL", "--bar", "5min", *span, "--gateway", sim.url)
    assert result.returncode == 0, result.stderr
    stamps = _stamps(result.stdout)
    assert len(stamps) == 24
    assert stamps[0] == "2024-03-04T19:00:00+00:00"
    assert stamps[-1] == "2024-03-04T20:55:00+00:00"


def test_a_zone_or_offset_is_kept(sim: GatewaySimulator) -> None:
    span = ("--from", "2024-03-04T14:00Z", "--to", "2024-03-04T10:00-05:00")
    result = ibkr_cp("bars", "AAPL", "--bar", "5min", *span, "--gateway", sim.url)
    assert result.returncode == 0, result.stderr
    stamps = _stamps(result.stdout)
    assert stamps == ["2024-03-04T14:30:00+00:00", "2024-03-04T14:35:00+00:00",
                      "2024-03-04T14:40:00+00:00", "2024-03-04T14:45:00+00:00",
                      "2024-03-04T14:50:00+00:00", "2024-03-04T14:55:00+00:00"]  # fmt: skip


def test_the_help_says_which_zone_a_date_is_in() -> None:
    for command in ("bars", "record"):
        text = " ".join(ibkr_cp(command, "--help").stdout.split())
        assert (
            "without Z or an offset it is the exchange's local time (New York for US stocks)"
            in text
        )


def test_symbols_in_different_zones_need_an_explicit_offset(
    sim: GatewaySimulator, tmp_path: Path
) -> None:
    cassette = tmp_path / "two.json"
    result = ibkr_cp(
        "record", "--cassette", str(cassette), "AAPL", "AAPL-STK-EBS",
        "--from", "2024-03-04", "--to", "2024-03-05", "--gateway", sim.url,
    )  # fmt: skip
    assert result.returncode == 2
    assert "different time zones" in result.stderr
    assert "America/New_York" in result.stderr and "Europe/Zurich" in result.stderr
    assert not cassette.exists()
