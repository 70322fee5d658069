"""``ibkr-cp bars ... | head``: the reader going away ends the command quietly."""

from __future__ import annotations

import subprocess
from pathlib import Path

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.cli.cli_process import IBKR_CP


def test_bars_into_a_pipe_closed_early_exits_quietly(sim: GatewaySimulator, tmp_path: Path) -> None:
    # About 9,000 one-minute bars (~650 KB of CSV): far more than a pipe holds, so the
    # command is still writing when the reader (like `head -1`) closes its end.
    argv = [IBKR_CP, "bars", "AAPL", "--bar", "1min", "--from", "2024-02-01", "--to",
            "2024-03-06", "--gateway", sim.url]  # fmt: skip
    errors = tmp_path / "stderr.txt"
    with open(errors, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "datetime,open,high,low,close,volume\n"
        proc.stdout.close()
        code = proc.wait(timeout=90)
    assert errors.read_text(encoding="utf-8") == ""
    assert code == 141  # 128 + SIGPIPE, like any Unix tool whose reader went away
