"""``ibkr-cp`` usage: --help everywhere, exit codes, one-line errors for bad input."""

from __future__ import annotations

import pytest

import backtrader_ibkr_cp
from backtrader_ibkr_cp.cli import build_parser, main
from tests.cli.cli_process import ibkr_cp

SUBCOMMANDS = ("status", "search", "bars", "record", "simulate", "demo", "plugins")


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: ibkr-cp {command}")
    assert "--debug" in text and "--verbose" in text


@pytest.mark.parametrize("command", ("status", "search", "bars", "record"))
def test_gateway_subcommands_take_gateway_and_verify(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main([command, "--help"])
    text = capsys.readouterr().out
    assert "--gateway URL" in text and "--verify V" in text and "IBKR_GATEWAY_URL" in text


def test_no_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err


def test_a_bad_date_is_one_line_naming_the_format(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bars", "AAPL", "--from", "2024-13-01", "--to", "2024-03-01"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "'2024-13-01' is not a date; use YYYY-MM-DD" in err
    assert "ibkr-cp bars --help" in err


def test_an_unknown_bar_size_lists_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bars", "AAPL", "--bar", "7min", "--from", "2024-02-01", "--to", "2024-03-01"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "7min" in err and "5min" in err


def test_to_before_from_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bars", "AAPL", "--from", "2024-03-01", "--to", "2024-02-01"])
    err = capsys.readouterr().err
    assert code == 2 and err == (
        "error: --to 2024-02-01T00:00:00 is not after --from 2024-03-01T00:00:00; "
        "give a later --to\n"
    )


def test_parquet_without_pyarrow_is_a_clear_error_before_any_download(
    capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    pytest.importorskip("pandas")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pyarrow is installed")
    code = main(
        ["bars", "AAPL", "--from", "2024-02-01", "--to", "2024-03-01", "--output", "x.parquet",
         "--gateway", f"https://127.0.0.1:{closed_port}"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "pip install pandas pyarrow" in err and err.count("\n") == 1


def test_global_options_work_before_and_after_the_subcommand() -> None:
    parser = build_parser()
    before = parser.parse_args(["--debug", "-v", "plugins"])
    after = parser.parse_args(["plugins", "--debug", "-vv"])
    assert before.debug is True and before.verbose == 1
    assert after.debug is True and after.verbose == 2


def test_plugins_lists_the_builtin_plugin_and_feed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "builtin" in out and "ibkr_cp" in out and "ibkr_cp_register_feeds" in out


def test_gateway_url_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IBKR_GATEWAY_URL", "https://127.0.0.1:5999")
    args = build_parser().parse_args(["status"])
    assert args.gateway == "https://127.0.0.1:5999"
    monkeypatch.delenv("IBKR_GATEWAY_URL")
    assert build_parser().parse_args(["status"]).gateway == "https://localhost:5000"


def test_rate_limit_fails_at_once_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A CLI call must not sit silently in IBKR's penalty box (it used to wait 600 s)."""
    from datetime import datetime, timezone

    from backtrader_ibkr_cp.simulator import GatewaySimulator

    start = datetime(2024, 3, 5, 18, 0, 30, tzinfo=timezone.utc)
    with GatewaySimulator(seed=2, speed=0, start=start, penalty_seconds=600) as sim:
        sim.inject("http_429", count=1, path="/iserver/auth/status")
        code = main(["status", "--symbol", "", "--gateway", sim.url])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1
    assert err[0].startswith(f"error: rate limited by the gateway at {sim.url} (HTTP 429")
    assert "Retry-After" in err[0] and "close other programs using this gateway" in err[0]


def test_version_prints_the_package_version() -> None:
    result = ibkr_cp("--version")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == f"ibkr-cp {backtrader_ibkr_cp.__version__}\n"
