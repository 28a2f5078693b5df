"""gCAM-CCL data: Power atlas, synthetic cohort, genotype I/O, manifest validation, split, dataset."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion.data.ccl_dataset import CCLDataset
from fusion.data.ccl_manifest import load_ccl_manifest, quantile_labels, read_fc
from fusion.data.genotypes import (
    impute_genotypes,
    read_plink,
    write_plink,
)
from fusion.data.power import NETWORKS, power_coords, power_networks
from fusion.data.synthetic_ccl import CCLCohortSpec, simulate_ccl_cohort
from fusion.errors import InputError
from fusion.evaluate.splits import stratified_holdout

R, P = 12, 20  # small sizes for the validation tests


def test_power_atlas_sizes_and_anatomy():
    nets = np.asarray(power_networks())
    coords = power_coords()
    assert coords.shape == (264, 3) and len(nets) == 264
    assert dict(Counter(nets.tolist())) == {"SMH": 30, "SMM": 5, "CO": 14, "AUD": 13, "DMN": 58, "MEM": 5,
                                            "VIS": 31, "FPN": 25, "SAL": 18, "SUB": 13, "VAN": 9, "DAN": 11,
                                            "CER": 4, "UNC": 28}
    assert set(nets) == set(NETWORKS)
    assert (coords[nets == "VIS", 1] < -40).all()        # visual ROIs are posterior
    assert (coords[nets == "CER", 2] < -15).all()        # cerebellar ROIs are inferior
    assert (np.abs(coords[nets == "SUB", 2]) < 15).all()  # subcortical ROIs are deep


def test_synthetic_cohort_is_deterministic_and_planted_edges_discriminate():
    spec = CCLCohortSpec(n_subjects=80, n_timepoints=60, seed=3)
    a, b = simulate_ccl_cohort(spec), simulate_ccl_cohort(spec)
    np.testing.assert_array_equal(a["fc"], b["fc"])
    np.testing.assert_array_equal(a["genotypes"], b["genotypes"])
    fc, gt = a["fc"], a["ground_truth"]
    assert fc.shape == (80, 264, 264) and fc.dtype == np.float32
    np.testing.assert_array_equal(fc, fc.transpose(0, 2, 1))
    assert np.all(np.diagonal(fc, axis1=1, axis2=2) == 0)
    g = a["genotypes"]
    assert set(np.unique(g[~np.isnan(g)])) <= {0.0, 1.0, 2.0}
    edges = np.asarray(gt["edges"])
    assert (edges[:, 0] < edges[:, 1]).all() and len(edges) == 2 * 8 * 8
    nets = power_networks()
    assert {tuple(sorted((nets[i], nets[j]))) for i, j in edges} == {("DMN", "FPN"), ("SMH", "VIS")}
    assert len(gt["snps"]) == spec.n_snp_runs * spec.snp_run_length
    assert gt["snp_ids"][0] == a["snp_ids"][gt["snps"][0]]
    # planted edges track the brain factor with the recorded sign; an unplanted edge does not
    signs = np.asarray(gt["edge_signs"])
    vals = fc[:, edges[:, 0], edges[:, 1]]
    r = np.array([np.corrcoef(vals[:, k], a["brain_factor"])[0, 1] for k in range(len(edges))])
    assert (np.sign(r) == signs).mean() > 0.95 and np.abs(r).mean() > 0.5
    assert abs(np.corrcoef(fc[:, 0, 1], a["brain_factor"])[0, 1]) < 0.35
    # planted SNP runs drive the score: their genetic score correlates with it
    assert np.corrcoef(a["genetic_score"], a["score"])[0, 1] > 0.3
    null = simulate_ccl_cohort(CCLCohortSpec(n_subjects=80, n_timepoints=60, seed=3, strength=0.0))
    assert abs(np.corrcoef(null["genetic_score"], null["score"])[0, 1]) < 0.3


def test_plink_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    vals = rng.integers(0, 3, size=(7, 11)).astype(np.float32)
    vals[2, 4] = np.nan
    ids = [f"s{k}" for k in range(7)]
    snps = [f"rs{k}" for k in range(11)]
    write_plink(tmp_path / "g.bed", vals, ids, snps, chromosome=["1"] * 11, bp_position=list(range(100, 111)))
    got = read_plink(tmp_path / "g.bed")
    assert got.subject_ids == ids and got.snp_ids == snps and got.bp_position == list(range(100, 111))
    np.testing.assert_array_equal(got.values, vals)  # NaN in the same place
    np.testing.assert_array_equal(got.select(["s3", "s0"]), vals[[3, 0]])
    with pytest.raises(InputError, match="s9"):
        got.select(["s0", "s9"])


def test_imputation_uses_training_subjects_only():
    values = np.array([[0, 1], [0, 1], [2, np.nan], [2, 2], [2, 2]], dtype=np.float32)
    out = impute_genotypes(values, train=np.array([0, 1, 2]), strategy="mode")
    assert out[2, 1] == 1.0  # the mode among training rows 0-1 is 1, although 2 dominates overall
    assert impute_genotypes(values, np.array([0, 1, 2]), "mean")[2, 1] == pytest.approx(1.0)
    with pytest.raises(InputError, match="missing"):
        impute_genotypes(values, np.array([0, 1]), "error")
    with pytest.raises(InputError, match="no call in any training subject"):
        impute_genotypes(values, np.array([2]), "mode")


def _write_cohort(root: Path, n: int = 20, fc_ext: str = ".npy", geno: str = "csv") -> Path:
    rng = np.random.default_rng(1)
    rows = []
    (root / "fc").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        a = rng.normal(size=(R, R)).astype(np.float32)
        a = (a + a.T) / 2
        path = root / "fc" / f"s{k:02d}{fc_ext}"
        if fc_ext == ".npy":
            np.save(path, a)
        elif fc_ext == ".csv":
            np.savetxt(path, a, delimiter=",")
        else:
            from scipy.io import savemat

            savemat(path, {"fc": a})
        rows.append({"subject_id": f"s{k:02d}", "score": float(k), "fc_path": f"fc/s{k:02d}{fc_ext}"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    g = rng.integers(0, 3, size=(n, P))
    frame = pd.DataFrame(g, columns=[f"rs{j}" for j in range(P)])
    frame.insert(0, "subject_id", [f"s{k:02d}" for k in range(n)])
    if geno == "csv":
        frame.to_csv(root / "genotypes.csv", index=False)
    else:
        write_plink(root / "genotypes.bed", g, frame["subject_id"].tolist(), [f"rs{j}" for j in range(P)])
    return root / "manifest.csv"


@pytest.mark.parametrize("fc_ext, geno", [(".npy", "csv"), (".csv", "bed"), (".mat", "csv")])
def test_manifest_reads_formats_and_labels_by_quantile(tmp_path, fc_ext, geno):
    manifest = _write_cohort(tmp_path, fc_ext=fc_ext, geno=geno)
    info = load_ccl_manifest(manifest, n_rois=R, n_snps=P)
    # scores 0..19: bottom 20% (0..3.8 -> 4 subjects) and top 20% (>= 15.2 -> 4 subjects)
    assert info.subject_ids == ["s00", "s01", "s02", "s03", "s16", "s17", "s18", "s19"]
    np.testing.assert_array_equal(info.labels, [0, 0, 0, 0, 1, 1, 1, 1])
    assert info.genotypes.shape == (8, P)
    assert read_fc(info.fc_paths[0], "s00", R).shape == (R, R)


def _corrupt(root: Path, what: str) -> tuple[dict, str]:
    """Break one thing of a valid cohort; return load kwargs and the text the error must contain."""
    fc3 = root / "fc" / "s03.npy"
    if what == "non_square":
        np.save(fc3, np.zeros((R, R + 1), np.float32))
        return {}, "s03.*square"
    if what == "non_symmetric":
        a = np.zeros((R, R), np.float32)
        a[0, 1] = 0.5
        np.save(fc3, a)
        return {}, "s03.*not symmetric"
    if what == "wrong_rois":
        np.save(fc3, np.zeros((R - 2, R - 2), np.float32))
        return {}, "s03.*expected 12 x 12"
    if what == "nan":
        a = np.zeros((R, R), np.float32)
        a[2, 2] = np.nan
        np.save(fc3, a)
        return {}, "s03.*non-finite"
    if what == "pickled_npy":
        np.save(fc3, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        return {}, "s03.*cannot read"
    if what == "bad_snp_code":
        g = pd.read_csv(root / "genotypes.csv")
        g.loc[g.subject_id == "s17", "rs5"] = 3
        g.to_csv(root / "genotypes.csv", index=False)
        return {}, "s17.*rs5.*3"
    if what == "missing_subject":
        g = pd.read_csv(root / "genotypes.csv")
        g[g.subject_id != "s18"].to_csv(root / "genotypes.csv", index=False)
        return {}, "s18"
    if what == "constant_score":
        m = pd.read_csv(root / "manifest.csv")
        m["score"] = 5.0
        m.to_csv(root / "manifest.csv", index=False)
        return {}, "'score' has 1 distinct value"
    if what == "bad_label":
        m = pd.read_csv(root / "manifest.csv")
        m["label"] = ["0", "1"] * 9 + ["maybe", "1"]
        m.to_csv(root / "manifest.csv", index=False)
        return {"label_column": "label"}, "s18.*'label'.*maybe"
    raise AssertionError(what)


@pytest.mark.parametrize("what", ["non_square", "non_symmetric", "wrong_rois", "nan", "pickled_npy",
                                  "bad_snp_code", "missing_subject", "constant_score", "bad_label"])
def test_bad_input_is_named(tmp_path, what):
    manifest = _write_cohort(tmp_path)
    kwargs, pattern = _corrupt(tmp_path, what)
    with pytest.raises(InputError, match=pattern):
        load_ccl_manifest(manifest, n_rois=R, n_snps=P, **kwargs)


def test_score_with_too_few_distinct_values():
    with pytest.raises(InputError, match="2 distinct value"):
        quantile_labels(np.array([1.0] * 9 + [2.0]), (0.2, 0.2))
    assert (quantile_labels(np.arange(10.0)) == [0, 0, -1, -1, -1, -1, -1, -1, 1, 1]).all()


def test_split_is_stratified_and_refuses_an_empty_class():
    y = np.array([0] * 40 + [1] * 60)
    fold = stratified_holdout(y, (0.7, 0.15, 0.15), seed=0)
    assert (len(fold.train), len(fold.val), len(fold.test)) == (70, 15, 15)
    assert set(fold.train) | set(fold.val) | set(fold.test) == set(range(100))
    assert (y[fold.test] == 1).sum() == 9 and (y[fold.val] == 0).sum() == 6
    with pytest.raises(InputError, match="val set has no subject of class 1 \\(high\\)"):
        stratified_holdout(np.array([0] * 20 + [1] * 3), (0.7, 0.15, 0.15), class_names=["low", "high"])


def test_dataset_items_and_training_only_imputation(tmp_path):
    manifest = _write_cohort(tmp_path, n=20)
    g = pd.read_csv(tmp_path / "genotypes.csv")
    g["rs0"] = g["rs0"].astype(float)
    g.loc[g.subject_id.isin(["s00", "s01"]), "rs0"] = 2
    g.loc[g.subject_id.isin(["s16", "s17", "s18"]), "rs0"] = 0
    g.loc[g.subject_id == "s19", "rs0"] = np.nan
    g.to_csv(tmp_path / "genotypes.csv", index=False)
    ds = CCLDataset(manifest, n_rois=R, n_snps=P)
    assert ds.has_missing_genotypes
    with pytest.raises(Exception, match=r"fit\(train_indices\)"):
        ds[0]
    ds.fit_imputation([0, 1])  # s00, s01: rs0 = 2
    item = ds[7]  # s19
    assert item["fc"].shape == (1, R, R) and item["snp"].shape == (1, P)
    assert item["label"] == 1 and item["index"] == 7
    assert item["snp"][0, 0].item() == 2.0
    ds.fit_imputation([4, 5, 6])  # s16-s18: rs0 = 0
    assert ds[7]["snp"][0, 0].item() == 0.0


def test_sizes_inferred_from_the_data_and_checked_across_subjects(tmp_path):
    manifest = _write_cohort(tmp_path, n=20)
    frame = pd.read_csv(manifest)
    tsv = manifest.with_suffix(".tsv")
    frame.to_csv(tsv, sep="\t", index=False)
    info = load_ccl_manifest(tsv, n_rois=None, n_snps=None)
    assert (info.n_rois, info.n_snps) == (R, P)
    explicit = load_ccl_manifest(manifest, n_rois=R, n_snps=P)
    np.testing.assert_array_equal(info.genotypes, explicit.genotypes)
    assert info.subject_ids == explicit.subject_ids
    np.save(tmp_path / "fc" / "s17.npy", np.zeros((R + 2, R + 2), np.float32))
    with pytest.raises(InputError,
                       match=r"subject 's17'.*expected 12 x 12 ROIs \(inferred from subject 's00'\), got 14 x 14"):
        load_ccl_manifest(tsv, n_rois=None, n_snps=None)
    with pytest.raises(InputError, match=r"genotypes .*genotypes.csv: expected 750 SNPs \(n_snps\), got 20"):
        load_ccl_manifest(manifest, n_rois=R, n_snps=750)


def test_snp_count_inferred_from_per_subject_files(tmp_path):
    manifest = _write_cohort(tmp_path, n=20)
    rng = np.random.default_rng(4)
    frame = pd.read_csv(manifest)
    (tmp_path / "snp").mkdir()
    for sid in frame["subject_id"]:
        np.save(tmp_path / "snp" / f"{sid}.npy", rng.integers(0, 3, size=P).astype(np.float32))
    frame["snp_path"] = [f"snp/{sid}.npy" for sid in frame["subject_id"]]
    frame.to_csv(manifest, index=False)
    (tmp_path / "genotypes.csv").unlink()
    info = load_ccl_manifest(manifest, n_rois=None, n_snps=None)
    assert info.n_snps == P and info.genotypes.shape == (8, P)
    np.testing.assert_array_equal(info.genotypes[0], np.load(tmp_path / "snp" / "s00.npy"))
    np.save(tmp_path / "snp" / "s18.npy", np.zeros(P - 1, np.float32))
    with pytest.raises(InputError, match=r"subject 's18'.*expected 20 SNPs \(inferred from subject 's00'\), got 19"):
        load_ccl_manifest(manifest, n_rois=None, n_snps=None)


@pytest.mark.slow
def test_ccl_run_sizes_its_networks_from_the_data(tmp_path):
    """data.n_rois/n_snps null: the runner builds the views for the cohort's 24 ROIs and 20 SNPs
    (with last kernels that collapse what is left); the paper's kernels give an error naming the
    sizes they take."""
    from reliability_helpers import run_config

    from fusion.errors import ConfigError

    rng = np.random.default_rng(2)
    (tmp_path / "fc").mkdir()
    rows = []
    for k in range(40):
        a = rng.normal(size=(24, 24)).astype(np.float32)
        np.save(tmp_path / "fc" / f"s{k:02d}.npy", (a + a.T) / 2)
        rows.append({"subject_id": f"s{k:02d}", "score": float(k), "fc_path": f"fc/s{k:02d}.npy"})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    g = pd.DataFrame(rng.integers(0, 3, size=(40, P)), columns=[f"rs{j}" for j in range(P)])
    g.insert(0, "subject_id", [f"s{k:02d}" for k in range(40)])
    g.to_csv(tmp_path / "genotypes.csv", index=False)
    common = [f"data.manifest={tmp_path / 'manifest.csv'}", "data.n_rois=null", "data.n_snps=null", "model=ccl_paper",
              "stage.num_epochs=1", "split.repetitions=1", "callbacks.activation_maps=null"]
    runner = run_config("ccl", [f"logdir={tmp_path / 'run'}", *common, "model.views.fc.kernels=[7,5,3,null]",
                                "model.views.snp.kernels=[5,5,null]", "model.views.snp.pools=[2,2,null]"])
    model = runner.build_model()
    assert model.views["fc"].input_shape == (1, 24, 24) and model.views["snp"].input_shape == (1, P)
    assert model.views["fc"].features.conv4.conv.kernel_size == (1, 1)
    assert (tmp_path / "run" / "fold_00" / "complete.json").is_file()
    from fusion.cli.ccl_table3 import table3
    from fusion.evaluate.baselines import BaselineSettings

    # Table III rebuilds the model from the run's recorded config: sized from the data too
    table = table3(tmp_path / "run", BaselineSettings(rf_trees=5, mlp_hidden=4, mlp_max_iter=5))
    assert "gCAM-CCL" in set(table.iloc[:, 0].astype(str)) | set(map(str, table.index))
    with pytest.raises(Exception) as info:
        run_config("ccl", [f"logdir={tmp_path / 'run2'}", *common])
    chain, err = [], info.value
    while err is not None:
        chain.append(err)
        err = err.__cause__ or err.__context__
    assert any(isinstance(e, ConfigError) and "takes n_rois 264-287" in str(e) and "n_rois=24" in str(e)
               for e in chain), chain
