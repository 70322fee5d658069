"""``ibkr-cp demo --cassette FILE`` with a corrupt or empty FILE: one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.cli_process import ibkr_cp

BUNDLED = Path(__file__).parents[2] / "cassettes" / "aapl_msft_5min_synthetic.json"


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (BUNDLED.read_bytes()[:5000], "is not valid JSON"),
        (b"", "is empty (0 bytes)"),
        (b"{}", "is JSON without an 'interactions' list"),
    ],
    ids=["truncated", "empty", "empty object"],
)
def test_the_cli_says_which_file_and_what_to_do(content: bytes, said: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    result = ibkr_cp("demo", "--cassette", str(path), "--live-bars", "0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: cassette {path} {said}")
    assert f"ibkr-cp record --cassette {path}" in result.stderr
    assert "unexpected" not in result.stderr
