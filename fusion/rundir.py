"""The layout of a run directory: one place that names its folders and files.

A run directory (``logdir``) holds one folder per fold or repeated split, ``fold_00``,
``fold_01`` ..., each with ``checkpoints/``, ``result.json`` and the fold's outputs (VAE:
``latents.npz``, ``svm.npz``; gCAM-CCL: ``test_predictions.csv``, ``maps/``, ``interpretation/``),
and at its root the run's ``results.json`` and ``report.md``. See ``docs/architecture.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fusion import io
from fusion.errors import InputError

__all__ = [
    "CHECKPOINTS", "FOLD_RESULT", "LATENTS", "REPORT", "RESULTS", "SVM",
    "find_prepared_dir", "fold_dir", "fold_dirs", "fold_name", "fold_number", "fold_result_paths",
    "fold_roc_data", "is_prepared", "load_fold_latents", "load_run_config", "merge_results",
]

PathLike = str | os.PathLike

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


def load_run_config(logdir: PathLike) -> dict[str, Any] | None:
    """The resolved config Catalyst dumped into ``logdir/configs`` (``_config.json``, else
    ``config.yaml``), or None when there is none."""
    configs = Path(logdir) / "configs"
    if (configs / "_config.json").is_file():
        return io.read_json(configs / "_config.json")
    if (configs / "config.yaml").is_file():
        import yaml

        with open(configs / "config.yaml") as f:
            return yaml.safe_load(f)
    return None


def is_prepared(path: Path) -> bool:
    """Whether ``path`` is a prepared VAE data folder (``index.csv`` and ``meta.json``)."""
    return (path / "index.csv").is_file() and (path / "meta.json").is_file()


def find_prepared_dir(logdir: PathLike, config: Mapping[str, Any] | None = None) -> Path | None:
    """The prepared data folder a run was trained on: the first string under the config's ``data``
    node naming a folder with ``index.csv`` and ``meta.json`` (relative paths are tried from the
    current folder and from the run directory's parents). None when not found."""
    config = load_run_config(logdir) if config is None else config
    data = (config or {}).get("data") if isinstance(config, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    candidates = [v for v in data.values() if isinstance(v, str)]
    bases = [Path.cwd(), *Path(logdir).resolve().parents]
    for value in candidates:
        path = Path(value)
        for base in [Path("/")] if path.is_absolute() else bases:
            if is_prepared(base / path):
                return (base / path).resolve()
    return None


def load_fold_latents(logdir: PathLike, fold: int = 0) -> dict[str, np.ndarray]:
    """``fold_XX/latents.npz`` checked: ``mu (n, n_modalities, l)``, ``labels (n,)``, ``subject_ids``."""
    path = fold_dir(logdir, fold) / "latents.npz"
    if not path.is_file():
        raise InputError(f"latents file {path} does not exist")
    data = io.load_npz(path)
    for key in ("mu", "labels"):
        if key not in data:
            raise InputError(f"{path} has no {key!r} array (keys: {sorted(data)})")
    mu, labels = data["mu"], data["labels"]
    if mu.ndim != 3 or labels.shape != (mu.shape[0],):
        raise InputError(f"{path}: mu must be (n, n_modalities, l) and labels (n,), got {mu.shape} and {labels.shape}")
    return data


_SCORE_KEYS = ("decision_scores", "scores", "test_scores", "decision_function", "score")
_LABEL_KEYS = ("test_labels", "labels", "y_true", "y_test")
_ID_KEYS = ("test_subject_ids", "test_subjects", "subject_ids", "test_ids")


def fold_roc_data(
    fold_dir: PathLike, latents: Mapping[str, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(labels, decision scores)`` of a fold's test subjects from ``fold_XX/result.json``.

    Labels are read from the result when stored there, else looked up by test subject id in the
    fold's latents. None when the result holds no scores.
    """
    path = Path(fold_dir) / "result.json"
    if not path.is_file():
        return None
    result = io.read_json(path)
    scores = next((result[k] for k in _SCORE_KEYS if isinstance(result.get(k), list)), None)
    if scores is None:
        return None
    scores = np.asarray(scores, dtype=float)
    labels = next((result[k] for k in _LABEL_KEYS if isinstance(result.get(k), list)), None)
    if labels is None and latents is not None and "subject_ids" in latents:
        ids = next((result[k] for k in _ID_KEYS if isinstance(result.get(k), list)), None)
        if ids is not None:
            lookup = {str(s): int(y) for s, y in zip(latents["subject_ids"], latents["labels"])}
            missing = [s for s in ids if str(s) not in lookup]
            if missing:
                raise InputError(f"{path}: test subjects {missing[:3]} are not in the fold's latents")
            labels = [lookup[str(s)] for s in ids]
    if labels is None:
        return None
    labels = np.asarray(labels, dtype=int)
    if labels.shape != scores.shape:
        raise InputError(f"{path}: {labels.size} test labels but {scores.size} decision scores")
    return labels, scores


def merge_results(logdir: str | os.PathLike, added: Mapping[str, Any]) -> None:
    """Update ``results.json`` with ``added``; the ``recovery`` dict is merged key by key."""
    path = Path(logdir) / RESULTS
    results = io.read_json(path) if path.is_file() else {}
    for key, value in added.items():
        if key == "recovery" and isinstance(results.get("recovery"), dict):
            results["recovery"] = {**results["recovery"], **value}
        else:
            results[key] = value
    io.write_json(path, results)
