"""Install plugin distributions for a test without touching the virtualenv (helpers).

``install_distribution(project, site)`` does what installing a wheel does, into a temporary
directory: it copies the project's packages (``src/`` layout) and writes a
``NAME-VERSION.dist-info`` folder (``METADATA``, ``entry_points.txt``) generated from the
project's ``pyproject.toml``. With that directory on ``sys.path``, ``importlib.metadata`` (and so
pluggy's ``load_setuptools_entrypoints``) discovers the distribution exactly as if pip had
installed it, while the shared virtualenv stays unchanged (other test runs in parallel never
see the plugin) and no build backend or network is needed. The fixture removes the directory
from ``sys.path``, forgets the imported modules and resets the cached plugin manager
(see conftest.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

SAMPLE_PROJECT = Path(__file__).parent / "sample_plugin"


def _entry_points_txt(groups: dict[str, dict[str, str]]) -> str:
    lines: list[str] = []
    for group, entries in groups.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in entries.items())
        lines.append("")
    return "\n".join(lines)


def write_dist_info(
    site: Path, name: str, version: str, entry_points: dict[str, dict[str, str]]
) -> Path:
    """A minimal installed-distribution record (what pip writes, minus RECORD/WHEEL)."""
    folder = site / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    (folder / "entry_points.txt").write_text(_entry_points_txt(entry_points), encoding="utf-8")
    return folder


def install_distribution(project: Path, site: Path) -> dict[str, Any]:
    """Install ``project`` (pyproject.toml + src/) into ``site``; returns its [project] table."""
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for package in (project / "src").iterdir():
        if package.is_dir() and (package / "__init__.py").is_file():
            shutil.copytree(package, site / package.name)
    write_dist_info(site, meta["name"], meta["version"], meta.get("entry-points", {}))
    return dict(meta)
