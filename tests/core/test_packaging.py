"""Packaging metadata that setuptools reads without deprecation warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def test_license_is_an_spdx_expression_with_a_setuptools_that_reads_it() -> None:
    # A TOML table (license = {text = "MIT"}) makes setuptools print ~50 lines of
    # deprecation warnings on every `pip install -e .`; an SPDX string needs setuptools>=77.
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    assert data["project"]["license"] == "MIT"
    requires = [Requirement(r) for r in data["build-system"]["requires"]]
    setuptools = next(r for r in requires if r.name == "setuptools")
    assert not setuptools.specifier.contains("76.9")
    assert setuptools.specifier.contains("77.0")
