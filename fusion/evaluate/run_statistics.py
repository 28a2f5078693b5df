"""Honest statistics of a cross-validated VAE run: pooled AUC with a bootstrap CI, a label-
permutation p-value of the SVM stage, the PCA baselines on the same folds, and the verdict.

The test folds of a 10-fold run partition the cohort, so every subject has exactly one held-out
decision score. The *pooled* AUC ranks all of them together; its bootstrap CI resamples subjects
(:func:`fusion.evaluate.statistics.bootstrap_ci`). The permutation test keeps the latents fixed
(the VAE is unsupervised, so it never saw a label) and asks whether the SVM stage finds more than
chance: in each permutation the training labels of every fold are shuffled, the SVM refitted and
the pooled AUC of its test scores against the true labels recorded
(:func:`fusion.evaluate.statistics.permutation_pvalue` with ``refit``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fusion.errors import InputError
from fusion.evaluate.metrics import roc_auc
from fusion.evaluate.statistics import (
    bootstrap_ci,
    interpretability,
    permutation_pvalue,
)

__all__ = ["FoldData", "pooled_scores", "pooled_auc", "svm_permutation_test", "pca_baselines_pooled", "run_verdict"]


class FoldData:
    """Features and index sets of one fold: ``features`` ``(n, f)``, ``labels`` ``(n,)``,
    ``fit`` (train + val rows) and ``test`` rows."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, fit: np.ndarray, test: np.ndarray) -> None:
        self.features = np.asarray(features, dtype=float)
        self.labels = np.asarray(labels).astype(int)
        self.fit = np.asarray(fit, dtype=int)
        self.test = np.asarray(test, dtype=int)
        if np.intersect1d(self.fit, self.test).size:
            raise InputError("a fold's test subjects also appear among its training subjects")


def pooled_scores(results: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Test labels and decision scores of every fold's ``result.json``, concatenated."""
    labels, scores = [], []
    for r in results:
        if "test_labels" not in r or "scores" not in r:
            raise InputError(f"fold result {r.get('stage', '?')} has no test_labels/scores")
        labels += list(r["test_labels"])
        scores += list(r["scores"])
    return np.asarray(labels, dtype=int), np.asarray(scores, dtype=float)


def pooled_auc(labels: np.ndarray, scores: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """``{"auc", "ci": [low, high], "n", "n_boot"}`` of pooled test scores."""
    return {"auc": roc_auc(labels, scores), "ci": list(bootstrap_ci(labels, scores, roc_auc, n_boot, seed=seed)),
            "n": int(len(labels)), "n_boot": int(n_boot)}


def _fold_scores(folds: Sequence[FoldData], make_svm: Callable[[], Any], rng: np.random.Generator | None) -> np.ndarray:
    out = []
    for fold in folds:
        y_fit = fold.labels[fold.fit]
        if rng is not None:
            y_fit = rng.permutation(y_fit)
        svm = make_svm().fit(fold.features[fold.fit], y_fit)
        out.append(np.asarray(svm.decision_function(fold.features[fold.test]), dtype=float))
    return np.concatenate(out)


def svm_permutation_test(
    folds: Sequence[FoldData], make_svm: Callable[[], Any], n_perm: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Label-permutation p-value of the SVM stage on fixed features, SVM refitted per permutation.

    Returns:
        ``{"auc" (observed pooled), "p", "n_perm"}``.
    """
    labels = np.concatenate([f.labels[f.test] for f in folds])
    scores = _fold_scores(folds, make_svm, None)
    observed, p = permutation_pvalue(
        labels, scores, roc_auc, n_perm=n_perm, seed=seed,
        refit=lambda rng: roc_auc(labels, _fold_scores(folds, make_svm, rng)))
    return {"auc": observed, "p": p, "n_perm": int(n_perm)}


def pca_baselines_pooled(
    grams: np.ndarray,
    labels: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    components: Sequence[int],
    make_svm: Callable[[], Any],
    adjust: Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Pooled test AUC of both PCA baselines at each component count, on the given folds.

    Args:
        grams: ``(n_modalities, n, n)`` Gram matrices (:func:`fusion.evaluate.pca_baselines.modality_grams`).
        labels: ``(n,)``.
        folds: ``(fit rows, test rows)`` per fold.
        components: l values; a count the fit set cannot support is left out (``"n/a"``).
        make_svm: a new unfitted classifier.
        adjust: optional ``adjust(z_fit, z_test, fold_index) -> (z_fit, z_test)`` (confounds).

    Returns:
        ``"<method>@<l>" -> {"method", "n_components", "auc" (pooled) | "n/a", "fold_auc" (mean)}``.
    """
    from fusion.evaluate.pca import TooManyComponentsError
    from fusion.evaluate.pca_baselines import METHODS, pca_features

    labels = np.asarray(labels).astype(int)
    out: dict[str, dict[str, Any]] = {}
    for method in METHODS:
        for l in components:
            key = f"{method}@{int(l)}"
            ys, ss, fold_aucs = [], [], []
            try:
                for k, (fit, test) in enumerate(folds):
                    z_fit, z_test = pca_features(grams, fit, test, int(l), method)
                    if adjust is not None:
                        z_fit, z_test = adjust(z_fit, z_test, k)
                    s = make_svm().fit(z_fit, labels[fit]).decision_function(z_test)
                    ys.append(labels[test])
                    ss.append(np.asarray(s, dtype=float))
                    fold_aucs.append(roc_auc(labels[test], s))
            except TooManyComponentsError:
                out[key] = {"method": method, "n_components": int(l), "auc": "n/a", "fold_auc": "n/a"}
                continue
            out[key] = {"method": method, "n_components": int(l),
                        "auc": roc_auc(np.concatenate(ys), np.concatenate(ss)), "fold_auc": float(np.mean(fold_aucs))}
    return out


def run_verdict(
    vae: Mapping[str, Any], permutation: Mapping[str, Any] | None, baselines: Mapping[str, Mapping[str, Any]] | None,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """:func:`fusion.evaluate.statistics.interpretability` of the VAE's pooled AUC.

    Without a permutation test the chance criterion is that the CI contains 0.5.
    """
    scored = {k: float(v["auc"]) for k, v in (baselines or {}).items() if isinstance(v.get("auc"), float)}
    p = float(permutation["p"]) if permutation else (1.0 if vae["ci"][0] <= 0.5 else 0.0)
    verdict = interpretability("VAE", float(vae["auc"]), vae["ci"], p, scored or None, metric="pooled AUC", alpha=alpha)
    if not permutation and p > alpha:
        verdict["reasons"] = [
            f"VAE is at chance: pooled AUC {vae['auc']:.3f}, 95% CI {vae['ci'][0]:.3f}-{vae['ci'][1]:.3f} contains 0.5"
        ] + [r for r in verdict["reasons"] if "at chance" not in r]
    return verdict


def fold_features(latents: Mapping[str, np.ndarray], table: Any | None = None,
                  confounds: Mapping[str, Any] | None = None, where: str = "fold") -> np.ndarray:
    """``(n, M * l)`` SVM features of a fold's ``latents.npz``, confound-adjusted when configured.

    Args:
        latents: ``mu`` ``(n, M, l)``, ``subject_ids``, ``train``, ``val``, ``test``.
        table: the prepared folder's ``index.csv`` (needed only with confounds); rows are matched
            to the latents by ``subject_id``.
        confounds: the ``confounds`` node (:func:`fusion.evaluate.confounds.adjust_fold`).
    """
    from fusion.evaluate.confounds import adjust_fold, is_active

    mu = np.asarray(latents["mu"])
    features = mu.reshape(mu.shape[0], -1).astype(float)
    if not is_active(confounds):
        return features
    if table is None:
        raise InputError(f"{where}: confounds are configured but no subject table (index.csv) is available")
    ids = [str(s) for s in np.asarray(latents["subject_ids"])]
    by_id = table.assign(subject_id=table["subject_id"].astype(str)).set_index("subject_id", drop=False)
    missing = [s for s in ids if s not in by_id.index]
    if missing:
        raise InputError(f"{where}: subject(s) {missing[:8]} of the latents are not in the subject table")
    fit = np.concatenate([latents["train"], latents["val"]]).astype(int)
    return adjust_fold(features, by_id.loc[ids].reset_index(drop=True), fit, confounds, where=where)


def statistics_for_run(
    logdir: Any,
    make_svm: Callable[[], Any],
    prepared_dir: Any | None = None,
    table: Any | None = None,
    confounds: Mapping[str, Any] | None = None,
    n_boot: int = 2000,
    n_perm: int = 200,
    components: Sequence[int] = (),
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Pooled AUC + CI, SVM permutation p-value and PCA baselines of a run folder, with the verdict.

    Reads every ``fold_XX/result.json`` and ``latents.npz``; the baselines (when ``components``
    and ``prepared_dir`` are given) use the same folds and the same confound adjustment.

    Returns:
        ``{"pooled_auc": {...}, "permutation": {...} | None, "pca_baselines": {...},
        "verdict": {"interpretable", "reasons", "best_baseline", "best_baseline_value"}}``.
    """
    from pathlib import Path

    from fusion.io import load_npz, read_json

    logdir = Path(logdir)
    results, folds = [], []
    for path in sorted(logdir.glob("fold_*/result.json")):
        latents_path = path.parent / "latents.npz"
        results.append(read_json(path))
        if latents_path.is_file():
            latents = load_npz(latents_path)
            feats = fold_features(latents, table, confounds, where=path.parent.name)
            fit = np.concatenate([latents["train"], latents["val"]]).astype(int)
            folds.append(FoldData(feats, latents["labels"], fit, np.asarray(latents["test"], dtype=int)))
    if not results:
        raise InputError(f"no fold_*/result.json in {logdir}")
    y, s = pooled_scores(results)
    vae = pooled_auc(y, s, n_boot=n_boot, seed=seed)
    permutation = None
    if folds and n_perm > 0 and len(folds) == len(results):
        permutation = svm_permutation_test(folds, make_svm, n_perm, seed)
    baselines: dict[str, Any] = {}
    if components and prepared_dir is not None and folds:
        from fusion.evaluate.pca_baselines import load_prepared, modality_grams

        cohort = load_prepared(prepared_dir)
        grams = modality_grams(cohort, progress=False)
        sets = [(f.fit, f.test) for f in folds]
        adjust = None
        if confounds is not None and table is not None:
            from fusion.evaluate.confounds import adjust_fold, is_active

            if is_active(confounds):
                def adjust(z_fit, z_test, k):
                    fit, test = sets[k]
                    rows = np.concatenate([fit, test])
                    out = adjust_fold(np.concatenate([z_fit, z_test]), table.iloc[rows].reset_index(drop=True),
                                      np.arange(len(fit)), confounds, where=f"PCA baseline fold {k}")
                    return out[:len(fit)], out[len(fit):]
        baselines = pca_baselines_pooled(grams, cohort.labels, sets, components, make_svm, adjust)
    return {"pooled_auc": vae, "permutation": permutation, "pca_baselines": baselines,
            "verdict": run_verdict(vae, permutation, baselines, alpha)}
