"""gCAM-CCL end to end: `catalyst-dl run --hydra --config-name ccl` on a tiny cohort, then Table III."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory) -> Path:
    from fusion.cli import main

    out = tmp_path_factory.mktemp("ccl_tiny")
    assert main(["cohort-ccl", "--out", str(out), "--size", "tiny", "--seed", "1"]) == 0
    # a second call refuses to overwrite the cohort (exit status 2, FusionError)
    assert main(["cohort-ccl", "--out", str(out), "--size", "tiny"]) == 2
    return out / "manifest.csv"


@pytest.fixture(scope="module")
def ccl_run(tiny_cohort, tmp_path_factory) -> Path:
    logdir = tmp_path_factory.mktemp("ccl_run") / "run"
    script = Path(sys.executable).parent / "catalyst-dl"
    cmd = [str(script), "run", "--hydra", "--config-dir", str(REPO / "conf"), "--config-name", "ccl",
           f"logdir={logdir}", f"data.manifest={tiny_cohort}", "stage.num_epochs=3", "stage.patience=3",
           "split.repetitions=2", "callbacks.results.n_perm=200", "callbacks.results.n_boot=300",
           "callbacks.activation_maps.figures=false"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return logdir


@pytest.mark.slow
def test_ccl_run_writes_results(ccl_run, tiny_cohort):
    results = json.loads((ccl_run / "results.json").read_text())
    for key in ("accuracy", "sensitivity", "specificity", "f1", "auc", "n_test"):
        assert key in results
    assert set(results["recovery"]) >= {"edge_precision", "edge_recall", "snp_precision", "snp_recall"}
    splits = json.loads((ccl_run / "splits.json").read_text())
    assert len(splits["folds"]) == results["n_folds"] == 2  # split.repetitions=2: stages fold_00, fold_01
    preds = pd.read_csv(ccl_run / "test_predictions.csv")
    per_split = []
    for k, fold in enumerate(splits["folds"]):
        assert (ccl_run / f"fold_{k:02d}" / "checkpoints" / "best.pth").is_file()
        mine = preds[preds["stage"] == f"fold_{k:02d}"]
        assert mine["subject_id"].tolist() == fold["test_ids"]
        per_split.append(float((mine["predicted"] == mine["label"]).mean()))
        # no subject in two parts of a split
        parts = [set(fold[f"{p}_ids"]) for p in ("train", "val", "test")]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert splits["folds"][0]["test_ids"] != splits["folds"][1]["test_ids"]  # a new draw per repetition
    assert results["n_test"] == len(preds)
    # the metrics are the mean over splits of those of the saved predictions
    assert results["accuracy"] == pytest.approx(np.mean(per_split))
    assert results["accuracy_std"] == pytest.approx(np.std(per_split))
    np.testing.assert_allclose(preds["prob_low"] + preds["prob_high"], 1.0, atol=1e-5)
    # statistics: a CI around the accuracy, a p-value, the linear baselines and the verdict
    low, high = results["accuracy_ci"]
    assert low <= results["accuracy"] <= high and 0 < results["accuracy_p"] <= 1
    assert set(results["baselines"]) == {"SVM", "Logist"}
    assert len(results["baselines"]["SVM"]["accuracy_folds"]) == 2
    assert set(results["verdict"]) >= {"interpretable", "reasons"} and list(results)[0] == "verdict"
    consensus = json.loads((ccl_run / "significant_features.json").read_text())
    assert consensus["interpretable"] == results["verdict"]["interpretable"] and consensus["index_base"] == 1
    # each view judged on its own; each list beside the t-test reference on the same subjects
    assert set(results["verdict"]["views"]) == {"fc", "snp"} and set(consensus["features"]) == {"edges", "snps"}
    for kind, key in (("edges", "edges"), ("snps", "snps")):
        agreement = results["univariate_agreement"][kind]
        assert agreement == consensus["univariate"][kind] and agreement["n_selected"] == len(consensus[key])
    # the agreement counts the file's (1-based) features against the reference in 0-based indices
    from fusion.data.ccl_dataset import CCLDataset
    from fusion.interpret.univariate import univariate_features

    dataset = CCLDataset(tiny_cohort)
    dataset.fit(np.arange(len(dataset)))
    reference = univariate_features(*dataset.arrays())
    mine = {(e["roi_i"] - 1, e["roi_j"] - 1) for e in consensus["edges"]}
    assert results["univariate_agreement"]["edges"]["n_common"] == len(
        mine & {(min(i, j), max(i, j)) for i, j in reference["edges"]})
    assert results["univariate_agreement"]["snps"]["n_common"] == len(
        {k["snp"] - 1 for k in consensus["snps"]} & set(reference["snps"]))
    assert "consensus" in results["recovery"]["rule"] and len(results["recovery"]["folds"]) == 2
    report = (ccl_run / "report.md").read_text()
    assert "Test-set classification" in report and "Recovery of the planted effects" in report
    assert "95% CI" in report
    assert ("NOT INTERPRETABLE" in report) == (not results["verdict"]["interpretable"])


@pytest.mark.slow
def test_best_checkpoint_follows_the_validation_label_loss(ccl_run):
    """conf/ccl.yaml keeps the epoch with the lowest validation label term, not the lowest loss."""
    valid = pd.read_csv(ccl_run / "fold_00" / "logs" / "valid.csv")
    assert {"loss", "label_loss", "pair_loss"} <= set(valid.columns)
    # the logged terms add up to the logged loss (pair_weight 1)
    np.testing.assert_allclose(valid["label_loss"] + valid["pair_loss"], valid["loss"], rtol=1e-5)
    best = json.loads((ccl_run / "fold_00" / "checkpoints" / "_metrics.json").read_text())["best"]
    k = int(valid["label_loss"].idxmin())
    # Catalyst 21.12 names the best checkpoint "<stage>.<epoch>" under "_score_"
    assert best["_score_"] == f"fold_00.{int(valid['epoch'][k])}"
    assert best["valid"]["label_loss"] == pytest.approx(valid["label_loss"].min())
    results = json.loads((ccl_run / "results.json").read_text())
    assert results["folds"][0]["epochs"] == len(valid)


@pytest.mark.slow
def test_test_metrics_and_maps_use_each_views_best_epoch(ccl_run):
    """conf/ccl.yaml: best_per_view.pth holds each view's branch from its own best epoch."""
    from fusion import io

    valid = pd.read_csv(ccl_run / "fold_00" / "logs" / "valid.csv")
    saved = io.load_checkpoint(ccl_run / "fold_00" / "checkpoints" / "best_per_view.pth")
    for view in ("fc", "snp"):
        k = int(valid[f"label_loss_{view}"].idxmin())
        assert saved["epochs"][view] == int(valid["epoch"][k])
        assert saved["scores"][view] == pytest.approx(valid[f"label_loss_{view}"].min())
    # the logged per-view losses average to the label term
    np.testing.assert_allclose((valid["label_loss_fc"] + valid["label_loss_snp"]) / 2, valid["label_loss"], rtol=1e-5)
    # the SNP significance of conf/ccl.yaml: integrated gradients of every class, class contrast
    maps = ccl_run / "fold_00" / "maps"
    every = np.load(maps / "integrated_gradients_snp_by_class.npy")
    labels = np.load(maps / "subjects.npz")["labels"]
    assert every.shape == (len(labels), 2, 750)
    summary = json.loads((ccl_run / "fold_00" / "interpretation" / "summary.json").read_text())
    assert summary["significance"]["snp"]["rule"] == "contrast"
    # and of the FC view: integrated gradients of every class over the whole matrix, class contrast
    fc = np.load(maps / "integrated_gradients_fc_by_class.npy", mmap_mode="r")
    assert fc.shape[:2] == (len(labels), 2) and fc.shape[2] == fc.shape[3]
    assert summary["significance"]["fc"]["map"] == "integrated_gradients"
    assert summary["significance"]["fc"]["rule"] == "contrast"


@pytest.mark.slow
def test_table3_on_the_same_test_subjects(ccl_run):
    from fusion.cli.ccl_table3 import table3
    from fusion.evaluate.baselines import ROWS, BaselineSettings

    table = table3(ccl_run, BaselineSettings(rf_trees=10, mlp_hidden=8, mlp_max_iter=20))
    assert table["method"].tolist() == list(ROWS)
    results = json.loads((ccl_run / "results.json").read_text())
    row = table.set_index("method").loc["gCAM-CCL"]
    # Table III's gCAM-CCL row is the run's own predictions: the same mean over the same splits
    assert row["ACC"] == round(results["accuracy"], 4) and row["n_splits"] == 2
    assert row["ACC_sd"] == round(results["accuracy_std"], 4)
    # and its SVM / Logist rows are the fits behind results.json's verdict
    rows = table.set_index("method")
    assert rows.loc["SVM", "ACC"] == round(results["baselines"]["SVM"]["accuracy"], 4)
    assert rows.loc["Logist", "ACC"] == round(results["baselines"]["Logist"]["accuracy"], 4)
    assert (table["n_test"] == results["n_test"]).all()
    assert (ccl_run / "table3.md").is_file() and "Table III" in (ccl_run / "report.md").read_text()


def test_baseline_rows_match_scikit_learn_on_separable_data():
    from sklearn.linear_model import LogisticRegression

    from fusion.evaluate.baselines import (
        classical_baselines,
        concat_features,
        score_rows,
    )

    rng = np.random.default_rng(0)
    n, r, p = 60, 6, 10
    y = np.arange(n) % 2
    fc = rng.normal(size=(n, r, r)).astype(np.float32)
    fc = (fc + fc.transpose(0, 2, 1)) / 2
    fc[:, 0, 1] = fc[:, 1, 0] = y * 3.0  # one strongly discriminative edge
    snps = rng.integers(0, 3, size=(n, p)).astype(np.float32)
    X = concat_features(fc, snps)
    assert X.shape == (n, r * (r - 1) // 2 + p)
    assert np.array_equal(X[:, 0], fc[:, 0, 1])
    preds = classical_baselines(X[:40], y[:40], X[40:])
    rows = {row["method"]: row for row in score_rows(y[40:], preds)}
    for name in ("SVM", "RF", "DT", "Logist"):
        assert rows[name]["accuracy"] == 1.0, name
    assert rows["MLP+SVM"]["accuracy"] >= 0.9  # hidden features of a small MLP keep the edge
    mean, sd = X[:40].mean(0), X[:40].std(0)
    ref = LogisticRegression(max_iter=5000).fit((X[:40] - mean) / sd, y[:40]).predict((X[40:] - mean) / sd)
    np.testing.assert_array_equal(preds["Logist"], ref)


def test_build_from_config_rejects_unknown_targets():
    from fusion.evaluate.baselines import build_from_config

    model = build_from_config({"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 3})
    assert model.out_features == 3
    with pytest.raises(ConfigError, match="no.such"):
        build_from_config({"_target_": "no.such.Thing"})
