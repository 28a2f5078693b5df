"""Modality importance from SVM weights, its recall score, and the run-directory analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusion import io
from fusion.errors import InputError
from fusion.evaluate.classifiers import LinearSVM
from fusion.evaluate.importance import (
    analyze_importance,
    fold_importances,
    importance_table,
    modality_importance,
    modality_recall,
)
from fusion.workflows.importance import importance_with_figure


def test_importance_is_abs_weight_mass_per_modality():
    coef = np.array([1.0, -1.0, 0.0, 0.0, -4.0, 2.0])  # 3 modalities x l=2
    imp = modality_importance(coef, n_modalities=3)
    np.testing.assert_allclose(imp, [2 / 8, 0.0, 6 / 8])
    with pytest.raises(InputError, match="n_modalities"):
        modality_importance(np.ones(7), n_modalities=3)
    with pytest.raises(InputError, match="all zeros"):
        modality_importance(np.zeros(6), n_modalities=3)


def _latents(n_subjects=120, n_modalities=54, l=4, informative=(17,), shift=1.5, seed=0):
    """Synthetic mu (n, 54, l): only the informative modalities differ between the groups."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n_subjects // 2)
    mu = rng.normal(size=(n_subjects, n_modalities, l))
    for m in informative:
        mu[y == 1, m, :2] += shift
    return mu.reshape(n_subjects, -1), y


def test_svm_importance_ranks_the_informative_modality_first():
    X, y = _latents(informative=(17,))
    per_fold = []
    for fold in range(3):  # three resampled "folds": importance must be stable across them
        idx = np.random.default_rng(fold).choice(len(y), size=100, replace=False)
        svm = LinearSVM(C=1.0, backend="sklearn").fit(X[idx], y[idx])
        per_fold.append(svm.coef_)
    imp = fold_importances(per_fold, n_modalities=54)
    np.testing.assert_allclose(imp.sum(axis=1), 1.0)
    table = importance_table(imp)
    assert table.loc[table["rank"] == 1, "modality"].item() == 17
    assert table.loc[17, "name"] == "ICN18 (VI)"
    assert table.loc[53, "domain"] == "sMRI"
    assert modality_recall(table["mean"].to_numpy(), [17]) == 1.0
    # a wrong ground truth is not rewarded
    assert modality_recall(table["mean"].to_numpy(), [3]) == 0.0


def test_recall_on_constructed_rankings():
    imp = np.array([0.05, 0.4, 0.1, 0.3, 0.15])  # ranking: 1, 3, 4, 2, 0
    assert modality_recall(imp, [1, 3]) == 1.0
    assert modality_recall(imp, [1, 4]) == 0.5
    assert modality_recall(imp, [0, 2]) == 0.0
    assert modality_recall(imp, [1, 3, 4]) == 1.0
    assert modality_recall(imp, [0, 1, 3]) == pytest.approx(2 / 3)
    with pytest.raises(InputError, match="outside"):
        modality_recall(imp, [5])
    with pytest.raises(InputError, match="empty"):
        modality_recall(imp, [])


def test_table_statistics_and_ranks():
    per_fold = np.array([[0.5, 0.3, 0.2], [0.3, 0.5, 0.2]])
    table = importance_table(per_fold, names=["a", "b", "c"], domains=["x", "y", "z"])
    np.testing.assert_allclose(table["mean"], [0.4, 0.4, 0.2])
    np.testing.assert_allclose(table["std"], [0.1, 0.1, 0.0])
    assert table["rank"].tolist() == [1, 2, 3]  # tie broken by index
    with pytest.raises(InputError, match="names"):
        importance_table(per_fold, names=["a"], domains=["x", "y", "z"])


def test_analyze_run_directory(tmp_path):
    X, y = _latents(informative=(4, 30), l=3, shift=2.0)
    run = tmp_path / "run"
    for fold in range(3):
        idx = np.random.default_rng(fold).choice(len(y), size=100, replace=False)
        svm = LinearSVM(C=1.0, backend="sklearn").fit(X[idx], y[idx])
        io.save_npz(run / f"fold_{fold:02d}" / "svm.npz", coef=svm.coef_, intercept=np.array(svm.intercept_))
    (run / "fold_03").mkdir()  # an unfinished fold has no svm.npz and is skipped
    summary = importance_with_figure(run, planted_modalities=[4, 30])
    assert summary["n_folds"] == 3
    assert summary["modality_recall"] == 1.0
    assert set(summary["top"][:2].tolist()) == {4, 30}
    table = pd.read_csv(run / "importance.csv")
    assert list(table.columns) == ["modality_index0", "name", "domain", "mean", "std", "rank"]
    assert table.loc[table["modality_index0"] == 0, "name"].item().startswith("ICN01")
    assert len(table) == 54 and table["mean"].sum() == pytest.approx(1.0)
    png = (run / "importance.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="svm.npz"):
        analyze_importance(tmp_path / "empty")
