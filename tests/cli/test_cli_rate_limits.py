"""``ibkr-cp`` and IBKR's pacing: commands run back to back share one budget, and a rate
limited command answers at once with one line instead of waiting out the penalty box.

The commands run as real processes (``python -m backtrader_ibkr_cp.cli``) against a simulator
in this process; ``$IBKR_CP_PACING_DIR`` points them at this test's own ledger folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backtrader_ibkr_cp.cli import main
from backtrader_ibkr_cp.simulator import GatewaySimulator, SimLimits
from tests.support.instants import WEDNESDAY_EVENING

HISTORY = "/iserver/marketdata/history"
#: A safety net against a command that hangs (before the fix: ten minutes), not a timing
#: assertion.
COMMAND_TIMEOUT = 90.0
#: A week of 1-minute bars: six history windows, four at a time.
WEEK = ["--bar", "1min", "--from", "2024-02-27", "--to", "2024-03-06"]
#: Three weeks of 1-minute bars: 17 history windows, paced at 10 requests/s to the end.
WEEKS = ["--bar", "1min", "--from", "2024-02-12", "--to", "2024-03-06"]

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="shared pacing uses fcntl.flock (POSIX)"
)


def ibkr_cp(pacing_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IBKR_CP_PACING_DIR": str(pacing_dir)}
    env.pop("IBKR_GATEWAY_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "backtrader_ibkr_cp.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )


def test_four_commands_back_to_back_never_provoke_a_429(
    sim: GatewaySimulator, tmp_path: Path
) -> None:
    """A regression: each command paced itself, so a command starting within a second of the
    previous one's requests went over 10 requests/s and got HTTP 429 (and, waiting out the
    penalty box, ran for ten minutes). Before the fix the first ``bars`` after ``search``
    got a 429 in 3 of 4 runs here."""
    folder = tmp_path / "pacing"
    commands = [
        ["status", "--gateway", sim.url],
        ["search", "AAPL", "--gateway", sim.url],
        ["bars", "AAPL", *WEEKS, "-o", str(tmp_path / "aapl.csv"), "--gateway", sim.url],
        ["bars", "MSFT", *WEEKS, "-o", str(tmp_path / "msft.csv"), "--gateway", sim.url],
    ]
    for command in commands:
        done = ibkr_cp(folder, tmp_path, *command)
        assert done.returncode == 0, done.stderr
    assert sim.stats.rate_limited == 0
    assert sim.stats.requests[HISTORY] == 2 * 17
    assert (tmp_path / "msft.csv").read_text().count("\n") > 5000


def test_a_rate_limited_command_answers_at_once_in_one_line(tmp_path: Path) -> None:
    """The gateway throttles history above 2 in flight (it may, below IBKR's documented 5):
    of the four windows sent, two are answered 429 (while the other two are still being
    answered) and the two windows queued behind them fail at once instead of waiting ten
    minutes (before: the command exited after 600 s); the next command sends nothing while
    the penalty lasts."""
    folder = tmp_path / "pacing"
    limits = SimLimits(history_concurrency=2)
    with GatewaySimulator(
        seed=3, speed=0.0, start=WEDNESDAY_EVENING, limits=limits, penalty_seconds=600
    ) as sim:
        sim.inject("latency", 2, path=HISTORY, seconds=1.0)  # the two admitted answer late
        out = str(tmp_path / "aapl.csv")
        done = ibkr_cp(folder, tmp_path, "bars", "AAPL", *WEEK, "-o", out, "--gateway", sim.url)
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1, done.stderr
        line = done.stderr
        assert line.startswith(
            f"error: rate limited by the gateway at {sim.url} (HTTP 429, IBKR's penalty box) "
            "for 600 s more (Retry-After, about 10 min): wait that long"
        )
        assert "wait that long" in line and "close other programs using this gateway" in line
        assert sim.stats.rate_limited == 2
        assert sim.stats.requests[HISTORY] == 4  # the queued windows were never sent
        assert not Path(out).exists()

        sent = sum(sim.stats.requests.values())
        again = ibkr_cp(folder, tmp_path, "search", "AAPL", "--gateway", sim.url)
        assert again.returncode == 1
        assert again.stderr.startswith("error: rate limited by the gateway at ")
        assert again.stderr.count("\n") == 1
        assert sum(sim.stats.requests.values()) == sent  # nothing sent into the penalty box


def test_status_exits_1_when_the_gateway_is_rate_limiting(
    sim: GatewaySimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A regression: a 429 on the market-data check was printed as "unavailable" and status
    exited 0, as if the gateway were usable."""
    sim.inject("http_429", path="/iserver/marketdata/snapshot")
    assert main(["status", "--gateway", sim.url]) == 1
    captured = capsys.readouterr()
    assert "authenticated  yes" in captured.out
    assert captured.err.startswith(f"error: rate limited by the gateway at {sim.url} (HTTP 429")
    assert "for 1 s more (Retry-After)" in captured.err
    assert captured.err.count("\n") == 1
