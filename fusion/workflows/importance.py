"""Modality importance of a VAE run with its bar chart (``importance.csv``, ``importance.png``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fusion.evaluate.importance import analyze_importance
from fusion.report.importance_plot import save_importance_plot

__all__ = ["importance_with_figure"]


def importance_with_figure(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                           top: int = 10, **kwargs: Any) -> dict:
    """:func:`fusion.evaluate.importance.analyze_importance`, then ``importance.png`` (the ``top``
    modalities, as in the paper's figure); the summary's ``figure`` is its path, ``table`` dropped."""
    summary = analyze_importance(run_dir, out_dir, top=top, **kwargs)
    table = summary.pop("table")
    path = Path(run_dir if out_dir is None else out_dir) / "importance.png"
    summary["figure"] = str(save_importance_plot(path, table, top=top, n_folds=summary["n_folds"]))
    return summary
