"""``ibkr-cp simulate --behind-real-gateway``: IBKR's real gateway (Java) in front of the
simulator, and ``ibkr-cp status``/``bars`` through it. Marked ``gateway`` (needs Java; the
gateway comes from npm, cached)."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from backtrader_ibkr_cp.cli import main
from backtrader_ibkr_cp.cli.simulate_cmd import serve_simulator
from tests.cli.cli_process import IBKR_CP

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


def _java_children(parent: int) -> list[int]:
    """Pids of the IBKR gateway processes (Java, main class GatewayStart) whose parent is
    ``parent``, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state
        if ppid == parent and b"GatewayStart" in cmdline:
            found.append(int(entry.name))
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_termination_signal_stops_the_java_gateway_and_removes_its_folder(
    signum: signal.Signals, tmp_path: Path
) -> None:
    argv = [IBKR_CP, "simulate", "--behind-real-gateway", "--port", "0", "--speed", "0",
            "--start", "2024-03-06T15:00:00Z"]  # fmt: skip
    errors = tmp_path / "stderr.txt"
    java, workdir = 0, Path()
    leftover = leftover_dir = False
    with open(errors, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        banner = []
        for line in proc.stdout:  # until it says it serves
            banner.append(line)
            if line.startswith("press Ctrl-C"):
                break
        assert banner and banner[-1].startswith("press Ctrl-C"), errors.read_text()
        [java] = _java_children(proc.pid)
        workdir = Path(os.readlink(f"/proc/{java}/cwd")).parent
        assert workdir.name.startswith("ibkr-gw-") and workdir.is_dir()
        said = "".join(banner)
        assert f"Java pid {java} in {workdir}" in said
        assert "forwarding to the gateway simulator at http://127.0.0.1:" in said
        proc.send_signal(signum)  # as `timeout`, `docker stop` or systemd would
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        leftover = bool(java) and _group_alive(java)
        if leftover:  # the defect: do not leave it running after the test
            with contextlib.suppress(ProcessLookupError):
                os.killpg(java, signal.SIGKILL)
        if workdir.name.startswith("ibkr-gw-"):
            leftover_dir = workdir.is_dir()
            shutil.rmtree(workdir, ignore_errors=True)
    assert not leftover, f"IBKR's Java gateway (pid {java}) outlived ibkr-cp"
    assert not leftover_dir, f"{workdir} was left behind"
    assert code == 0, errors.read_text()
    assert errors.read_text() == ""
