"""Classify a fold's test subjects with a linear SVM on their latents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from catalyst.core import Callback, CallbackNode, CallbackOrder

from fusion.errors import InputError
from fusion.evaluate.classifiers import LinearSVM
from fusion.evaluate.fold_classification import classify_fold
from fusion.io import load_npz, save_npz, write_json
from fusion_runners.base import is_main_process


class SVMClassificationCallback(Callback):
    """At the end of a fold: linear SVM on the latents of its train+val subjects, AUC on its test.

    Reads ``<logdir>/<stage>/latents.npz`` (from :class:`fusion_callbacks.latents.LatentExtractionCallback`,
    which runs just before), features = the ``54 * l`` concatenated latents of a subject. Writes
    ``<stage>/result.json`` (``auc``, sizes, test subject ids, labels and decision scores) and
    ``<stage>/svm.npz`` (``coef``, ``intercept``). Only the main process writes, once.

    Args:
        C: SVM regularisation (``fusion.evaluate.classifiers.LinearSVM``).
        backend: ``auto`` (cuML when a GPU is present), ``cuml`` or ``sklearn``.
        max_iter: solver iteration limit.
        tol: solver tolerance.
        standardize: scale features with the training statistics first.
        logdir: the run's folder; None uses ``runner.logdir``.
        latents: latents file inside the stage folder.
        confounds: the ``confounds`` node: covariates regressed out of / ComBat on the latents,
            fitted on the fold's train + val subjects (:mod:`fusion.evaluate.confounds`).
    """

    def __init__(
        self,
        C: float = 1.0,
        backend: str = "auto",
        max_iter: int = 100_000,
        tol: float = 1e-4,
        standardize: bool = False,
        logdir: str | Path | None = None,
        latents: str = "latents.npz",
        confounds: dict | None = None,
    ):
        super().__init__(order=CallbackOrder.external_extra + 10, node=CallbackNode.master)
        self.C = C
        self.backend = backend
        self.max_iter = max_iter
        self.tol = tol
        self.standardize = standardize
        self.logdir = logdir
        self.latents = latents
        self.confounds = None if confounds is None else dict(confounds)

    def on_stage_end(self, runner: Any) -> None:
        """Fit, score and save this fold's classification."""
        if not is_main_process(runner.engine):
            return
        stage_dir = Path(self.logdir if self.logdir is not None else runner.logdir) / runner.stage_key
        path = stage_dir / self.latents
        if not path.is_file():
            raise InputError(f"SVM classification: {path} does not exist (add LatentExtractionCallback)")
        svm = LinearSVM(
            C=self.C, backend=self.backend, max_iter=self.max_iter, tol=self.tol, standardize=self.standardize
        )
        from fusion.evaluate.run_statistics import fold_features

        latents = load_npz(path)
        table = getattr(getattr(runner, "dataset", None), "index_table", None)
        features = fold_features(latents, table, self.confounds, where=runner.stage_key)
        result, weights = classify_fold(latents, svm, features)
        result = {"stage": runner.stage_key, **result}
        save_npz(stage_dir / "svm.npz", **weights)
        write_json(stage_dir / "result.json", result)
        print(f"{runner.stage_key}: test AUC {result['auc']:.3f} (n_test {result['n_test']})", flush=True)


__all__ = ["SVMClassificationCallback"]
