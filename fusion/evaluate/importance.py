"""Feature importance per modality from linear-SVM weights, and its recovery score.

The classifier sees one feature vector per subject: the 54 per-modality latents (each of size l)
concatenated modality by modality, i.e. ``mu (n, 54, l).reshape(n, 54 * l)``. A modality's
importance is the sum of ``|w|`` over its l weights, normalised so the 54 importances sum to 1
(Geenjaar et al. 2021, Fig. 2); mean and standard deviation are taken over the test folds.

On an embedded cohort the planted patient effect names the modalities that carry signal;
:func:`modality_recall` scores how many of them the importance ranking puts at the top.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fusion.errors import InputError

if TYPE_CHECKING:
    import pandas

__all__ = [
    "analyze_importance",
    "fold_importances",
    "importance_table",
    "load_fold_coefs",
    "modality_importance",
    "modality_recall",
    "top_modalities",
]

logger = logging.getLogger(__name__)

_FOLD_DIR = re.compile(r"^fold_(\d+)$")


def modality_importance(coef: np.ndarray, n_modalities: int = 54) -> np.ndarray:
    """Share of the linear-SVM weight mass that falls on each modality.

    Args:
        coef: ``(n_modalities * l,)`` weights of a linear classifier on the concatenated latents,
            modality-major (the l weights of modality 0 first).
        n_modalities: number of modalities (54 = 53 ICNs + sMRI).

    Returns:
        ``(n_modalities,)`` non-negative importances that sum to 1.
    """
    w = np.asarray(coef, dtype=np.float64)
    if w.ndim == 2 and 1 in w.shape:  # (1, n) from classifiers that keep a class axis
        w = w.ravel()
    if w.ndim != 1 or w.size == 0 or w.size % n_modalities:
        raise InputError(
            f"coef must be 1D with n_modalities * l = {n_modalities} * l entries, got shape {w.shape}"
        )
    if not np.all(np.isfinite(w)):
        raise InputError("coef holds NaN or Inf")
    per_modality = np.abs(w).reshape(n_modalities, -1).sum(axis=1)
    total = per_modality.sum()
    if total == 0:
        raise InputError("coef is all zeros: the classifier assigns no importance to any modality")
    return per_modality / total


def fold_importances(coefs: Sequence[np.ndarray] | np.ndarray, n_modalities: int = 54) -> np.ndarray:
    """Importance per fold: ``(n_folds, n_modalities)``, each row summing to 1."""
    rows = [modality_importance(c, n_modalities) for c in coefs]
    if not rows:
        raise InputError("no fold weights given: cannot compute importance")
    return np.stack(rows)


def importance_table(
    importances: np.ndarray,
    names: Sequence[str] | None = None,
    domains: Sequence[str] | None = None,
) -> pandas.DataFrame:
    """Mean and standard deviation over folds, ranked.

    Args:
        importances: ``(n_folds, n_modalities)`` from :func:`fold_importances`.
        names, domains: one per modality; default the NeuroMark names for 53 ICNs + sMRI, generic
            names otherwise.

    Returns:
        DataFrame with columns ``modality`` (index 0..n-1), ``name``, ``domain``, ``mean``, ``std``
        (population std over folds, 0 with one fold), ``rank`` (1 = most important), in modality order.
    """
    import pandas as pd

    importances = np.atleast_2d(np.asarray(importances, dtype=np.float64))
    n_modalities = importances.shape[1]
    if names is None or domains is None:
        from fusion.data.neuromark import (
            generic_modality_domains,
            generic_modality_names,
        )

        names = generic_modality_names(n_modalities - 1) if names is None else names
        domains = generic_modality_domains(n_modalities - 1) if domains is None else domains
    if len(names) != n_modalities or len(domains) != n_modalities:
        raise InputError(
            f"got {len(names)} names and {len(domains)} domains for {n_modalities} modalities"
        )
    mean = importances.mean(axis=0)
    std = importances.std(axis=0)
    order = np.argsort(-mean, kind="stable")
    rank = np.empty(n_modalities, dtype=int)
    rank[order] = np.arange(1, n_modalities + 1)
    return pd.DataFrame(
        {
            "modality": np.arange(n_modalities),
            "name": list(names),
            "domain": list(domains),
            "mean": mean,
            "std": std,
            "rank": rank,
        }
    )


def top_modalities(importance: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest importances, most important first (ties: lower index first)."""
    importance = np.asarray(importance, dtype=np.float64).ravel()
    return np.argsort(-importance, kind="stable")[:k]


def modality_recall(importance: np.ndarray, planted_modalities: Sequence[int]) -> float:
    """Share of the planted modalities found among the top-k of the importance ranking.

    Args:
        importance: ``(n_modalities,)`` importances (e.g. the mean over folds).
        planted_modalities: indices of the modalities that carry the planted effect; k is their
            number.

    Returns:
        Recall in [0, 1].
    """
    importance = np.asarray(importance, dtype=np.float64).ravel()
    planted = sorted({int(m) for m in planted_modalities})
    if not planted:
        raise InputError("planted_modalities is empty: modality recall needs at least one planted modality")
    bad = [m for m in planted if not 0 <= m < importance.size]
    if bad:
        raise InputError(f"planted modalities {bad} lie outside 0..{importance.size - 1}")
    found = set(top_modalities(importance, len(planted)).tolist())
    return len(found.intersection(planted)) / len(planted)


def load_fold_coefs(run_dir: str | os.PathLike) -> tuple[list[int], np.ndarray]:
    """Read every ``fold_XX/svm.npz`` of a VAE run directory.

    Returns:
        ``(fold numbers, coefs (n_folds, n_features))``.
    """
    from fusion.io import load_npz

    run_dir = Path(run_dir)
    folds = sorted(
        (int(m.group(1)), p) for p in run_dir.iterdir() if (m := _FOLD_DIR.match(p.name)) and (p / "svm.npz").is_file()
    ) if run_dir.is_dir() else []
    if not folds:
        raise InputError(f"{run_dir}: no fold_XX/svm.npz found (is this a finished VAE run directory?)")
    coefs = []
    for _, path in folds:
        data = load_npz(path / "svm.npz")
        if "coef" not in data:
            raise InputError(f"{path / 'svm.npz'} has no 'coef' array (keys: {sorted(data)})")
        coefs.append(np.asarray(data["coef"], dtype=np.float64).ravel())
    sizes = {c.size for c in coefs}
    if len(sizes) != 1:
        raise InputError(f"{run_dir}: fold SVMs have different numbers of weights {sorted(sizes)}")
    return [n for n, _ in folds], np.stack(coefs)


def analyze_importance(
    run_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    n_modalities: int = 54,
    planted_modalities: Sequence[int] | None = None,
    top: int = 10,
    names: Sequence[str] | None = None,
    domains: Sequence[str] | None = None,
) -> dict:
    """Importance of a finished VAE run: ``importance.csv`` and a summary (the figure:
    :func:`fusion.workflows.importance.importance_with_figure`).

    Args:
        run_dir: VAE run directory with ``fold_XX/svm.npz``.
        out_dir: where to write (default ``run_dir``).
        n_modalities: modalities per subject.
        planted_modalities: planted effect modalities (from ``ground_truth.json``); when given the
            summary holds ``modality_recall``.
        top: bars in the plot (the paper shows 10).
        names, domains: per-modality labels (default from ``fusion.data.neuromark``).

    Returns:
        ``{"importance_mean": [..], "importance_std": [..], "top": [indices], "n_folds": int,
        "modality_recall": float (only with planted modalities), "csv": path, "table": DataFrame}``.
    """
    from fusion.io import write_csv

    out_dir = Path(run_dir if out_dir is None else out_dir)
    fold_numbers, coefs = load_fold_coefs(run_dir)
    per_fold = fold_importances(coefs, n_modalities)
    table = importance_table(per_fold, names, domains)
    # User-facing: the 0-based position goes in a column that says so; ``name`` (ICN01...) counts from 1.
    csv_path = write_csv(out_dir / "importance.csv", table.rename(columns={"modality": "modality_index0"}))
    summary = {
        "importance_mean": table["mean"].to_numpy(),
        "importance_std": table["std"].to_numpy(),
        "top": top_modalities(table["mean"].to_numpy(), min(top, n_modalities)),
        "n_folds": len(fold_numbers),
        "csv": str(csv_path),
        "table": table,
    }
    if planted_modalities is not None:
        summary["modality_recall"] = modality_recall(table["mean"].to_numpy(), planted_modalities)
        summary["planted_modalities"] = sorted(int(m) for m in planted_modalities)
    logger.info("importance of %s over %d folds -> %s", run_dir, len(fold_numbers), csv_path)
    return summary
