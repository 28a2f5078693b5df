"""What produced a run: resolved config, code version, package versions, seed.

:func:`collect_run_metadata` gathers it as plain JSON-ready data; the runner writes it to
``<logdir>/run_metadata.json`` (with :func:`fusion.io.write_json`) so that a result can be traced
back to the exact code and settings, and a resumed run can check it continues the same one.
Plain Python: no catalyst or hydra import.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import importlib.util
import math
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fusion import __version__

#: Distributions whose versions are recorded (``cuml`` / ``cupy`` only when importable).
PACKAGES: tuple[str, ...] = (
    "torch", "catalyst", "hydra-core", "omegaconf", "numpy", "scipy", "scikit-learn", "nibabel",
    "torchio", "nilearn", "pandas",
)
#: Optional GPU modules: recorded with their distribution's version when installed.
OPTIONAL_MODULES: tuple[str, ...] = ("cuml", "cupy")
_GIT_TIMEOUT_S: float = 10.0


def package_versions(names: Iterable[str] = PACKAGES,
                     optional_modules: Iterable[str] = OPTIONAL_MODULES) -> dict[str, str | None]:
    """Installed version of each distribution (None when absent), plus the optional GPU modules.

    Optional modules (``cuml``, ``cupy``) are looked up without importing them (importing cuML
    initialises CUDA) and appear only when installed, under their module name.
    """
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    distributions = importlib.metadata.packages_distributions()
    for module in optional_modules:
        if importlib.util.find_spec(module) is None:
            continue
        found = None
        for dist in distributions.get(module, []):
            try:
                found = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        versions[module] = found or "unknown"
    return versions


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=_GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Commit and dirtiness of the git checkout holding ``path`` (default: this package).

    Returns:
        ``{"commit": sha or "unknown", "dirty": bool or None, "root": str or None}``; outside a
        git checkout (an installed wheel, no git binary) commit is ``"unknown"`` and dirty None.
        ``dirty`` counts changes to tracked files only.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    if where.is_file():
        where = where.parent
    if not where.is_dir():
        return {"commit": "unknown", "dirty": None, "root": None}
    root = _git(["rev-parse", "--show-toplevel"], where)
    commit = _git(["rev-parse", "HEAD"], where) if root else None
    if not commit:
        return {"commit": "unknown", "dirty": None, "root": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return {"commit": commit, "dirty": None if status is None else bool(status), "root": root}


def json_safe(value: Any) -> Any:
    """A plain config with non-finite floats as strings (``"inf"``, ``"nan"``), which strict JSON lacks."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def collect_run_metadata(config: Mapping[str, Any], seed: int | None,
                         code_path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Everything needed to say what produced a run, as JSON-ready data.

    Args:
        config: the run's resolved config as plain Python (no interpolations left).
        seed: the run's seed (``args.seed``).
        code_path: a file or folder inside the code's git checkout (default: this package).

    Returns:
        ``{"config", "seed", "git": {"commit", "dirty", "root"}, "packages": {name: version},
        "python", "platform", "fusion_version", "command", "started_at" (UTC, ISO 8601)}``.
    """
    return {
        "config": json_safe(dict(config)),
        "seed": None if seed is None else int(seed),
        "git": git_state(code_path),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "fusion_version": __version__,
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else [],
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def config_differences(old: Any, new: Any, ignore: Iterable[str] = (), prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain configs (``ignore``: dotted keys skipped).

    A key present on one side only counts as a difference.
    """
    ignored = set(ignore)
    if prefix in ignored:
        return []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                if path not in ignored:
                    out.append(path)
                continue
            out += config_differences(old[key], new[key], ignored, path)
        return out
    return [] if old == new else [prefix or "<root>"]


__all__ = ["PACKAGES", "collect_run_metadata", "config_differences", "git_state", "json_safe", "package_versions"]
