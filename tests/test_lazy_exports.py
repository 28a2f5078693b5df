"""Packages that export names lazily (``fusion._lazy.lazy_getattr``) keep three lists in step: the
``_EXPORTS`` table the runtime ``__getattr__`` reads, ``__all__``, and the ``if TYPE_CHECKING:``
imports through which mypy and IDEs see the same names. A name added to one of them only fails here."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lazy_packages() -> list[str]:
    """Every package under fusion/ whose ``__init__`` calls ``lazy_getattr``."""
    found = []
    for init in sorted((ROOT / "fusion").rglob("__init__.py")):
        tree = ast.parse(init.read_text(), str(init))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", getattr(n.func, "attr", None)) == "lazy_getattr"]
        if calls:
            found.append(".".join(init.parent.relative_to(ROOT).parts))
    return found


LAZY_PACKAGES = _lazy_packages()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _type_checking_imports(package: str) -> list[tuple[str, str, str | None]]:
    """``(module, name, asname)`` of every import in the package's top-level ``if TYPE_CHECKING:``."""
    init = ROOT.joinpath(*package.split("."), "__init__.py")
    tree = ast.parse(init.read_text(), str(init))
    blocks = [node for node in tree.body if isinstance(node, ast.If) and _is_type_checking(node.test)]
    assert len(blocks) == 1, f"{init.relative_to(ROOT)}: expected one top-level `if TYPE_CHECKING:` block"
    out = []
    for stmt in blocks[0].body:
        assert isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module, (
            f"{init.relative_to(ROOT)}: the TYPE_CHECKING block should hold only `from fusion.x import Name as Name`"
        )
        out += [(stmt.module, alias.name, alias.asname) for alias in stmt.names]
    return out


def test_the_lazy_packages_are_found():
    assert {"fusion.data", "fusion.losses", "fusion.models"} <= set(LAZY_PACKAGES)


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_export_resolves_from_its_module(package):
    module = importlib.import_module(package)
    exports = module._EXPORTS
    assert module.__all__, f"{package}.__all__ is empty"
    assert sorted(module.__all__) == sorted(exports), f"{package}: __all__ and _EXPORTS list different names"
    for name in module.__all__:
        value = getattr(module, name)
        assert value is getattr(importlib.import_module(exports[name]), name), f"{package}.{name}"
    with pytest.raises(AttributeError, match="has no attribute"):
        _ = module.no_such_export


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_type_checking_block_lists_exactly_the_exports(package):
    module = importlib.import_module(package)
    imports = _type_checking_imports(package)
    names = [asname or name for _, name, asname in imports]
    assert sorted(names) == sorted(module.__all__), (
        f"{package}: the TYPE_CHECKING imports {sorted(names)} differ from __all__ {sorted(module.__all__)}"
    )
    assert len(names) == len(set(names)), f"{package}: a name is imported twice under TYPE_CHECKING"
    for mod, name, asname in imports:
        assert asname == name, f"{package}: import {name} as {name} (an explicit re-export), not as {asname}"
        assert mod == module._EXPORTS[name], (
            f"{package}: {name} is imported from {mod} for type checkers but loaded from "
            f"{module._EXPORTS[name]} at run time"
        )


def test_importing_the_packages_loads_none_of_their_exports():
    """The TYPE_CHECKING imports stay out of the run time: ``import fusion.models`` stays cheap."""
    code = (
        "import importlib, json, sys\n"
        f"packages = {LAZY_PACKAGES!r}\n"
        "for p in packages: importlib.import_module(p)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(tuple(p + '.' for p in packages)))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
