"""Subject split of a gCAM-CCL run: stratified 70/15/15 (one stage) or K folds, to splits.json."""

from __future__ import annotations

from typing import Any

import numpy as np
from catalyst.core import Callback, CallbackOrder, CallbackScope

from fusion_runners.base import fold_stage_name, is_main_process


class CCLSplitCallback(Callback):
    """Fills ``runner.stage_indices`` once per experiment and writes ``logdir/splits.json``.

    Without a ``folds`` node: ``repetitions`` stratified holdout splits (``fractions``, default
    the paper's 70/15/15), repetition k drawn with seed ``seed + k``, as stages ``fold_00`` ...
    Each test set is a fresh stratified draw, so test sets of different repetitions overlap.
    With ``folds.n_splits``: stratified K-fold (``fusion.data.folds.stratified_folds`` with
    ``folds.val_fraction`` and ``folds.seed``).
    Every class must appear in each of train/val/test, otherwise an InputError names the part.

    Args:
        fractions: (train, val, test) fractions of the holdout split.
        seed: seed of the first holdout split (``null``: the run's ``args.seed``).
        repetitions: number of holdout splits (stages).
    """

    def __init__(self, fractions: tuple[float, float, float] | list[float] = (0.7, 0.15, 0.15),
                 seed: int | None = None, repetitions: int = 1):
        super().__init__(order=CallbackOrder.internal, scope=CallbackScope.experiment)
        from fusion_runners.ccl import split_repetitions

        self.fractions = tuple(float(f) for f in fractions)
        self.seed = seed
        self.repetitions = split_repetitions(repetitions)

    def on_experiment_start(self, runner: Any) -> None:
        from fusion.data.folds import save_folds, stratified_folds
        from fusion.evaluate.splits import stratified_holdout

        dataset = runner.dataset
        labels = np.asarray(dataset.labels)
        names = getattr(dataset, "class_names", None)
        n_splits = runner.select("folds.n_splits")
        if n_splits is None:
            seed = int(self.seed if self.seed is not None else runner.seed)
            folds = [stratified_holdout(labels, self.fractions, seed + k, names)
                     for k in range(self.repetitions)]
        else:
            seed = int(runner.select("folds.seed", runner.seed))
            folds = stratified_folds(labels, int(n_splits), float(runner.select("folds.val_fraction", 0.15)), seed)
            for k, fold in enumerate(folds):  # K-fold may still leave a class out of a small val set
                for part in ("train", "val", "test"):
                    present = set(labels[getattr(fold, part)].tolist())
                    missing = sorted(set(labels.tolist()) - present)
                    if missing:
                        from fusion.errors import InputError

                        raise InputError(f"split: fold {k} {part} set has no subject of class {missing[0]}")
        for k, fold in enumerate(folds):
            runner.stage_indices[fold_stage_name(k)] = {"train": fold.train, "valid": fold.val, "test": fold.test}
        if is_main_process(getattr(runner, "engine", None)):
            save_folds(runner.logdir / "splits.json", folds, dataset.subject_ids, seed=seed)
