"""``--bar``: what the help lists is what the parser accepts, and ``1m`` is refused."""

from __future__ import annotations

import re

import pytest

from backtrader_ibkr_cp import Timeframe
from backtrader_ibkr_cp.cli import build_parser
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.cli.cli_process import ibkr_cp

DATES = ("--from", "2024-03-04", "--to", "2024-03-05")


def _listed_sizes(help_text: str) -> list[str]:
    """The bar sizes ``--bar``'s help lists, with each ``Minutes/N`` expanded."""
    text = " ".join(help_text.split())
    listed = text.split("bar size: ", 1)[1].split(" (default", 1)[0]
    sizes = re.findall(r"\b\d+(?:min|h|d|w|mo)\b|\b(?:Days|Weeks|Months)/\d+", listed)
    minutes = re.search(r"Minutes/N \(N = ([\d, ]+)\)", listed)
    assert minutes is not None, listed
    sizes += [f"Minutes/{n.strip()}" for n in minutes.group(1).split(",")]
    return sizes


@pytest.mark.parametrize("command", ("bars", "record"))
def test_every_bar_size_the_help_lists_is_accepted(command: str) -> None:
    shown = ibkr_cp(command, "--help")
    assert shown.returncode == 0
    sizes = _listed_sizes(shown.stdout)
    assert "Minutes/5" in sizes and "5min" in sizes and "1mo" in sizes
    parser = build_parser()
    extra = ["--cassette", "x.json"] if command == "record" else []
    parsed = {
        parser.parse_args([command, "AAPL", *extra, "--bar", size, *DATES]).bar for size in sizes
    }
    assert parsed == set(Timeframe)


def test_backtrader_spelling_downloads_bars(sim: GatewaySimulator) -> None:
    result = ibkr_cp("bars", "AAPL", "--bar", "Minutes/5", *DATES, "--gateway", sim.url)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 + 78


def test_1m_is_refused_as_ambiguous() -> None:
    result = ibkr_cp("bars", "AAPL", "--bar", "1m", *DATES)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "'1m' is ambiguous" in result.stderr
    assert "1min" in result.stderr and "1mo" in result.stderr


@pytest.mark.parametrize("spelling", ("1mo", "1month", "Months/1"))
def test_one_month_has_unambiguous_spellings(spelling: str) -> None:
    args = build_parser().parse_args(["bars", "AAPL", "--bar", spelling, *DATES])
    assert args.bar is Timeframe.MONTH_1
