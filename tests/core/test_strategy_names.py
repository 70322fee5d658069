"""backtrader registers the line classes of every Strategy subclass in one module namespace
by the class's name, so two strategies of one name in one process cannot both be pickled
(``cerebro.optstrategy`` with several workers fails with "it's not the same object as ...").
Every strategy the project defines (package, tests, benchmarks, examples) has its own name."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("backtrader_ibkr_cp", "tests", "bench", "examples")


def strategy_classes() -> dict[str, list[str]]:
    """Class name -> where classes of that name deriving from a ``...Strategy`` are."""
    found: dict[str, list[str]] = defaultdict(list)
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = [ast.unparse(base) for base in node.bases]
                if any(base.endswith("Strategy") for base in bases):
                    found[node.name].append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_strategy_class_has_its_own_name() -> None:
    found = strategy_classes()
    assert len(found) > 10  # the scan sees the project's strategies
    clashes = {name: places for name, places in found.items() if len(places) > 1}
    assert clashes == {}
