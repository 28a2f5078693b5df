"""gCAM-CCL on cohorts it was not tuned on: variants, training-only standardisation, repeated
splits, statistics against hand computations, consensus maps, the verdict, ccl-validate."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fusion.errors import ConfigError

R, P = 12, 20


def _cohort(root: Path, n: int = 30) -> Path:
    rng = np.random.default_rng(7)
    (root / "fc").mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(n):
        a = rng.normal(loc=0.5, size=(R, R)).astype(np.float32)
        a = (a + a.T) / 2
        np.fill_diagonal(a, 0.0)
        np.save(root / "fc" / f"s{k:02d}.npy", a)
        rows.append({"subject_id": f"s{k:02d}", "label": k % 2, "fc_path": f"fc/s{k:02d}.npy"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    g = pd.DataFrame(rng.integers(0, 3, size=(n, P)), columns=[f"rs{j}" for j in range(P)])
    g.insert(0, "subject_id", [f"s{k:02d}" for k in range(n)])
    g.to_csv(root / "genotypes.csv", index=False)
    return root / "manifest.csv"


# ---------------------------------------------------------------- standardisation
def test_standardisation_is_fitted_on_training_subjects_only(tmp_path):
    from fusion.data.ccl_dataset import CCLDataset

    manifest = _cohort(tmp_path)
    train = np.arange(0, 20)
    ds = CCLDataset(manifest, n_rois=R, n_snps=P, fc_standardize="edge", snp_standardize="snp")
    with pytest.raises(ConfigError, match=r"fit\(train_indices\)"):
        ds[0]
    ds.fit(train)
    fc, snps, _ = ds.arrays(train)
    off = ~np.eye(R, dtype=bool)
    np.testing.assert_allclose(fc.mean(0)[off], 0, atol=1e-5)   # every edge centred on the training subjects
    np.testing.assert_allclose(fc.std(0)[off], 1, atol=1e-4)
    np.testing.assert_allclose(snps.mean(0), 0, atol=1e-5)
    np.testing.assert_array_equal(fc[:, ~off], 0)               # the constant diagonal stays 0, not NaN
    raw = np.stack([np.load(tmp_path / "fc" / f"s{k:02d}.npy") for k in train])
    np.testing.assert_allclose(fc, (raw - raw.mean(0)) / np.where(raw.std(0) > 0, raw.std(0), 1), atol=1e-4)
    before = ds[25]["fc"].numpy()
    # A test subject made extreme changes nothing a training-fitted standardisation produces.
    for k in range(20, 30):
        np.save(tmp_path / "fc" / f"s{k:02d}.npy", 100 * np.load(tmp_path / "fc" / f"s{k:02d}.npy"))
    ds2 = CCLDataset(manifest, n_rois=R, n_snps=P, fc_standardize="edge", snp_standardize="snp").fit(train)
    np.testing.assert_array_equal(ds2.arrays(train)[0], fc)
    assert not np.allclose(ds2[25]["fc"].numpy(), before)  # the test subject itself did change
    with pytest.raises(ConfigError, match="fc_standardize"):
        CCLDataset(manifest, n_rois=R, n_snps=P, fc_standardize="global")


def test_fc_centring_subtracts_the_training_mean_and_keeps_each_edges_spread(tmp_path):
    from fusion.data.ccl_dataset import CCLDataset

    manifest = _cohort(tmp_path)
    train = np.arange(0, 20)
    raw = np.stack([np.load(tmp_path / "fc" / f"s{k:02d}.npy") for k in range(30)])
    ds = CCLDataset(manifest, n_rois=R, n_snps=P, fc_standardize="center").fit(train)
    fc, _, _ = ds.arrays(np.arange(30))
    np.testing.assert_allclose(fc, raw - raw[train].mean(0), atol=1e-5)   # test subjects: training mean
    np.testing.assert_allclose(fc[train].std(0), raw[train].std(0), atol=1e-5)  # spread unchanged
    # Fitted on other training subjects, the same subject reads differently: the mean is the split's.
    other = CCLDataset(manifest, n_rois=R, n_snps=P, fc_standardize="center").fit(np.arange(10, 30))
    assert not np.allclose(other[0]["fc"].numpy()[0], fc[0])


# ---------------------------------------------------------------- repeated splits
def test_repeated_splits_are_disjoint_stratified_and_differ(tmp_path):
    from fusion_callbacks.ccl_split import CCLSplitCallback

    labels = np.array([0] * 40 + [1] * 20)
    runner = SimpleNamespace(
        dataset=SimpleNamespace(labels=labels, class_names=["low", "high"], subject_ids=[f"s{k}" for k in range(60)]),
        select=lambda key, default=None: default, seed=3, stage_indices={}, engine=None, logdir=tmp_path)
    CCLSplitCallback(seed=3, repetitions=4).on_experiment_start(runner)
    assert sorted(runner.stage_indices) == [f"fold_{k:02d}" for k in range(4)]
    tests = []
    for split in runner.stage_indices.values():
        parts = [set(split[p].tolist()) for p in ("train", "valid", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert set().union(*parts) == set(range(60))
        for part, n_low, n_high in (("valid", 6, 3), ("test", 6, 3)):  # 15% of each class
            y = labels[split[part]]
            assert (int((y == 0).sum()), int((y == 1).sum())) == (n_low, n_high)
        tests.append(tuple(split["test"]))
    assert len(set(tests)) == 4
    saved = json.loads((tmp_path / "splits.json").read_text())
    assert len(saved["folds"]) == 4
    with pytest.raises(ConfigError, match="repetitions"):
        CCLSplitCallback(repetitions=0)


# ---------------------------------------------------------------- statistics
def test_permutation_p_matches_the_exact_permutation_distribution():
    from fusion.evaluate.statistics import accuracy_score, permutation_pvalue

    # 3 + 3 subjects, perfect predictions: a random relabelling is perfect in 1 of C(6, 3) cases.
    y = np.array([0, 0, 0, 1, 1, 1])
    observed, p = permutation_pvalue(y, y.copy(), accuracy_score, n_perm=20000, seed=1)
    assert observed == 1.0
    assert p == pytest.approx(1 / comb(6, 3), abs=0.006)
    # a constant prediction carries no information: every permutation reaches it
    assert permutation_pvalue(y, np.zeros(6, int), accuracy_score, n_perm=200)[1] == 1.0


def test_bootstrap_ci_matches_the_binomial_standard_error():
    from fusion.evaluate.statistics import accuracy_score, bootstrap_ci, split_summary

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    pred = np.where(rng.random(400) < 0.8, y, 1 - y)
    acc = accuracy_score(y, pred)
    half = 1.96 * np.sqrt(acc * (1 - acc) / 400)  # normal approximation, stratified resampling is close
    low, high = bootstrap_ci(y, pred, accuracy_score, n_boot=4000, seed=2)
    assert low == pytest.approx(acc - half, abs=0.01) and high == pytest.approx(acc + half, abs=0.01)
    one = split_summary([(y, pred, None)], n_boot=4000, n_perm=200, seed=2)
    assert one["accuracy"] == acc and one["accuracy_ci"] == pytest.approx([low, high], abs=0.01)
    assert one["accuracy_p"] == pytest.approx(1 / 201)  # no permutation reaches 0.8 on 400 subjects
    # two halves as two splits: the mean of their accuracies, and a CI as wide as the pooled one
    two = split_summary([(y[::2], pred[::2], None), (y[1::2], pred[1::2], None)], n_boot=4000, n_perm=200, seed=2)
    assert two["accuracy"] == pytest.approx(np.mean([accuracy_score(y[::2], pred[::2]),
                                                     accuracy_score(y[1::2], pred[1::2])]))
    assert two["accuracy_ci"][1] - two["accuracy_ci"][0] == pytest.approx(2 * half, abs=0.012)


def test_vectorised_auc_matches_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    from fusion.evaluate.statistics import _fast_metric

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=(50, 30))
    y[:, :2] = [0, 1]
    s = rng.integers(0, 5, size=(50, 30)).astype(float)  # many ties
    np.testing.assert_allclose(_fast_metric("auc", y, s), [roc_auc_score(a, b) for a, b in zip(y, s)])


def test_verdict_names_chance_and_a_better_baseline():
    from fusion.evaluate.statistics import interpretability

    ok = interpretability("gCAM-CCL", 0.85, (0.75, 0.93), 0.001, {"SVM": 0.90})
    assert ok["interpretable"] and ok["best_baseline"] == "SVM"
    chance = interpretability("gCAM-CCL", 0.55, (0.40, 0.70), 0.3, {"SVM": 0.52, "Logist": 0.6})
    assert not chance["interpretable"] and "at chance" in chance["reasons"][0]
    below = interpretability("gCAM-CCL", 0.70, (0.62, 0.78), 0.001, {"SVM": 0.85, "Logist": 0.80})
    assert not below["interpretable"] and "SVM" in below["reasons"][0] and below["best_baseline_value"] == 0.85


def test_run_results_flag_a_model_at_chance(tmp_path):
    """write_run_results on random predictions: CI around the mean, p > 0.05, not interpretable."""
    from fusion.evaluate.ccl_results import write_run_results

    rng = np.random.default_rng(0)
    for k in range(3):
        stage = tmp_path / f"fold_{k:02d}"
        stage.mkdir()
        y = np.repeat([0, 1], 20)
        pred = rng.integers(0, 2, size=40)
        pd.DataFrame({"subject_id": [f"s{i}" for i in range(40)], "index": np.arange(40), "label": y,
                      "predicted": pred, "prob_low": 1 - pred * 0.6, "prob_high": pred * 0.6}).to_csv(
            stage / "test_predictions.csv", index=False)
        acc = float(np.mean(pred == y))
        (stage / "result.json").write_text(json.dumps({
            "accuracy": acc, "sensitivity": 0.5, "specificity": 0.5, "f1": 0.5, "auc": 0.5, "n_train": 28,
            "n_val": 6, "n_test": 40, "epochs": 2, "checkpoint": "x", "class_names": ["low", "high"],
            "positive_class": "high"}))
    baselines = {"SVM": {"splits": [(np.repeat([0, 1], 20), np.repeat([0, 1], 20), np.linspace(-1, 1, 40))] * 3,
                         "null": np.full((50, 3), 0.5)}}
    results = write_run_results(tmp_path, [f"fold_{k:02d}" for k in range(3)], baselines=baselines,
                                n_boot=500, n_perm=500)
    assert list(results)[0] == "verdict" and results["verdict"]["interpretable"] is False
    assert len(results["verdict"]["reasons"]) == 2  # at chance, and below the (perfect) SVM
    assert results["accuracy_ci"][0] < results["accuracy"] < results["accuracy_ci"][1]
    assert results["baselines"]["SVM"]["accuracy"] == 1.0
    assert results["baselines"]["SVM"]["accuracy_p"] == pytest.approx(1 / 51)  # refit null of 0.5 everywhere


def test_a_view_at_chance_makes_its_features_not_interpretable(tmp_path):
    """The fused model beats chance through its SNP view while the FC view is random: the model is
    interpretable, the edges are not, the SNPs are; per-view accuracy equals a hand count and the
    report says so at the top."""
    from fusion.evaluate.ccl_results import write_run_results
    from fusion.report.ccl_report import write_ccl_report

    rng = np.random.default_rng(1)
    hand = []
    for k in range(3):
        stage = tmp_path / f"fold_{k:02d}"
        stage.mkdir()
        y = np.repeat([0, 1], 20)
        p_snp = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.1, 40), 0.01, 0.99)   # nearly always right
        p_fc = rng.uniform(0.01, 0.99, 40)                                                 # noise
        p_fc[0] = 0.5                                                                       # a tie counts as high
        p = (p_snp + p_fc) / 2
        hand.append(np.mean((p_fc >= 0.5).astype(int) == y))
        pd.DataFrame({"subject_id": [f"s{i}" for i in range(40)], "index": np.arange(40), "label": y,
                      "predicted": (p >= 0.5).astype(int), "prob_low": 1 - p, "prob_high": p,
                      "prob_high_fc": p_fc, "prob_high_snp": p_snp}).to_csv(stage / "test_predictions.csv", index=False)
        (stage / "result.json").write_text(json.dumps({
            "accuracy": float(np.mean((p >= 0.5) == y)), "sensitivity": 0.9, "specificity": 0.9, "f1": 0.9,
            "auc": 0.95, "n_train": 28, "n_val": 6, "n_test": 40, "epochs": 2, "checkpoint": "x",
            "class_names": ["low", "high"], "positive_class": "high"}))
    results = write_run_results(tmp_path, [f"fold_{k:02d}" for k in range(3)], n_boot=200, n_perm=500)
    verdict = results["verdict"]
    assert verdict["interpretable"] is True
    assert verdict["views"]["fc"]["accuracy"] == pytest.approx(np.mean(hand))
    assert verdict["views"]["fc"]["accuracy_p"] > 0.05 and not verdict["views"]["fc"]["interpretable"]
    assert verdict["views"]["snp"]["accuracy_p"] < 0.01 and verdict["views"]["snp"]["interpretable"]
    assert verdict["features"]["edges"]["interpretable"] is False
    assert "fc view alone is at chance" in verdict["features"]["edges"]["reasons"][0]
    assert verdict["features"]["snps"] == {"interpretable": True, "reasons": []}
    report = write_ccl_report(tmp_path).read_text()
    head = report[:report.index("## Accuracy")]
    assert "edges are NOT INTERPRETABLE" in head and "SNPs may be read" in head


def test_univariate_agreement_counts_by_hand(tmp_path):
    """Shares of a map's lists among the t-test's features (edges unordered), and the report's
    top warning for the list that is not corroborated."""
    from fusion.interpret.univariate import univariate_agreement
    from fusion.report.ccl_report import write_ccl_report

    got = univariate_agreement({"edges": [(1, 2), (4, 3), (5, 6)], "snps": [1, 2]},
                               {"edges": [(2, 1), (3, 4), (7, 8), (9, 10)], "snps": [1, 2, 3]})
    assert got["edges"] == {"n_selected": 3, "n_univariate": 4, "n_common": 2, "share_corroborated": 2 / 3,
                            "share_found": 0.5, "corroborated": True}
    assert got["snps"]["share_corroborated"] == 1.0 and got["snps"]["share_found"] == pytest.approx(2 / 3)
    low = univariate_agreement({"edges": [(1, 2), (5, 6), (7, 9)], "snps": []}, {"edges": [(1, 2)], "snps": [4]})
    assert low["edges"]["corroborated"] is False and low["edges"]["share_corroborated"] == pytest.approx(1 / 3)
    assert low["snps"]["corroborated"] is None and low["snps"]["share_found"] == 0.0   # nothing selected
    with pytest.raises(Exception, match="min_share"):
        univariate_agreement({}, {"edges": [], "snps": []}, min_share=0)
    (tmp_path / "results.json").write_text(json.dumps({
        "verdict": {"interpretable": True, "reasons": []}, "accuracy": 0.9, "n_folds": 1,
        "folds": [], "univariate_agreement": low}))
    report = write_ccl_report(tmp_path).read_text()
    top = report[:report.index("## Agreement")]
    assert "significant edges are not corroborated" in top and "1 of 3" in top and "SNPs are not" not in top
    assert "## Agreement with the mass-univariate reference" in report


# ---------------------------------------------------------------- consensus, univariate reference
def test_majority_keeps_features_selected_in_most_splits():
    from fusion.interpret.consensus import consensus_significance, majority

    kept, counts = majority([[1, 2, 3], [2, 3], [3, 4], [3, 2, 2]])
    assert kept == [2, 3] and counts == {1: 1, 2: 3, 3: 4, 4: 1}
    assert majority([[1], [2]])[0] == []  # one of two is not a majority
    out = consensus_significance([{"edges": [[1, 0], [2, 3]], "snps": [5]}, {"edges": [[0, 1]], "snps": [5, 6]},
                                  {"edges": [[0, 1], [2, 3]], "snps": [6]}], {"edges": [[0, 1]], "snps": [5, 7]})
    assert out["edges"] == [[0, 1, 3], [2, 3, 2]] and out["snps"] == [[5, 2], [6, 2]]
    assert out["recovery"]["edge_precision"] == 0.5 and out["recovery"]["edge_recall"] == 1.0
    assert out["recovery"]["snp_precision"] == 0.5 and out["recovery"]["snp_recall"] == 0.5


def test_univariate_reference_finds_a_planted_difference():
    from scipy.stats import ttest_ind

    from fusion.interpret.univariate import univariate_features, univariate_recovery

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    fc = rng.normal(size=(80, 10, 10))
    fc = (fc + fc.transpose(0, 2, 1)) / 2
    fc[y == 1, 2, 7] += 1.5
    fc[y == 1, 7, 2] += 1.5
    snps = rng.integers(0, 3, size=(80, 30)).astype(float)
    snps[y == 1, 4] = np.minimum(snps[y == 1, 4] + 1, 2)
    found = univariate_features(fc, snps, y)
    assert (2, 7) in found["edges"] and 4 in found["snps"]
    assert ttest_ind(fc[y == 1, 2, 7], fc[y == 0, 2, 7]).pvalue < 1e-6
    rec = univariate_recovery(found, {"edges": [[7, 2]], "snps": [4]})
    assert rec["edge_recall"] == 1.0 and rec["snp_recall"] == 1.0


# ---------------------------------------------------------------- variants
def test_variants_are_validated_and_remove_one_convenience_each():
    from fusion.data.ccl_variants import variant_knobs, variant_names
    from fusion.data.power import power_networks
    from fusion.data.synthetic_ccl import CCLCohortSpec, simulate_ccl_cohort

    assert len(variant_names()) >= 6 and "null" in variant_names()
    with pytest.raises(ConfigError, match="valid variants: embedded, connectome"):
        variant_knobs("easy")
    with pytest.raises(ConfigError, match="edge_layout must be one of"):
        CCLCohortSpec(edge_layout="diagonal")
    nets = np.asarray(power_networks())
    scattered = simulate_ccl_cohort(CCLCohortSpec(n_timepoints=40, seed=1,
                                                  **{**variant_knobs("outside"), "n_subjects": 40}))
    gt = scattered["ground_truth"]
    assert len(gt["edges"]) == 30 and gt["edge_blocks"] == []
    assert all({nets[i], nets[j]} == {"VIS", "DMN"} for i, j in gt["edges"])
    assert len({i for i, _ in gt["edges"]}) > 10  # scattered, not an 8 x 8 block
    assert len(gt["snps"]) == 15 and np.min(np.diff(gt["snps"])) >= 20
    # the connectome variant's mean FC: strong within networks
    fc = scattered["fc"]
    vis = np.flatnonzero(nets == "VIS")
    within = np.tanh(fc[:, vis][:, :, vis].mean(0))[np.triu_indices(len(vis), 1)].mean()
    assert within > 0.4
    null = simulate_ccl_cohort(CCLCohortSpec(n_subjects=40, n_timepoints=40, seed=1, **variant_knobs("null")))
    assert null["ground_truth"]["strength"] == 0.0


@pytest.mark.slow
def test_ccl_validate_quick_runs_resumes_and_flags_the_null(tmp_path):
    from fusion.cli import main

    out = tmp_path / "val"
    args = ["ccl-validate", "--quick", "--out", str(out), "--variants", "null", "--seeds", "0"]
    assert main(args) == 0
    doc = json.loads((out / "validation.json").read_text())
    assert [r["variant"] for r in doc["rows"]] == ["null"] and doc["quick"] is True
    null = doc["rows"][0]
    assert null["interpretable"] is False and null["gcam_ccl_p"] > 0.05 and null["n_splits"] == 2
    assert {"gcam_ccl", "svm", "logist", "best_linear", "t3_RF", "t3_gCAM-CCL", "uni_edge_recall",
            "edge_precision"} <= set(null)
    assert null["t3_gCAM-CCL"] == round(null["gcam_ccl"], 4)  # Table III and results.json agree
    assert doc["summary"][0]["pass_edges"] is None  # nothing planted: no recovery target applies
    md = (out / "validation.md").read_text()
    assert "| null |" in md and "t-test edge R" in md and "Runtime:" in md
    stamp = (out / "runs" / "null_s0" / "results.json").stat().st_mtime
    assert main(args) == 0  # resumes: nothing is trained again
    assert (out / "runs" / "null_s0" / "results.json").stat().st_mtime == stamp
    assert main(["ccl-validate", "--quick", "--out", str(out), "--variants", "easy"]) == 2


def test_cohort_options_are_validated_listing_the_valid_ones(tmp_path):
    from fusion.cli import main
    from fusion.data.synthetic_ccl import make_ccl_cohort

    with pytest.raises(ConfigError, match=r"unknown cohort option\(s\): \['edge_shfit'\]; valid options: .*edge_shift"):
        make_ccl_cohort(tmp_path / "c", edge_shfit=0.2)
    assert main(["cohort-ccl", "--out", str(tmp_path / "c"), "--variant", "easy"]) == 2
    assert not (tmp_path / "c" / "manifest.csv").exists()
