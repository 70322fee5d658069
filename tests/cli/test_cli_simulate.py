"""``ibkr-cp simulate`` serves a usable gateway; the progress bar draws on a terminal."""

from __future__ import annotations

import io
import re

import pytest

from backtrader_ibkr_cp.cli import main
from backtrader_ibkr_cp.cli.common import Progress
from backtrader_ibkr_cp.cli.simulate_cmd import serve_simulator
from backtrader_ibkr_cp.gateway import GatewayClient


def test_simulate_serves_a_gateway_until_stopped(no_thread_leak: None) -> None:
    out = io.StringIO()
    seen: dict[str, object] = {}

    def wait() -> None:  # stands in for "until Ctrl-C": use the gateway, then return
        url = re.search(r"serving (\S+)/v1/api", out.getvalue())
        assert url is not None
        with GatewayClient(url.group(1)) as client:
            seen["healthy"] = client.health_check()
            seen["conids"] = [c.contract_id for c in client.search_contract("MSFT")]
        raise KeyboardInterrupt  # as Ctrl-C would

    code = serve_simulator(
        port=0, tls=True, speed=1.0, start=None, seed=4, behind_real_gateway=False,
        out=out, wait=wait,
    )  # fmt: skip
    assert code == 0
    assert seen == {"healthy": True, "conids": [272093]}
    assert "try: ibkr-cp status --gateway https://127.0.0.1:" in out.getvalue()


def test_simulate_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--port", "70000"]) == 2
    assert capsys.readouterr().err == (
        "error: --port 70000 is not a port; use 0-65535 (0 = any free port)\n"
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_in_place_on_a_terminal_and_summarises_anywhere() -> None:
    tty = _Terminal()
    progress = Progress("AAPL 5min", 4, tty)
    progress.step()
    progress.step()
    progress.done("AAPL 5min: 156 bars -> stdout")
    text = tty.getvalue()
    assert "\rAAPL 5min [###############...............] 2/4 requests" in text
    assert text.endswith("AAPL 5min: 156 bars -> stdout (0.0 s)\n")

    pipe = io.StringIO()
    quiet = Progress("AAPL 5min", 4, pipe)
    quiet.step()
    quiet.done("done")
    assert pipe.getvalue().startswith("done (")
