"""``ibkr-cp simulate --behind-real-gateway``: IBKR's real gateway (Java) in front of the
simulator, and ``ibkr-cp status``/``bars`` through it. Marked ``gateway`` (needs Java; the
gateway comes from npm, cached)."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from backtrader_ibkr_cp.cli import main
from backtrader_ibkr_cp.cli.simulate_cmd import serve_simulator

pytestmark = [
    pytest.mark.gateway,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


def test_status_and_bars_through_the_real_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    codes: dict[str, int] = {}
    csv_path = tmp_path / "bars.csv"

    def wait() -> None:
        match = re.search(r"IBKR's real gateway at (\S+), forwarding", out.getvalue())
        assert match is not None, out.getvalue()
        pin = re.search(r"--verify (sha256:\S+)", out.getvalue())
        assert pin is not None
        url = match.group(1)
        codes["status"] = main(["status", "--gateway", url, "--verify", pin.group(1)])
        codes["bars"] = main(
            ["bars", "AAPL", "--bar", "1h", "--from", "2024-03-04", "--to", "2024-03-05",
             "--gateway", url, "--output", str(csv_path)]
        )  # fmt: skip

    start = datetime(2024, 3, 6, 15, 0, tzinfo=timezone.utc)
    code = serve_simulator(
        port=0, tls=True, speed=0.0, start=start, seed=1, behind_real_gateway=True,
        out=out, wait=wait,
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0 and codes == {"status": 0, "bars": 0}, captured.err
    assert "authenticated  yes" in captured.out
    with open(csv_path, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 7
