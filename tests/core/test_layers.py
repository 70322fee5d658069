"""The package's layers, measured: no import cycle (imports inside functions count), no import
that points up, and backtrader imported only by the backtrader layer.

The layer map (low to high) is the one in docs/dev/layers.md; a module may import its own
layer and the layers below it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "backtrader_ibkr_cp"
NAME = "backtrader_ibkr_cp"

#: Low to high. A module's layer is its first dotted part below the package.
LAYERS: list[set[str]] = [
    {"errors", "wire", "version"},
    {"timing"},
    {"models", "simulator"},
    {"client"},
    {"history", "contracts", "barstore"},
    {"gateway"},
    {"live", "trading"},
    {"plugins", "cassettes"},
    {"runtime"},
    {"bt"},
    {"cli", "__init__", "__main__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path, module: str) -> set[str]:
    """Every package module ``path`` imports, at any depth (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(NAME))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith(NAME):
                continue
            for alias in node.names:  # ``from . import feed`` imports a module, not the package
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
    return found


def uses_backtrader(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and not node.level
            else []
        )
        if any(n == "backtrader" or n.startswith("backtrader.") for n in names):
            return True
    return False


FILES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
MODULES = set(FILES)


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in FILES.items():
        for target in imports(path, module):
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target != module:
                edges[module].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    return found


def test_there_is_no_import_cycle_counting_imports_inside_functions() -> None:
    assert cycles(graph()) == []


def test_every_import_points_to_the_same_layer_or_below() -> None:
    upward = []
    for module, targets in graph().items():
        for target in targets:
            here, there = layer(module), layer(target)
            # a package's own __init__ may re-export its modules
            if module == NAME and there != "__init__":
                continue
            if here == there:
                continue
            if RANK[there] > RANK[here]:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_every_module_belongs_to_a_layer() -> None:
    assert {layer(m) for m in MODULES} - set(RANK) == set()


def test_the_simulator_imports_nothing_of_the_client_side() -> None:
    simulator = {m for m in MODULES if layer(m) == "simulator"}
    outside = {
        f"{m} -> {t}" for m in simulator for t in graph().get(m, ()) if layer(t) != "simulator"
    }
    assert outside == set()


def test_only_the_backtrader_layer_imports_backtrader() -> None:
    importers = {m for m, p in FILES.items() if uses_backtrader(p)}
    assert {layer(m) for m in importers} <= {"bt"}, sorted(importers)
