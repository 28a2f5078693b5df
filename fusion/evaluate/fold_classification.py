"""Classify one fold's test subjects with a linear SVM fitted on its training + validation latents."""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.errors import InputError
from fusion.evaluate.classifiers import LinearSVM
from fusion.evaluate.metrics import roc_auc

__all__ = ["classify_fold"]


def classify_fold(
    latents: dict[str, np.ndarray], svm: LinearSVM, features: np.ndarray | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Fit ``svm`` on the training and validation subjects, score the test subjects.

    Args:
        latents: arrays of a ``latents.npz``: ``mu`` ``(n, M, l)``, ``labels`` ``(n,)``,
            ``subject_ids`` ``(n,)``, ``train``, ``val``, ``test`` index arrays.
        svm: an unfitted classifier.
        features: ``(n, M * l)`` features to use instead of the flattened ``mu`` (e.g. confound
            adjusted by :func:`fusion.evaluate.run_statistics.fold_features`).

    Returns:
        ``(result, weights)``: the JSON-ready result (``auc``, sizes, test subject ids, labels and
        decision scores) and ``{"coef": (M * l,), "intercept": (1,)}``.
    """
    missing = {"mu", "labels", "subject_ids", "train", "val", "test"} - set(latents)
    if missing:
        raise InputError(f"latents lack the array(s) {sorted(missing)}")
    mu = np.asarray(latents["mu"])
    if mu.ndim != 3:
        raise InputError(f"latents 'mu' must be (n_subjects, n_modalities, latent_dim), got {mu.shape}")
    features = mu.reshape(mu.shape[0], -1) if features is None else np.asarray(features)
    labels = np.asarray(latents["labels"])
    fit_rows = np.concatenate([latents["train"], latents["val"]]).astype(np.int64)
    test = np.asarray(latents["test"], dtype=np.int64)
    if fit_rows.size == 0 or test.size == 0:
        raise InputError("latents hold an empty training or test set: cannot classify")
    svm.fit(features[fit_rows], labels[fit_rows])
    scores = svm.decision_function(features[test])
    result = {
        "auc": roc_auc(labels[test], scores),
        "n_subjects": int(mu.shape[0]),
        "n_modalities": int(mu.shape[1]),
        "latent_dim": int(mu.shape[2]),
        "n_train": int(len(latents["train"])),
        "n_val": int(len(latents["val"])),
        "n_test": int(test.size),
        "svm_backend": svm.backend_,
        "test_subject_ids": [str(s) for s in np.asarray(latents["subject_ids"])[test]],
        "test_labels": labels[test].astype(int).tolist(),
        "scores": np.asarray(scores, dtype=float).tolist(),
    }
    weights = {"coef": np.asarray(svm.coef_, dtype=np.float64), "intercept": np.asarray([svm.intercept_])}
    return result, weights
