"""The package's layers: no import cycles, no import from a lower layer to a higher one, an interface
that imports no implementation, and tests that mirror the package.

Layers, lowest first, in the order the data flows: dpbert.data, dpbert.model, dpbert.methods (with
baselines/), dpbert.run, dpbert.reporting, dpbert.tools. Function-level imports count too.
"""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYERS = {"data": 0, "model": 1, "methods": 2, "run": 3, "reporting": 4, "tools": 5}
BASELINES_LAYER = LAYERS["methods"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] == "baselines":
        return BASELINES_LAYER
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def _imports(tree: ast.AST, top_level_only: bool) -> set[str]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {n for n in out if n.split(".")[0] in ("dpbert", "baselines")}


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    files = [*(ROOT / "dpbert").rglob("*.py"), *(ROOT / "baselines").rglob("*.py")]
    trees = {_module_name(p): ast.parse(p.read_text()) for p in files}

    def resolve(name: str) -> str | None:
        while name and name not in trees:
            name = name.rpartition(".")[0]
        return name or None

    return {m: {r for n in _imports(t, top_level_only) if (r := resolve(n)) and r != m} for m, t in trees.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize("top_level_only", [True, False], ids=["module-level", "with-function-level"])
def test_no_import_cycles(top_level_only):
    assert _cycles(_graph(top_level_only)) == []


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = [(m, d) for m, deps in _graph(False).items() for d in deps
              if _layer(m) is not None and _layer(d) is not None and _layer(d) > _layer(m)]
    assert upward == []


def test_every_module_is_in_a_layer():
    loose = [m for m in _graph(False) if m not in ("dpbert", "baselines") and _layer(m) is None]
    assert loose == []


def test_the_method_interface_imports_no_implementation():
    deps = _graph(False)["dpbert.methods.interface"]
    assert not {d for d in deps if d.startswith("baselines") or d in ("dpbert.methods.bert_base",
                                                                         "dpbert.methods.dpbert",
                                                                         "dpbert.methods.registry")}


def test_test_folders_mirror_the_package():
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    package = {p.name for p in (ROOT / "dpbert").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert package <= folders, package - folders
    assert not list((ROOT / "tests").glob("test_*.py")) or {p.name for p in (ROOT / "tests").glob("test_*.py")} <= {
        "test_package_layout.py", "test_dependencies.py"}
