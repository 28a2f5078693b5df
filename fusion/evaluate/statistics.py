"""Uncertainty of a classification result: bootstrap confidence intervals and permutation p-values.

A test set of 36-44 subjects gives an accuracy with a standard error near 0.08, so a point value
alone cannot say whether a model beats chance or a baseline. Two tools, both seeded:

- :func:`bootstrap_ci`: percentile interval of a metric over subjects resampled with replacement
  (stratified by class, so every resample holds both classes and AUC is always defined).
- :func:`permutation_pvalue`: how often a metric computed against shuffled labels reaches the
  observed one, ``p = (1 + #{perm >= observed}) / (1 + n_perm)`` (Phipson & Smyth 2010: never 0).
  Applied to fixed predictions it tests "the predictions carry information about the labels";
  with ``refit`` (a callable that retrains a classifier on permuted training labels) it is the
  classical label-permutation test of a whole classifier.

:func:`classification_summary` bundles both for accuracy and AUC, and :func:`interpretability`
turns the result and the best baseline into the verdict the reports print at the top.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from fusion.errors import InputError

__all__ = [
    "accuracy_score",
    "bootstrap_ci",
    "permutation_pvalue",
    "classification_summary",
    "split_summary",
    "interpretability",
]

Metric = Callable[[np.ndarray, np.ndarray], float]


def accuracy_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of equal entries (labels or predicted classes)."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def _auc(y_true: np.ndarray, score: np.ndarray) -> float:
    from fusion.evaluate.metrics import roc_auc

    return roc_auc(y_true, score)


def _check(y: Any, s: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    s = np.asarray(s)
    if y.ndim != 1 or y.size < 2:
        raise InputError(f"labels must be a 1D array of at least 2 subjects, got shape {y.shape}")
    if s.shape[0] != y.shape[0]:
        raise InputError(f"predictions must have one value per label ({y.shape[0]}), got shape {s.shape}")
    return y, s


def bootstrap_ci(
    y_true: Any,
    y_score: Any,
    metric: Metric,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(y_true, y_score)``.

    Subjects are resampled with replacement within each class (the class counts stay those of the
    test set), ``n_boot`` times.

    Args:
        y_true: ``(n,)`` labels.
        y_score: ``(n,)`` predictions or scores, what ``metric`` takes second.
        metric: ``metric(y_true, y_score) -> float``.
        n_boot: bootstrap resamples.
        level: coverage of the interval (0.95: the 2.5th and 97.5th percentiles).
        seed: seed of the resampling.

    Returns:
        ``(low, high)``.
    """
    y, s = _check(y_true, y_score)
    if not 0 < level < 1:
        raise InputError(f"level must lie in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)
    for b in range(n_boot):
        idx = _stratified_resample(rng, y)
        values[b] = metric(y[idx], s[idx])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def permutation_pvalue(
    y_true: Any,
    y_score: Any,
    metric: Metric,
    n_perm: int = 1000,
    seed: int = 0,
    refit: Callable[[np.random.Generator], float] | None = None,
) -> tuple[float, float]:
    """One-sided permutation p-value of ``metric`` (larger = better).

    Without ``refit`` the labels of the fixed predictions are shuffled. With ``refit`` the null
    values come from ``refit(rng)``, which must permute the training labels with ``rng``, refit
    the classifier and return its metric on the unpermuted test labels.

    Returns:
        ``(observed, p)`` with ``p = (1 + #{null >= observed}) / (1 + n_perm)``.
    """
    y, s = _check(y_true, y_score)
    observed = float(metric(y, s))
    rng = np.random.default_rng(seed)
    if refit is None:
        null = np.array([metric(rng.permutation(y), s) for _ in range(n_perm)])
    else:
        null = np.array([refit(rng) for _ in range(n_perm)])
    # A tolerance so that a null value equal to the observed one up to rounding counts as reaching it.
    hits = int(np.sum(null >= observed - 1e-12))
    return observed, float((1 + hits) / (1 + n_perm))


def classification_summary(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    y_score: Sequence[float] | np.ndarray | None = None,
    n_boot: int = 2000,
    n_perm: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy (and AUC when scores are given) with bootstrap 95% CIs and permutation p-values.

    Returns:
        ``{"accuracy", "accuracy_ci", "accuracy_p", "auc", "auc_ci", "auc_p", "n", "n_boot",
        "n_perm"}`` (the AUC keys only with ``y_score``).
    """
    y, pred = _check(y_true, y_pred)
    out: dict[str, Any] = {"n": int(len(y)), "n_boot": int(n_boot), "n_perm": int(n_perm)}
    acc, p = permutation_pvalue(y, pred, accuracy_score, n_perm, seed)
    out.update(accuracy=acc, accuracy_ci=list(bootstrap_ci(y, pred, accuracy_score, n_boot, seed=seed)),
               accuracy_p=p)
    if y_score is not None:
        _, score = _check(y, y_score)
        auc, p = permutation_pvalue(y, score, _auc, n_perm, seed)
        out.update(auc=auc, auc_ci=list(bootstrap_ci(y, score, _auc, n_boot, seed=seed)), auc_p=p)
    return out


def _stratified_resample(rng: np.random.Generator, y: np.ndarray) -> np.ndarray:
    return _stratified_indices(rng, y, 1)[0]


def split_summary(
    splits: Sequence[tuple[Any, Any, Any]],
    n_boot: int = 2000,
    n_perm: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean over splits of accuracy and AUC, with a bootstrap CI and a permutation p-value each.

    For repeated splits (or K folds) the reported value is the mean of the per-split metrics. The
    bootstrap resamples every split's test subjects (stratified by class) independently and takes
    the mean again; the permutation shuffles the labels within every split. With one split these
    are :func:`bootstrap_ci` and :func:`permutation_pvalue` of that split. The CI reflects the
    sampling of test subjects only, not the variation of the training sets.

    Args:
        splits: ``(y_true, y_pred, y_score)`` per split (``y_score`` may be None: no AUC).

    Returns:
        ``{"accuracy", "accuracy_ci", "accuracy_p", "auc", "auc_ci", "auc_p", "n_splits",
        "n_test", "n_boot", "n_perm"}`` (AUC keys only when every split has scores).
    """
    if not splits:
        raise InputError("split_summary needs at least one split")
    data = [(*_check(y, pred), None if score is None else _check(y, score)[1]) for y, pred, score in splits]
    out: dict[str, Any] = {"n_splits": len(data), "n_test": int(sum(len(d[0]) for d in data)),
                           "n_boot": int(n_boot), "n_perm": int(n_perm)}
    kinds = ["accuracy"] + (["auc"] if all(d[2] is not None for d in data) else [])
    for name in kinds:
        col = 1 if name == "accuracy" else 2
        # (labels, predictions or scores) per split; scores only get here when every split has them
        pairs = [(d[0], cast(np.ndarray, d[col])) for d in data]
        observed = float(np.mean([_fast_metric(name, y[None], v[None])[0] for y, v in pairs]))
        rng = np.random.default_rng(seed)
        boots = np.zeros(n_boot)
        for y, v in pairs:
            idx = _stratified_indices(rng, y, n_boot)
            boots += _fast_metric(name, y[idx], v[idx])
        boots /= len(data)
        rng = np.random.default_rng(seed)
        null = np.zeros(n_perm)
        for y, v in pairs:
            perm = np.argsort(rng.random((n_perm, len(y))), axis=1)
            null += _fast_metric(name, y[perm], np.broadcast_to(v, perm.shape))
        null /= len(data)
        low, high = np.percentile(boots, [2.5, 97.5])
        out[name] = observed
        out[f"{name}_ci"] = [float(low), float(high)]
        out[f"{name}_p"] = float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_perm))
    return out


def _stratified_indices(rng: np.random.Generator, y: np.ndarray, n: int) -> np.ndarray:
    """``(n, len(y))`` bootstrap indices, resampled with replacement within each class."""
    groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    return np.concatenate([g[rng.integers(0, len(g), size=(n, len(g)))] for g in groups], axis=1)


def _fast_metric(name: str, y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Accuracy (``v`` = predicted labels) or AUC (``v`` = scores) of every row of ``(k, n)``
    arrays; the AUC by the Mann-Whitney rank formula with average ranks for ties."""
    if name == "accuracy":
        return np.mean(y == v, axis=1)
    from scipy.stats import rankdata

    ranks = rankdata(v, axis=1, method="average")
    n_pos = (y == 1).sum(axis=1)
    n_neg = y.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * (y == 1)).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def interpretability(
    model: str,
    value: float,
    ci: Sequence[float],
    p: float,
    baselines: dict[str, float] | None = None,
    metric: str = "accuracy",
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Whether a model's maps may be read as findings, and why not.

    Not interpretable when the model is at chance (``p > alpha``) or when the best baseline lies
    above the upper end of the model's confidence interval ("worse than the best baseline by more
    than its CI").

    Args:
        model: the model's name, for the message.
        value, ci, p: the model's metric, its CI ``(low, high)`` and its permutation p-value.
        baselines: baseline name -> the same metric on the same subjects.
        metric: the metric's name, for the message.
        alpha: significance level of the chance test.

    Returns:
        ``{"interpretable": bool, "reasons": [str], "best_baseline": name | None,
        "best_baseline_value": float | None}``.
    """
    reasons: list[str] = []
    if p > alpha:
        reasons.append(f"{model} is at chance: {metric} {value:.3f} (95% CI {ci[0]:.3f}-{ci[1]:.3f}), "
                       f"permutation p = {p:.3g} > {alpha}")
    best_name, best_value = None, None
    if baselines:
        best_name = max(baselines, key=lambda k: baselines[k])
        best_value = float(baselines[best_name])
        if best_value > ci[1]:
            reasons.append(f"{model} is below the best baseline: {best_name} {metric} {best_value:.3f} lies above "
                           f"the upper end of {model}'s 95% CI ({ci[1]:.3f})")
    return {"interpretable": not reasons, "reasons": reasons, "best_baseline": best_name,
            "best_baseline_value": best_value}
