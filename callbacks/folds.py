"""Stratified cross-validation folds as the runner's stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from catalyst.core import Callback, CallbackOrder, CallbackScope

from fusion.data.folds import load_folds, save_folds, stratified_folds
from fusion.errors import ConfigError
from fusion_runners.base import fold_stage_name, is_main_process


class FoldSplitCallback(Callback):
    """Split the cohort into stratified folds once per run and hand each stage its subjects.

    At experiment start (in the launching process, before any stage builds its loaders) the
    folds are computed from the labels of ``runner.dataset`` with
    :func:`fusion.data.folds.stratified_folds`, written to ``<logdir>/<filename>`` and stored in
    ``runner.stage_indices`` as ``{"fold_03": {"train": ..., "valid": ..., "test": ...}}``.

    A ``splits.json`` already in the log directory (an earlier or parallel job of the same run,
    e.g. ``folds.only=3``) is kept when it holds the same folds and subjects; different folds mean
    the directory belongs to another run, which is an error rather than a silent overwrite.

    This callback has ``CallbackScope.experiment``: :class:`fusion_runners.base.ConfigRunner` builds it
    once per run; plain Catalyst runners never deliver ``on_experiment_start`` to callbacks.

    Args:
        n_splits: number of folds (10 in the paper).
        val_fraction: fraction of each fold's training subjects used for validation (0.1).
        seed: seed of the fold assignment.
        logdir: the run's folder; None uses ``runner.logdir``.
        filename: name of the split file inside ``logdir``.
    """

    def __init__(
        self,
        n_splits: int = 10,
        val_fraction: float = 0.1,
        seed: int = 42,
        logdir: str | Path | None = None,
        filename: str = "splits.json",
    ):
        super().__init__(order=CallbackOrder.internal, scope=CallbackScope.experiment)
        self.n_splits = n_splits
        self.val_fraction = val_fraction
        self.seed = seed
        self.logdir = logdir
        self.filename = filename

    def on_experiment_start(self, runner: Any) -> None:
        """Compute (or check against the saved) folds, save them, fill ``runner.stage_indices``."""
        dataset = runner.dataset
        labels = np.asarray(dataset.labels)
        subject_ids = [str(s) for s in dataset.subject_ids]
        folds = stratified_folds(labels, self.n_splits, self.val_fraction, self.seed)
        path = Path(self.logdir if self.logdir is not None else runner.logdir) / self.filename
        if path.exists():
            saved = load_folds(path, subject_ids=subject_ids)
            same = len(saved) == len(folds) and all(
                np.array_equal(getattr(a, part), getattr(b, part))
                for a, b in zip(saved, folds)
                for part in ("train", "val", "test")
            )
            if not same:
                raise ConfigError(
                    f"{path} holds other folds than n_splits={self.n_splits}, "
                    f"val_fraction={self.val_fraction}, seed={self.seed} give for this cohort: "
                    "it belongs to another run; choose another logdir"
                )
        elif is_main_process(runner.engine):
            save_folds(path, folds, subject_ids, seed=self.seed)
        for k, fold in enumerate(folds):
            runner.stage_indices[fold_stage_name(k)] = {
                "train": fold.train,
                "valid": fold.val,
                "test": fold.test,
            }


__all__ = ["FoldSplitCallback"]
