"""Honest statistics of a VAE run: pooled AUC + CI, SVM permutation p-value, the flag in results and report."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from fusion.evaluate.run_statistics import (
    FoldData,
    pooled_auc,
    pooled_scores,
    run_verdict,
    statistics_for_run,
    svm_permutation_test,
)
from fusion.io import save_npz, write_json


def _auc_by_pairs(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney: share of (patient, control) pairs ranked correctly, ties 1/2."""
    pos, neg = s[y == 1], s[y == 0]
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


class MeanDifference:
    """A classifier simple enough to follow by hand: score = x . (mean_1 - mean_0) of its fit set."""

    def fit(self, X, y):
        self.w = X[y == 1].mean(axis=0) - X[y == 0].mean(axis=0)
        return self

    def decision_function(self, X):
        return X @ self.w


def _folds(n: int = 40, signal: float = 1.0, n_folds: int = 4, seed: int = 0) -> list[FoldData]:
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], n // 2)
    X = rng.normal(size=(n, 5))
    X[:, 0] += signal * y
    order = rng.permutation(n)
    return [FoldData(X, y, np.setdiff1d(order, order[k::n_folds]), np.sort(order[k::n_folds])) for k in range(n_folds)]


def test_pooled_auc_concatenates_folds_and_matches_pair_counting() -> None:
    results = [{"test_labels": [0, 1, 1], "scores": [0.1, 0.4, -0.2]},
               {"test_labels": [0, 0, 1], "scores": [0.3, 5.0, 0.35]}]
    y, s = pooled_scores(results)
    np.testing.assert_array_equal(y, [0, 1, 1, 0, 0, 1])
    out = pooled_auc(y, s, n_boot=300, seed=1)
    assert out["auc"] == pytest.approx(_auc_by_pairs(y, s)) == pytest.approx(4 / 9)  # 0.4 and 0.35 beat 0.1 and 0.3
    assert out["ci"][0] <= out["auc"] <= out["ci"][1] and out["n"] == 6
    perfect = pooled_auc(np.array([0, 0, 1, 1]), np.array([0.0, 0.1, 0.9, 1.0]), n_boot=200)
    assert perfect["ci"] == [1.0, 1.0]


def test_permutation_refits_on_permuted_training_labels_only() -> None:
    """Against a hand-written loop: each fold's training labels shuffled, test labels untouched."""
    folds = _folds(signal=0.8)
    n_perm, seed = 30, 3
    out = svm_permutation_test(folds, MeanDifference, n_perm=n_perm, seed=seed)
    y_test = np.concatenate([f.labels[f.test] for f in folds])

    def pooled(rng):
        scores = []
        for f in folds:
            y_fit = f.labels[f.fit] if rng is None else rng.permutation(f.labels[f.fit])
            w = f.features[f.fit][y_fit == 1].mean(0) - f.features[f.fit][y_fit == 0].mean(0)
            scores.append(f.features[f.test] @ w)
        return _auc_by_pairs(y_test, np.concatenate(scores))

    observed = pooled(None)
    rng = np.random.default_rng(seed)
    null = np.array([pooled(rng) for _ in range(n_perm)])
    assert out["auc"] == pytest.approx(observed)
    assert out["p"] == pytest.approx((1 + np.sum(null >= observed - 1e-12)) / (1 + n_perm))


def test_permutation_separates_signal_from_null() -> None:
    assert svm_permutation_test(_folds(signal=2.0), MeanDifference, n_perm=50)["p"] == pytest.approx(1 / 51)
    assert svm_permutation_test(_folds(signal=0.0, seed=5), MeanDifference, n_perm=50)["p"] > 0.05


def test_verdict_flags_chance_and_a_better_baseline() -> None:
    good = {"auc": 0.9, "ci": [0.8, 0.97]}
    assert run_verdict(good, {"p": 0.005}, {"joint@8": {"auc": 0.85}})["interpretable"]
    chance = run_verdict({"auc": 0.55, "ci": [0.4, 0.7]}, {"p": 0.3}, None)
    assert not chance["interpretable"] and "at chance" in chance["reasons"][0]
    below = run_verdict({"auc": 0.7, "ci": [0.6, 0.78]}, {"p": 0.01},
                        {"per_modality@16": {"auc": 0.8}, "joint@16": {"auc": "n/a"}})
    assert not below["interpretable"] and below["best_baseline"] == "per_modality@16"
    assert run_verdict({"auc": 0.55, "ci": [0.45, 0.66]}, None, None)["reasons"][0].endswith("contains 0.5")


def _fake_run(logdir, signal: float):
    rng = np.random.default_rng(0)
    n = 24
    y = np.tile([0, 1], n // 2)
    mu = rng.normal(size=(n, 3, 2))
    mu[:, 0, 0] += signal * y
    ids = np.array([f"s{i}" for i in range(n)])
    for k in range(3):
        test = np.arange(k, n, 3)
        rest = np.setdiff1d(np.arange(n), test)
        folder = logdir / f"fold_{k:02d}"
        folder.mkdir(parents=True)
        save_npz(folder / "latents.npz", mu=mu, labels=y, subject_ids=ids, train=rest[2:], val=rest[:2], test=test)
        from fusion.evaluate.classifiers import LinearSVM
        from fusion.evaluate.fold_classification import classify_fold

        result, _ = classify_fold(
            {"mu": mu, "labels": y, "subject_ids": ids, "train": rest[2:], "val": rest[:2], "test": test},
            LinearSVM(backend="sklearn"),
        )
        write_json(folder / "result.json", {"stage": folder.name, **result})


def test_aggregation_writes_flag_first_and_report_banner(tmp_path) -> None:
    from fusion.report.vae_report import write_vae_report
    from fusion_callbacks.aggregate import ResultsAggregationCallback

    for name, signal in (("null", 0.0), ("signal", 3.0)):
        logdir = tmp_path / name
        _fake_run(logdir, signal)
        callback = ResultsAggregationCallback(n_splits=3, seed=0, logdir=logdir,
                                              statistics={"n_boot": 200, "n_perm": 40}, svm={"backend": "sklearn"})
        callback.on_experiment_end(SimpleNamespace(exception=None, engine=None, seed=0))
        results = json.loads((logdir / "results.json").read_text())
        assert list(results)[:2] == ["interpretable", "flags"]
        stats = results["statistics"]
        assert stats["permutation"]["n_perm"] == 40
        again = statistics_for_run(logdir, lambda: MeanDifference(), n_perm=0)
        assert stats["pooled_auc"]["auc"] == pytest.approx(again["pooled_auc"]["auc"])
        report = write_vae_report(logdir).read_text()
        if signal == 0.0:
            assert results["interpretable"] is False and "at chance" in results["flags"][0]
            assert report.index("WARNING") < report.index("## Classification")
            assert "**Not interpretable**" in report
        else:
            assert results["interpretable"] is True and results["flags"] == []
            assert "WARNING" not in report and stats["permutation"]["p"] == pytest.approx(1 / 41)
