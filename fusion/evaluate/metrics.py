"""Binary classification metrics: ROC-AUC, ROC curve points, accuracy/sensitivity/specificity/F1.

The positive class is 1 (patients in the VAE study, the top-score group in gCAM-CCL). Labels may be
given as ``0/1`` integers, floats or booleans.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

from fusion.errors import InputError

__all__ = ["roc_auc", "binary_metrics", "roc_curve_points"]


def _labels(y: Any, name: str) -> np.ndarray:
    """1D int array of 0/1 labels, or an InputError naming the argument."""
    arr = np.asarray(y)
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"{name} must be a non-empty 1D array of 0/1 labels, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isin(arr, (0, 1))):
        values = np.unique(arr.astype(str))[:5].tolist()
        raise InputError(f"{name} must hold only the labels 0 and 1 (1 = positive), got values {values}")
    return arr.astype(np.int64)


def _both_classes(y: np.ndarray, name: str) -> None:
    if y.min() == y.max():
        raise InputError(
            f"{name} holds only class {int(y[0])}: this metric needs both classes (0 and 1) present"
        )


def _scores(score: Any, n: int) -> np.ndarray:
    try:
        arr = np.asarray(score, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"score must hold numbers, got {type(score).__name__}") from exc
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(f"score must be a 1D array with one value per label ({n}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError("score must hold finite numbers (no NaN or inf)")
    return arr


def roc_auc(y_true: Any, score: Any) -> float:
    """Area under the ROC curve, by the Mann-Whitney rank formula.

    ``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` where ``R_pos`` is the sum of the ranks
    of the positive samples' scores; tied scores share their average rank, which counts a tie
    between a positive and a negative as one half.

    Args:
        y_true: ``(n,)`` labels, 1 = positive.
        score: ``(n,)`` scores, larger = more likely positive (e.g. an SVM's decision function).

    Returns:
        The AUC in [0, 1].
    """
    y = _labels(y_true, "y_true")
    _both_classes(y, "y_true")
    s = _scores(score, y.shape[0])
    ranks = rankdata(s, method="average")
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Accuracy, sensitivity (recall of class 1), specificity (recall of class 0) and F1 of class 1.

    Args:
        y_true: ``(n,)`` true labels, 1 = positive.
        y_pred: ``(n,)`` predicted labels in {0, 1}.

    Returns:
        ``{"accuracy", "sensitivity", "specificity", "f1"}`` as floats.
    """
    y = _labels(y_true, "y_true")
    p = _labels(y_pred, "y_pred")
    if p.shape != y.shape:
        raise InputError(f"y_pred must have the shape of y_true {y.shape}, got {p.shape}")
    _both_classes(y, "y_true")
    tp = int(np.sum((y == 1) & (p == 1)))
    tn = int(np.sum((y == 0) & (p == 0)))
    fp = int(np.sum((y == 0) & (p == 1)))
    fn = int(np.sum((y == 1) & (p == 0)))
    return {
        "accuracy": (tp + tn) / y.shape[0],
        "sensitivity": tp / (tp + fn),
        "specificity": tn / (tn + fp),
        "f1": 2 * tp / (2 * tp + fp + fn),
    }


def roc_curve_points(y_true: Any, score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve for plotting.

    Args:
        y_true: ``(n,)`` labels, 1 = positive.
        score: ``(n,)`` scores, larger = more likely positive.

    Returns:
        ``(fpr, tpr, thresholds)``, each ``(m,)``, from (0, 0) to (1, 1); the first threshold is
        ``inf``.
    """
    from sklearn.metrics import roc_curve

    y = _labels(y_true, "y_true")
    _both_classes(y, "y_true")
    s = _scores(score, y.shape[0])
    fpr, tpr, thresholds = roc_curve(y, s, pos_label=1, drop_intermediate=False)
    return fpr, tpr, thresholds
