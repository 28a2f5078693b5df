"""PCA fusion baselines of Geenjaar et al. (2021), Table I, on the folds of a VAE run.

Two baselines, named for what they do (the paper's text swaps the names once):

- **joint PCA = early fusion**: the 54 modalities of a subject concatenated into one feature vector,
  one PCA with l components;
- **per-modality PCA = late fusion**: one PCA per modality with l components each, the 54 x l
  projections concatenated (the same feature layout as the VAE's latents).

Each is fitted on the training + validation subjects of a fold (the set the VAE's SVM is trained
on), the same linear SVM is trained on their projections and scored by ROC-AUC on the test fold.
A component count above what the fit set supports is reported as ``"n/a"``, never filled in.

All folds and component counts come from one streamed pass over the prepared volumes: the
subjects x subjects Gram matrix of every modality (:func:`fusion.evaluate.pca.gram_matrices`);
the joint Gram matrix is their sum, and every fold's PCA is derived from them exactly
(:func:`fusion.evaluate.pca.pca_from_gram`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fusion.errors import ConfigError, InputError
from fusion.evaluate.chunk_sources import NpyStackSource
from fusion.evaluate.pca import TooManyComponentsError, gram_matrices, pca_from_gram

__all__ = [
    "METHODS",
    "PreparedCohort",
    "evaluate_baseline",
    "fold_sets",
    "load_prepared",
    "modality_grams",
    "pca_features",
    "run_pca_baselines",
]

logger = logging.getLogger(__name__)

#: method key -> row label in the tables (early/late named for what they do)
METHODS: dict[str, str] = {
    "joint": "Early fusion PCA (joint)",
    "per_modality": "Late fusion PCA (per-modality)",
}

NA = "n/a"


@dataclass
class PreparedCohort:
    """A prepared VAE cohort, streamed from disk.

    Attributes:
        source: one memory-mapped ``(n_modalities, X, Y, Z)`` array per subject, flattened.
        labels: ``(n_subjects,)`` 0/1.
        subject_ids: in ``index.csv`` order.
        n_modalities: modalities per subject (54).
    """

    source: NpyStackSource
    labels: np.ndarray
    subject_ids: list[str]
    n_modalities: int

    @property
    def groups(self) -> list[tuple[int, int]]:
        """Column range ``(start, stop)`` of each modality in a subject's flattened features."""
        per = self.source.n_features // self.n_modalities
        return [(m * per, (m + 1) * per) for m in range(self.n_modalities)]


def load_prepared(prepared_dir: str | os.PathLike) -> PreparedCohort:
    """Open a prepared cohort (``index.csv`` with ``subject_id,label,path``) for streaming.

    Paths in ``index.csv`` may be relative to the prepared folder.
    """
    import pandas as pd

    prepared_dir = Path(prepared_dir)
    index_path = prepared_dir / "index.csv"
    if not index_path.is_file():
        raise InputError(f"{index_path} does not exist: run `fusion prepare` first (or give the prepared folder)")
    index = pd.read_csv(index_path, dtype={"subject_id": str})
    missing = {"subject_id", "label", "path"} - set(index.columns)
    if missing:
        raise InputError(f"{index_path} lacks the column(s) {sorted(missing)}")
    paths = [p if Path(p).is_absolute() else prepared_dir / p for p in index["path"]]
    for sid, path in zip(index["subject_id"], paths):
        if not Path(path).is_file():
            raise InputError(f"{index_path}: prepared file {path} of subject {sid} does not exist")
    labels = index["label"].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        raise InputError(f"{index_path}: labels must be 0/1, got {sorted(set(labels.tolist()))[:5]}")
    source = NpyStackSource(paths)
    if len(source.item_shape) != 4:
        raise InputError(f"prepared arrays must be (n_modalities, X, Y, Z), got {source.item_shape}")
    return PreparedCohort(source, labels.astype(int), index["subject_id"].tolist(), source.item_shape[0])


def modality_grams(
    cohort: PreparedCohort, chunk_size: int = 32768, backend: str = "auto", progress: bool = True
) -> np.ndarray:
    """Gram matrices of all subjects per modality, ``(n_modalities, n, n)``, in one pass."""
    logger.info(
        "PCA baselines: Gram matrices of %d subjects x %d modalities x %d features (chunks of %d)",
        cohort.source.n_samples, cohort.n_modalities, cohort.source.n_features // cohort.n_modalities, chunk_size,
    )
    return gram_matrices(cohort.source, cohort.groups, chunk_size=chunk_size, backend=backend, progress=progress)


def pca_features(
    grams: np.ndarray, fit: np.ndarray, test: np.ndarray, n_components: int, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """PCA projections of the fit and test subjects for one baseline.

    Args:
        grams: ``(n_modalities, n, n)`` per-modality Gram matrices of all subjects.
        fit: subject indices the PCA (and later the SVM) is fitted on.
        test: subject indices to project.
        n_components: l.
        method: ``"joint"`` (one PCA on all modalities: l features) or ``"per_modality"`` (one PCA
            per modality: n_modalities x l features, modality-major).

    Returns:
        ``(Z_fit, Z_test)``.

    Raises:
        TooManyComponentsError: l exceeds what the fit set supports.
    """
    if method == "joint":
        return pca_from_gram(grams.sum(axis=0), fit, test, n_components)
    if method == "per_modality":
        parts = [pca_from_gram(K, fit, test, n_components) for K in grams]
        return np.concatenate([p[0] for p in parts], axis=1), np.concatenate([p[1] for p in parts], axis=1)
    raise ConfigError(f"unknown PCA baseline {method!r}; expected one of {sorted(METHODS)}")


def evaluate_baseline(
    grams: np.ndarray,
    labels: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    n_components: int,
    method: str,
    svm: Mapping | None = None,
) -> dict:
    """Cross-validated ROC-AUC of one baseline at one component count.

    Args:
        grams: ``(n_modalities, n, n)`` Gram matrices.
        labels: ``(n,)`` 0/1.
        folds: ``(fit indices, test indices)`` per fold (fit = train + validation).
        n_components: l.
        method: ``"joint"`` or ``"per_modality"``.
        svm: keyword arguments of :class:`fusion.evaluate.classifiers.LinearSVM`.

    Returns:
        ``{"method", "label", "n_components", "status": "ok"|"n/a", "auc": [per fold] | None,
        "auc_mean", "auc_std" (floats, or "n/a"), "n_features", "reason" (n/a only)}``.
    """
    from fusion.evaluate.classifiers import LinearSVM
    from fusion.evaluate.metrics import roc_auc

    labels = np.asarray(labels)
    aucs, n_features = [], None
    for fit, test in folds:
        try:
            z_fit, z_test = pca_features(grams, fit, test, n_components, method)
        except TooManyComponentsError as err:
            logger.info("%s at l=%d: n/a (%s)", METHODS[method], n_components, err)
            return {
                "method": method, "label": METHODS[method], "n_components": int(n_components), "status": NA,
                "auc": None, "auc_mean": NA, "auc_std": NA, "n_features": None,
                "reason": f"{n_components} components > {err.available} available with {err.n_train} fit subjects",
            }
        model = LinearSVM(**dict(svm or {})).fit(z_fit, labels[fit])
        aucs.append(roc_auc(labels[test], model.decision_function(z_test)))
        n_features = z_fit.shape[1]
    return {
        "method": method, "label": METHODS[method], "n_components": int(n_components), "status": "ok",
        "auc": aucs, "auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs)), "n_features": n_features,
    }


def fold_sets(folds: Sequence, n_subjects: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(fit = train + val, test)`` index arrays from ``Fold``-like objects, checked for overlap."""
    out = []
    for k, fold in enumerate(folds):
        fit = np.concatenate([np.asarray(fold.train, dtype=int), np.asarray(fold.val, dtype=int)])
        test = np.asarray(fold.test, dtype=int)
        if np.intersect1d(fit, test).size:
            raise InputError(f"fold {k}: test subjects also appear in train/val")
        if (fit.size == 0 or test.size == 0
                or max(fit.max(), test.max()) >= n_subjects or min(fit.min(), test.min()) < 0):
            raise InputError(f"fold {k}: subject indices must lie in 0..{n_subjects - 1} and be non-empty")
        out.append((np.sort(fit), np.sort(test)))
    if not out:
        raise InputError("no folds given")
    return out


def run_pca_baselines(
    grams: np.ndarray,
    labels: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    latent_dims: Sequence[int],
    methods: Sequence[str] = tuple(METHODS),
    svm: Mapping | None = None,
) -> list[dict]:
    """Every baseline at every component count; see :func:`evaluate_baseline` for the records."""
    for method in methods:
        if method not in METHODS:
            raise ConfigError(f"unknown PCA baseline {method!r}; expected one of {sorted(METHODS)}")
    records = []
    for method in methods:
        for l in latent_dims:
            record = evaluate_baseline(grams, labels, folds, int(l), method, svm)
            if record["status"] == "ok":
                logger.info("%s l=%d: AUC %.4f +- %.4f", record["label"], l, record["auc_mean"], record["auc_std"])
            records.append(record)
    return records


def baselines_for_run(
    prepared_dir: str | os.PathLike,
    latent_dims: Sequence[int],
    splits: str | os.PathLike | None = None,
    n_splits: int = 10,
    val_fraction: float = 0.1,
    seed: int = 42,
    methods: Sequence[str] = tuple(METHODS),
    svm: Mapping | None = None,
    chunk_size: int = 32768,
    backend: str = "auto",
    progress: bool = True,
) -> list[dict]:
    """Both PCA baselines on the folds of a VAE run (or on freshly drawn folds).

    Args:
        prepared_dir: the prepared cohort the VAE was trained on.
        latent_dims: component counts l to evaluate.
        splits: a run's ``splits.json``; its subject ids must be those of ``prepared_dir``. When
            None, folds are drawn with :func:`fusion.data.folds.stratified_folds` from
            ``n_splits``, ``val_fraction`` and ``seed`` (the VAE run's values give its folds).
        methods: subset of :data:`METHODS`.
        svm: :class:`~fusion.evaluate.classifiers.LinearSVM` keyword arguments (as the VAE run's).
        chunk_size: features per streamed chunk.
        backend: Gram products on ``"auto"``, ``"cupy"`` or ``"numpy"``.

    Returns:
        Records as :func:`evaluate_baseline`, each with ``latent_dim`` set.
    """
    from fusion.data.folds import load_folds, stratified_folds

    cohort = load_prepared(prepared_dir)
    if splits is not None:
        folds = load_folds(splits, subject_ids=cohort.subject_ids)
    else:
        folds = stratified_folds(cohort.labels, n_splits=n_splits, val_fraction=val_fraction, seed=seed)
    sets = fold_sets(folds, len(cohort.labels))
    grams = modality_grams(cohort, chunk_size=chunk_size, backend=backend, progress=progress)
    records = run_pca_baselines(grams, cohort.labels, sets, latent_dims, methods, svm)
    for r in records:
        r["latent_dim"] = r["n_components"]
    return records
