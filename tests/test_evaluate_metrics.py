"""Metrics: ROC-AUC by ranks and binary metrics against scikit-learn; errors name the argument."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

from fusion.errors import InputError
from fusion.evaluate.metrics import binary_metrics, roc_auc, roc_curve_points


def test_auc_hand_example():
    # Pairs (pos, neg): 0.35 > 0.1, 0.35 < 0.4, 0.8 > 0.1, 0.8 > 0.4 -> 3 of 4.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # A tie between a positive and a negative counts one half.
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert roc_auc([0, 0, 1], [0.2, 0.5, 0.5]) == 0.75
    assert roc_auc([1, 1, 0], [3.0, 2.0, 1.0]) == 1.0
    assert roc_auc([1, 1, 0], [1.0, 2.0, 3.0]) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    y = rng.integers(0, 2, size=n)
    y[:2] = [0, 1]
    score = np.round(rng.normal(size=n) + 0.7 * y, 1)  # rounding makes many ties
    assert np.unique(score).size < n
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert roc_auc(y.astype(bool), score.tolist()) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_roc_curve_points_integrate_to_the_auc():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, size=120)
    score = np.round(rng.normal(size=120) + y, 1)
    fpr, tpr, thresholds = roc_curve_points(y, score)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.isinf(thresholds[0])
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(roc_auc(y, score), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_binary_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=50)
    y[:2] = [0, 1]
    pred = np.where(rng.random(50) < 0.7, y, 1 - y)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    m = binary_metrics(y, pred)
    assert set(m) == {"accuracy", "sensitivity", "specificity", "f1"}
    assert m["accuracy"] == pytest.approx((tp + tn) / 50)
    assert m["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["f1"] == pytest.approx(f1_score(y, pred, pos_label=1))


def test_binary_metrics_hand_example():
    # y: 1 1 1 0 0, pred: 1 0 1 1 0 -> tp 2, fn 1, fp 1, tn 1.
    m = binary_metrics([1, 1, 1, 0, 0], [1, 0, 1, 1, 0])
    assert m == pytest.approx({"accuracy": 0.6, "sensitivity": 2 / 3, "specificity": 0.5, "f1": 4 / 6})
    # Nothing predicted positive: F1 is 0, not an error.
    assert binary_metrics([1, 0], [0, 0])["f1"] == 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: roc_auc([1, 1, 1], [0.1, 0.2, 0.3]), "y_true holds only class 1"),
        (lambda: roc_auc([0, 0], [0.1, 0.2]), "y_true holds only class 0"),
        (lambda: binary_metrics([0, 0, 0], [0, 1, 0]), "y_true holds only class 0"),
        (lambda: roc_curve_points([1, 1], [0.1, 0.2]), "y_true"),
        (lambda: roc_auc([0, 2, 1], [0.1, 0.2, 0.3]), "y_true must hold only the labels 0 and 1"),
        (lambda: binary_metrics([0, 1, 1], [0, 1, -1]), "y_pred must hold only the labels 0 and 1"),
        (lambda: binary_metrics([0, 1, 1], [0, 1]), "y_pred must have the shape"),
        (lambda: roc_auc([0, 1, 1], [0.1, 0.2]), "score must be a 1D array"),
        (lambda: roc_auc([0, 1], [0.1, np.nan]), "finite"),
        (lambda: roc_auc([[0, 1]], [[0.1, 0.2]]), "y_true must be a non-empty 1D"),
        (lambda: roc_auc([], []), "y_true must be a non-empty 1D"),
        (lambda: roc_auc(["a", "b"], [0.1, 0.2]), "y_true must hold only"),
    ],
)
def test_errors_name_the_argument(call, match):
    with pytest.raises(InputError, match=match):
        call()
