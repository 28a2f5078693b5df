"""The layout of a run directory: one place that names its folders and files.

A run directory (``logdir``) holds one folder per fold or repeated split, ``fold_00``,
``fold_01`` ..., each with ``checkpoints/``, ``result.json`` and the fold's outputs (VAE:
``latents.npz``, ``svm.npz``; gCAM-CCL: ``test_predictions.csv``, ``maps/``, ``interpretation/``),
and at its root the run's ``results.json`` and ``report.md``. See ``docs/architecture.md``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fusion.errors import InputError

__all__ = [
    "CHECKPOINTS", "FOLD_RESULT", "LATENTS", "REPORT", "RESULTS", "SVM",
    "fold_dir", "fold_dirs", "fold_name", "fold_number", "fold_result_paths",
]

RESULTS = "results.json"        # the run's summary, at the run root
REPORT = "report.md"            # the run's report, at the run root
FOLD_RESULT = "result.json"     # one fold's test metrics
LATENTS = "latents.npz"         # one fold's posterior means (VAE)
SVM = "svm.npz"                 # one fold's SVM weights (VAE)
CHECKPOINTS = "checkpoints"     # one fold's checkpoint folder

_FOLD = re.compile(r"^fold_(\d+)$")


def fold_name(fold: int) -> str:
    """Folder (and Catalyst stage) name of fold ``fold``: ``fold_00``, ``fold_01``, ..."""
    return f"fold_{int(fold):02d}"


def fold_number(name: str) -> int | None:
    """The number of a fold folder name (``fold_03`` -> 3), None for any other name."""
    match = _FOLD.match(name)
    return int(match.group(1)) if match else None


def fold_dirs(logdir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``[(fold number, fold folder)]`` of a run directory, sorted by number."""
    logdir = Path(logdir)
    if not logdir.is_dir():
        raise InputError(f"run directory {logdir} does not exist")
    found = ((fold_number(p.name), p) for p in logdir.iterdir() if p.is_dir())
    return sorted((k, p) for k, p in found if k is not None)


def fold_dir(logdir: str | os.PathLike, fold: int) -> Path:
    """The folder of fold ``fold``; InputError naming the folds present when it is missing."""
    path = Path(logdir) / fold_name(fold)
    if not path.is_dir():
        found = [fold_name(k) for k, _ in fold_dirs(logdir)]
        raise InputError(f"run directory {logdir} has no {path.name} (folds found: {found or 'none'})")
    return path


def fold_result_paths(logdir: str | os.PathLike, name: str = FOLD_RESULT) -> list[tuple[int, Path]]:
    """``[(fold number, <fold>/<name>)]`` for every fold folder holding ``name``, by number."""
    logdir = Path(logdir)
    if not logdir.is_dir():
        return []
    return [(k, p / name) for k, p in fold_dirs(logdir) if (p / name).is_file()]
