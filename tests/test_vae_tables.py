"""Table I and seeds tables, and the sweep aggregation on a fake run directory with the contract's layout."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from fusion import io
from fusion.cli.vae_seeds import aggregate_seeds
from fusion.cli.vae_table1 import aggregate_table1, launch_multirun, multirun_command
from fusion.data.folds import save_folds, stratified_folds
from fusion.errors import InputError
from fusion.evaluate.tables import (
    seeds_frame,
    table1_frame,
    table1_markdown,
    vae_record,
)


def _rec(method, l, mean=None, std=0.01, status="ok", folds=3):
    if status != "ok":
        return {"method": method, "latent_dim": l, "status": status, "auc": None, "auc_mean": "n/a", "auc_std": "n/a"}
    return {"method": method, "latent_dim": l, "status": "ok", "auc": [mean] * folds, "auc_mean": mean, "auc_std": std}


def test_table1_has_the_papers_rows_and_columns():
    dims = [128, 256, 512, 1024]
    records = [
        _rec("per_modality", 128, 0.50), _rec("per_modality", 256, 0.51), _rec("per_modality", 512, 0.49),
        _rec("per_modality", 1024, status="n/a"),
        _rec("vae", 128, 0.8353), _rec("vae", 256, 0.8569), _rec("vae", 512, 0.8609), _rec("vae", 1024, 0.8539),
        _rec("joint", 128, 0.8229), _rec("joint", 256, 0.8358), _rec("joint", 512, 0.8302),
        _rec("joint", 1024, status="n/a"),
    ]
    frame = table1_frame(records, dims)
    assert list(frame.columns) == ["method", "128", "256", "512", "1024"]
    assert frame["method"].tolist() == ["VAE", "Early fusion PCA (joint)", "Late fusion PCA (per-modality)"]
    assert frame.loc[0, "512"] == 0.8609 and frame.loc[1, "1024"] == "n/a"
    md = table1_markdown(records, dims, caption="test caption")
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert lines[0] == "| Latent dimension | 128 | 256 | 512 | 1024 |"
    assert len(lines) == 5  # header, rule, 3 methods
    assert "| VAE | **0.8353 ± 0.0100** |" in md  # best of its column in bold
    assert "0.8229 ± 0.0100" in md and "**0.8229" not in md
    assert lines[3].endswith("| n/a |") and md.startswith("**Table I.** test caption")
    # a missing job is shown as such, never as a number
    assert "not run" in table1_markdown(records[:-1], dims)
    with pytest.raises(InputError, match="two results"):
        table1_frame(records + [_rec("vae", 128, 0.7)], dims)


def test_seeds_frame_mean_and_std_over_seeds():
    records = [dict(_rec("vae", 16, m), seed=s) for s, m in zip([3, 1, 2], [0.8, 0.9, 0.7])]
    frame = seeds_frame(records)
    assert frame["seed"].tolist() == ["1", "2", "3", "mean over seeds"]
    assert frame.iloc[-1]["auc_mean"] == pytest.approx(0.8)
    assert frame.iloc[-1]["auc_std"] == pytest.approx(np.std([0.8, 0.9, 0.7]))
    with pytest.raises(InputError, match="latent"):
        seeds_frame(records + [dict(_rec("vae", 32, 0.5), seed=9)])
    with pytest.raises(InputError, match="own seed"):
        seeds_frame(records + [dict(_rec("vae", 16, 0.5), seed=1)])


N_MOD, SHAPE = 3, (2, 3, 2)


def _fake_sweep(tmp_path, latent_dims=(2, 4), seeds=(42, 42), planted=(1,)):
    """A prepared cohort and one finished fake VAE job per (latent, seed), contract layout."""
    rng = np.random.default_rng(0)
    prep = tmp_path / "prep"
    prep.mkdir()
    n = 24
    labels = np.tile([0, 1], n // 2)
    vols = rng.normal(size=(n, N_MOD, *SHAPE)).astype(np.float32)
    vols[labels == 1, 1] += 1.0
    ids = [f"s{i:02d}" for i in range(n)]
    for i, sid in enumerate(ids):
        np.save(prep / f"{sid}.npy", vols[i])
    index = pd.DataFrame({"subject_id": ids, "label": labels, "path": [f"{s}.npy" for s in ids]})
    index.to_csv(prep / "index.csv", index=False)
    io.write_json(prep / "meta.json", {"modality_names": ["a", "b", "c"], "modality_domains": ["x", "y", "z"]})
    io.write_json(prep / "ground_truth.json", {"effect": True, "effect_modalities": list(planted)})
    root = tmp_path / "sweep"
    for l, seed in zip(latent_dims, seeds):
        job = root / (f"latent_{l}" if len(set(seeds)) == 1 else f"seed_{seed}")
        folds = stratified_folds(labels, n_splits=3, seed=seed)
        save_folds(job / "splits.json", folds, ids, seed=seed)
        aucs = []
        for k in range(3):
            coef = rng.normal(scale=0.1, size=(N_MOD, l))
            coef[1] += 1.0  # the planted modality dominates the weights
            io.save_npz(job / f"fold_{k:02d}" / "svm.npz", coef=coef.ravel(), intercept=np.array(0.0))
            aucs.append(0.7 + 0.05 * k + 0.01 * l)
        io.write_json(job / "results.json", {"auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs)),
                                             "auc": aucs, "latent_dim": l, "seed": seed, "n_folds": 3})
        io.write_json(job / "configs" / "_config.json", {
            "data": {"prepared_dir": str(prep)}, "folds": {"n_splits": 3, "seed": seed},
            "svm": {"C": 1.0, "backend": "sklearn"}, "model": {"latent_dim": l, "channels": [4, 4]},
            "stage": {"num_epochs": 1}, "args": {"seed": seed}})
    return root


def test_aggregate_table1_on_a_fake_sweep(tmp_path):
    root = _fake_sweep(tmp_path)
    out = aggregate_table1(root, pca_dims=[2, 4, 30], chunk_size=5, pca_backend="numpy")
    md = (root / "table1.md").read_text()
    assert "| Latent dimension | 2 | 4 | 30 |" in md
    wide = pd.read_csv(root / "table1.csv", dtype=str, keep_default_na=False)
    assert wide["method"].tolist() == ["VAE", "Early fusion PCA (joint)", "Late fusion PCA (per-modality)"]
    assert wide.loc[0, "30"] == "not run"  # no VAE job at 30
    assert wide.loc[1, "30"] == "n/a" and wide.loc[2, "30"] == "n/a"  # 30 > 16 fit subjects - 1
    assert float(wide.loc[0, "2"]) == pytest.approx(np.mean([0.72, 0.77, 0.82]), abs=1e-4)
    assert 0.0 <= float(wide.loc[2, "4"]) <= 1.0
    long = pd.read_csv(root / "table1_long.csv")
    assert set(long["method"]) == {"vae", "joint", "per_modality"}
    # importance per job and recall merged into results.json, earlier keys kept
    results = io.read_json(root / "latent_2" / "results.json")
    assert results["recovery"]["modality_recall"] == 1.0 and results["auc_mean"] == pytest.approx(0.77)
    assert (root / "latent_4" / "importance.png").is_file()
    assert "Modality recall" in md and "latent 4: 1.00" in md
    assert pd.read_csv(root / "recovery.csv")["modality_recall"].tolist() == [1.0, 1.0]
    assert len(out["records"]) == 2 + 2 * 3


def test_aggregate_refuses_mixed_folds(tmp_path):
    root = _fake_sweep(tmp_path, latent_dims=(2, 4), seeds=(1, 2))
    with pytest.raises(InputError, match="different folds"):
        # jobs trained with different fold seeds cannot share one Table I
        aggregate_table1(root, chunk_size=5, pca_backend="numpy")


def test_aggregate_seeds_on_a_fake_sweep(tmp_path):
    root = _fake_sweep(tmp_path, latent_dims=(2, 2), seeds=(1, 2))
    out = aggregate_seeds(root)
    frame = pd.read_csv(root / "seeds.csv", dtype={"seed": str})
    assert frame["seed"].tolist() == ["1", "2", "mean over seeds"]
    assert "mean ± std over 2 seeds" in (root / "seeds.md").read_text()
    assert out["recovery"][0]["modality_recall"] == 1.0


def test_vae_record_requires_fields():
    with pytest.raises(InputError, match="latent_dim"):
        vae_record({"auc": [0.5]}, source="x/results.json")


def test_multirun_command_and_no_overwrite(tmp_path):
    cmd = multirun_command("conf", "vae", "vae_table1", tmp_path / "sw", "latent_${model.latent_dim}",
                           ["stage.num_epochs=1"])
    assert cmd[cmd.index("--config-name") + 1] == "vae" and "--multirun" in cmd and "--hydra" in cmd
    assert "+experiment=vae_table1" in cmd and cmd[-1] == "stage.num_epochs=1"
    assert f"logdir={(tmp_path / 'sw').resolve()}/latent_${{model.latent_dim}}" in cmd
    io.write_json(tmp_path / "sw" / "latent_8" / "results.json", {"auc": [0.5]})
    with pytest.raises(InputError, match="earlier sweep"):
        launch_multirun([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "sw")
    assert json.loads((tmp_path / "sw" / "latent_8" / "results.json").read_text()) == {"auc": [0.5]}
