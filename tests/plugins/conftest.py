"""Fixtures that install plugin distributions into a temporary site directory on sys.path
(see plugin_install.py for why this instead of pip)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backtrader_ibkr_cp.plugins import ENV_ALLOW, ENV_DISABLE_AUTOLOAD, reset_plugin_manager
from tests.plugins.plugin_install import SAMPLE_PROJECT, install_distribution


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty site directory on sys.path; plugin settings from a clean environment."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.delenv(ENV_ALLOW, raising=False)
    monkeypatch.delenv(ENV_DISABLE_AUTOLOAD, raising=False)
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    reset_plugin_manager()
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        for module in [m for m in sys.modules if m.startswith("ibkr_cp_")]:
            del sys.modules[module]
        importlib.invalidate_caches()
        reset_plugin_manager()


@pytest.fixture
def sample_plugin(site: Path) -> Iterator[Any]:
    """The sample plugin distribution installed; yields its ``hooks`` module (fresh)."""
    install_distribution(SAMPLE_PROJECT, site)
    hooks = importlib.import_module("ibkr_cp_sample_plugin.hooks")
    hooks.REQUESTS.clear()
    yield hooks
