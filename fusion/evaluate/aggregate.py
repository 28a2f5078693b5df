"""Mean and spread of a per-fold metric over a VAE run directory's ``fold_XX/result.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fusion.errors import InputError
from fusion.io import read_json
from fusion.rundir import fold_result_paths

__all__ = ["aggregate_results"]


def aggregate_results(logdir: str | Path, metric: str = "auc") -> dict[str, Any] | None:
    """Mean and spread of ``metric`` over every ``fold_XX/result.json`` in ``logdir``.

    Folds trained by separate jobs into the same folder are all counted.

    Returns:
        ``{"<metric>_mean", "<metric>_std" (population std over folds), "<metric>" (per fold),
        "folds" (stage names), "n_folds", "latent_dim", "n_subjects"}``, or None when no fold has a
        result yet.

    Raises:
        InputError: a result without ``metric``, or folds that disagree on the latent size or
            the number of subjects (results of different runs mixed in one folder).
    """
    logdir = Path(logdir)
    entries = []
    for number, path in fold_result_paths(logdir):
        result = read_json(path)
        if metric not in result:
            raise InputError(f"{path} has no '{metric}' entry")
        entries.append((number, path.parent.name, result))
    if not entries:
        return None
    entries.sort()
    summary: dict[str, Any] = {}
    values = np.asarray([float(r[metric]) for _, _, r in entries])
    summary[f"{metric}_mean"] = float(values.mean())
    summary[f"{metric}_std"] = float(values.std())
    summary[metric] = values.tolist()
    summary["folds"] = [name for _, name, _ in entries]
    summary["n_folds"] = len(entries)
    for key in ("latent_dim", "n_subjects"):
        seen = {r.get(key) for _, _, r in entries}
        if len(seen) > 1:
            raise InputError(f"fold results in {logdir} disagree on {key} ({sorted(seen, key=str)}): "
                             "results of different runs share this folder")
        summary[key] = seen.pop()
    return summary
