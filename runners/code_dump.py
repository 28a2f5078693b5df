"""A code dump that fold jobs sharing one log directory can run at the same time.

``catalyst-dl run --hydra`` copies Catalyst's sources and the experiment folder into
``<logdir>/code`` with ``rmtree`` then ``copytree`` on the final path. Fold jobs of one run
(``folds.only=k``, submitted side by side) share the logdir, so one job's ``rmtree`` can pull
files from under another's ``copytree``; the job then dies with a ``shutil.Error`` that submitit
cannot even pickle. Here each copy goes to a private temporary folder and is renamed into place;
a job that finds the folder already replaced by another job's identical copy keeps that one. Both
entry points are covered: ``hydra_run.dump_code`` (a plain run) and Catalyst's own copy helper,
which a submitit job reaches because it unpickles its own copy of the task function.

The same entry point lists the installed packages in ``<logdir>/configs/pip-packages.txt`` by
running ``pip freeze`` from ``PATH``: the system's pip when the run's interpreter is a virtual
environment that was not activated (``.venv/bin/catalyst-dl``, as ``make`` runs it).
:func:`list_packages` lists the packages of the interpreter that runs instead.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any


def _copy_into_place(source: str | os.PathLike, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        shutil.copytree(source, tmp / "copy")
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp / "copy", target)
        except OSError:
            if not target.is_dir():  # nobody else put a copy there
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def dump_code(logdir: str | os.PathLike, expdir: str | os.PathLike | None = None) -> None:
    """Copy Catalyst's package and ``expdir`` to ``<logdir>/code/{catalyst,<expdir name>}``."""
    import catalyst

    code = Path(logdir) / "code"
    _copy_into_place(Path(catalyst.__file__).parent, code / "catalyst")
    if expdir is not None:
        expdir = Path(os.path.abspath(expdir))
        _copy_into_place(expdir, code / expdir.name)


def _safe_dir_copy(dir_from: str, dir_to: str) -> None:
    """Drop-in for Catalyst's ``_tricky_dir_copy`` (rmtree then copytree), through a private copy."""
    _copy_into_place(dir_from, Path(dir_to))


def list_packages() -> str:
    """``name==version`` of every distribution the running interpreter imports from (its
    ``sys.path``, through ``importlib.metadata``), sorted by name, in ``pip freeze`` format, after a
    comment naming the interpreter."""
    from importlib import metadata

    seen: dict[str, tuple[str, str]] = {}  # lower-case name -> (name, version)
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() not in seen:  # the first on sys.path wins, as for imports
            seen[name.lower()] = (name, dist.version)
    lines = [f"# packages of {sys.executable} (Python {sys.version.split()[0]})"]
    lines += [f"{name}=={version}" for _, (name, version) in sorted(seen.items())]
    return "\n".join(lines)


def install() -> None:
    """Make ``catalyst-dl run --hydra`` use :func:`dump_code` and :func:`list_packages`.

    Called by :class:`fusion_runners.base.ConfigRunner` when it is built, which the entry point
    does before it dumps the code and lists the packages; idempotent."""
    # typed Any: these are Catalyst's modules, whose functions are replaced (mypy forbids it on a ModuleType)
    module: Any = sys.modules.get("catalyst.dl.scripts.hydra_run")
    if module is not None and getattr(module, "dump_code", None) is not dump_code:
        module.dump_code = dump_code
    environment: Any = sys.modules.get("catalyst.utils.sys")
    if environment is not None:
        environment._list_pip_packages = list_packages
        # A submitit job runs a by-value pickle of hydra_run's task function, whose globals still
        # name Catalyst's own dump_code; that one copies through _tricky_dir_copy, replaced here.
        environment._tricky_dir_copy = _safe_dir_copy
