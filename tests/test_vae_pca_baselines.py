"""PCA fusion baselines: features equal scikit-learn PCA, folds of a run are honoured, n/a is reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA

from fusion.data.folds import save_folds, stratified_folds
from fusion.errors import InputError
from fusion.evaluate.classifiers import LinearSVM
from fusion.evaluate.metrics import roc_auc
from fusion.evaluate.pca_baselines import (
    baselines_for_run,
    fold_sets,
    load_prepared,
    modality_grams,
    pca_features,
)

N_MOD, SHAPE = 4, (3, 4, 2)


def _write_prepared(root, n=40, seed=0, informative=1):
    """A tiny prepared cohort: (4, 3, 4, 2) per subject, group effect in one modality."""
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1], n // 2)
    rows = []
    volumes = rng.normal(size=(n, N_MOD, *SHAPE)).astype(np.float32)
    volumes[labels == 1, informative, :2] += 1.2
    volumes += 3.0  # offsets the centring must remove
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sid = f"sub-{i:03d}"
        np.save(root / f"{sid}.npy", volumes[i])
        rows.append({"subject_id": sid, "label": labels[i], "path": f"{sid}.npy"})
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    return volumes.reshape(n, -1).astype(np.float64), labels


def _match_up_to_sign(A, B, atol=1e-6):
    signs = np.sign(np.sum(A * B, axis=0))
    np.testing.assert_allclose(A * signs, B, atol=atol)


def test_features_equal_sklearn_pca(tmp_path):
    X, labels = _write_prepared(tmp_path / "prep")
    cohort = load_prepared(tmp_path / "prep")
    assert cohort.n_modalities == N_MOD and cohort.source.n_features == X.shape[1]
    grams = modality_grams(cohort, chunk_size=5, backend="numpy", progress=False)
    fit, test = np.arange(0, 30), np.arange(30, 40)
    z_fit, z_test = pca_features(grams, fit, test, 3, "joint")
    ref = PCA(3, svd_solver="full").fit(X[fit])
    _match_up_to_sign(z_fit, ref.transform(X[fit]))
    _match_up_to_sign(z_test, ref.transform(X[test]))
    z_fit, z_test = pca_features(grams, fit, test, 3, "per_modality")
    assert z_fit.shape == (30, N_MOD * 3)
    per = X.shape[1] // N_MOD
    for m in range(N_MOD):
        cols = slice(m * per, (m + 1) * per)
        ref = PCA(3, svd_solver="full").fit(X[fit][:, cols])
        _match_up_to_sign(z_fit[:, m * 3:(m + 1) * 3], ref.transform(X[fit][:, cols]))
        _match_up_to_sign(z_test[:, m * 3:(m + 1) * 3], ref.transform(X[test][:, cols]))


def test_run_folds_are_used_and_auc_matches_reference(tmp_path):
    X, labels = _write_prepared(tmp_path / "prep")
    ids = [f"sub-{i:03d}" for i in range(len(labels))]
    folds = stratified_folds(labels, n_splits=4, val_fraction=0.1, seed=7)
    save_folds(tmp_path / "run" / "splits.json", folds, ids, seed=7)
    records = baselines_for_run(
        tmp_path / "prep", [2, 40], splits=tmp_path / "run" / "splits.json",
        svm={"C": 1.0, "backend": "sklearn"}, chunk_size=7, backend="numpy", progress=False,
    )
    by_key = {(r["method"], r["latent_dim"]): r for r in records}
    # independent reference: scikit-learn PCA on the joint features, same SVM, per fold
    expected = []
    for fold in folds:
        fit = np.sort(np.concatenate([fold.train, fold.val]))
        pca = PCA(2, svd_solver="full").fit(X[fit])
        svm = LinearSVM(C=1.0, backend="sklearn").fit(pca.transform(X[fit]), labels[fit])
        expected.append(roc_auc(labels[fold.test], svm.decision_function(pca.transform(X[fold.test]))))
    joint = by_key[("joint", 2)]
    assert joint["status"] == "ok" and len(joint["auc"]) == 4
    np.testing.assert_allclose(joint["auc"], expected, atol=1e-6)
    assert joint["auc_mean"] == pytest.approx(np.mean(expected))
    assert by_key[("per_modality", 2)]["n_features"] == N_MOD * 2
    # 40 components from ~30 fit subjects: reported, not faked
    for method in ("joint", "per_modality"):
        r = by_key[(method, 40)]
        assert r["status"] == "n/a" and r["auc"] is None and r["auc_mean"] == "n/a"
    # the planted modality makes the baselines informative
    assert by_key[("per_modality", 2)]["auc_mean"] > 0.7


def test_foreign_splits_are_refused(tmp_path):
    _, labels = _write_prepared(tmp_path / "prep")
    folds = stratified_folds(labels, n_splits=4, seed=1)
    save_folds(tmp_path / "splits.json", folds, [f"other-{i}" for i in range(len(labels))])
    with pytest.raises(InputError, match="other subjects"):
        baselines_for_run(tmp_path / "prep", [2], splits=tmp_path / "splits.json", backend="numpy", progress=False)


def test_bad_prepared_dir_and_folds(tmp_path):
    with pytest.raises(InputError, match="index.csv"):
        load_prepared(tmp_path)
    _write_prepared(tmp_path / "prep", n=8)
    (tmp_path / "prep" / "sub-003.npy").unlink()
    with pytest.raises(InputError, match="sub-003"):
        load_prepared(tmp_path / "prep")

    class F:
        train, val, test = np.array([0, 1]), np.array([2]), np.array([2, 3])

    with pytest.raises(InputError, match="test subjects"):
        fold_sets([F()], 4)
