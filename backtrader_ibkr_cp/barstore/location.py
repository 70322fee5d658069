"""Where the bar store lives when nobody says: ``$IBKR_CP_BAR_STORE``, else the user's data
folder. Reading the environment happens here, when asked, never at import time.

Defaults (a *data* folder, not a cache: bars took hours of paced requests to fetch):

- Linux and other POSIX: ``$XDG_DATA_HOME/backtrader_ibkr_cp/bars``, where ``XDG_DATA_HOME``
  defaults to ``~/.local/share``
- macOS: ``~/Library/Application Support/backtrader_ibkr_cp/bars``
- Windows: ``%LOCALAPPDATA%\\backtrader_ibkr_cp\\bars``
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["APP_DIR", "ENV_BAR_STORE", "default_location"]

#: Environment variable naming the bar store (a folder or a URI such as ``s3://bucket/bars``).
ENV_BAR_STORE = "IBKR_CP_BAR_STORE"
#: The folder name under the user's data folder.
APP_DIR = "backtrader_ibkr_cp"


def default_location(environ: Mapping[str, str] | None = None, platform: str | None = None) -> str:
    """``$IBKR_CP_BAR_STORE`` if set and not empty, else the platform's user data folder
    (see the module docstring). ``environ`` defaults to ``os.environ``, ``platform`` to
    ``sys.platform``."""
    env = os.environ if environ is None else environ
    chosen = env.get(ENV_BAR_STORE, "").strip()
    if chosen:
        return chosen
    system = platform or sys.platform
    home = Path(env.get("HOME") or Path.home())
    if system == "win32":
        base = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif system == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_DATA_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else home / ".local" / "share"
    return str(base / APP_DIR / "bars")
