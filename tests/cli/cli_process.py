"""Run ``ibkr-cp`` the way the README shows: the installed console script, in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The console script installed next to this interpreter.
IBKR_CP = str(Path(sys.executable).with_name("ibkr-cp"))


def ibkr_cp(
    *args: str, timeout: float = 90.0, cwd: str | Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``ibkr-cp ARGS...``: its exit code, stdout and stderr (text). ``$IBKR_GATEWAY_URL`` is
    removed so only ``--gateway`` names a gateway."""
    env = {k: v for k, v in os.environ.items() if k != "IBKR_GATEWAY_URL"}
    return subprocess.run(
        [IBKR_CP, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        check=False,
    )
