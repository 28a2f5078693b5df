"""The packages of ``fusion/`` import only downwards: no cycle, no science that needs Catalyst or
Hydra, and report code that never imports the workflows that call it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "fusion"

#: Layers from the bottom; a module may import its own layer's siblings only where listed below
#: and any lower layer. ``cli`` is the top.
LAYERS = [
    {"__version__", "_lazy", "errors"},
    {"io", "devices", "precision", "provenance", "distributed"},
    {"rundir"},
    {"data", "losses", "models"},
    {"evaluate", "interpret"},
    {"report"},
    {"workflows"},
    {"cli"},
]
SAME_LAYER = {("models", "losses"), ("interpret", "evaluate")}  # allowed one-way edges within a layer
FORBIDDEN = ("catalyst", "hydra", "omegaconf", "runners", "callbacks")


def _unit(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def _edges() -> dict[tuple[str, str], list[str]]:
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        src = _unit(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "fusion" and len(parts) > 1 and parts[1] != src:
                if (ROOT / parts[1]).is_dir() or (ROOT / f"{parts[1]}.py").is_file():
                    edges.setdefault((src, parts[1]), []).append(str(path.relative_to(ROOT.parent)))
    return edges


def _layer(unit: str) -> int:
    for k, layer in enumerate(LAYERS):
        if unit in layer:
            return k
    raise AssertionError(f"fusion/{unit} is in no layer of tests/test_import_layers.py: add it")


def test_every_import_points_down():
    bad = []
    for (src, dst), files in _edges().items():
        ls, ld = _layer(src), _layer(dst)
        if ld > ls or (ld == ls and (src, dst) not in SAME_LAYER):
            bad.append(f"{src} -> {dst} ({sorted(set(files))[0]})")
    assert not bad, "imports against the layering: " + "; ".join(sorted(bad))


def test_no_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for src, dst in _edges():
        graph.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path + [node, nxt]))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_science_needs_no_catalyst_or_hydra():
    bad = [f"{path.relative_to(ROOT.parent)}: {name}" for path in sorted(ROOT.rglob("*.py"))
           for name in _imports(path) if name.split(".")[0] in FORBIDDEN]
    assert not bad, "fusion/ imports adapters or frameworks: " + "; ".join(bad)
