"""End-to-end VAE pipeline through ``catalyst-dl run --hydra`` on the tiny embedded cohort."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
CATALYST_DL = Path(sys.executable).parent / "catalyst-dl"
N_SUBJECTS = 18
TINY_MODEL = ["model.channels=[2,2]", "model.head_channels=[2]", "model.latent_dim=3"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The tiny embedded cohort (14x16x13 grid), prepared."""
    from fusion.data.prepare import prepare_cohort
    from fusion.data.synthetic_volumes import make_vae_cohort

    root = tmp_path_factory.mktemp("tiny_vae")
    manifest = make_vae_cohort(root / "cohort", size="tiny", n_subjects=N_SUBJECTS, progress=False)
    prepare_cohort(manifest, root / "prepared")
    return root / "prepared"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(logdir: Path, prepared: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [
        str(CATALYST_DL), "run", "--hydra", "--config-dir", "conf", "--config-name", "vae",
        f"logdir={logdir}", f"data.prepared_dir={prepared}", "folds.n_splits=3",
        "stage.num_epochs=1", "stage.batch_size=5", "callbacks.progress=null", *TINY_MODEL, *overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _check_fold(logdir: Path, fold: int, splits: dict, labels: dict[str, int]) -> float:
    stage = logdir / f"fold_{fold:02d}"
    assert (stage / "checkpoints" / "best.pth").is_file()
    assert (stage / "logs" / "valid.csv").is_file()
    latents = np.load(stage / "latents.npz", allow_pickle=False)
    assert latents["mu"].shape == (N_SUBJECTS, 54, 3)
    assert np.isfinite(latents["mu"]).all()
    entry = splits["folds"][fold]
    np.testing.assert_array_equal(latents["test"], entry["test"])
    np.testing.assert_array_equal(latents["val"], entry["val"])

    result = json.loads((stage / "result.json").read_text())
    assert result["test_subject_ids"] == entry["test_ids"]
    # labels from the prepared index (independent of the pipeline) and AUC from scikit-learn
    assert result["test_labels"] == [labels[s] for s in result["test_subject_ids"]]
    assert result["auc"] == pytest.approx(roc_auc_score(result["test_labels"], result["scores"]), abs=1e-12)
    svm = np.load(stage / "svm.npz")
    assert svm["coef"].shape == (54 * 3,)
    return result["auc"]


@pytest.mark.slow
def test_folds_as_separate_jobs_then_aggregated(tmp_path, prepared):
    logdir = tmp_path / "run"
    labels = {row.subject_id: int(row.label) for row in pd.read_csv(prepared / "index.csv").itertuples()}

    # one fold alone: only its folder, and a partial summary
    _run(logdir, prepared, "folds.only=1")
    assert sorted(p.name for p in logdir.glob("fold_*")) == ["fold_01"]
    partial = json.loads((logdir / "results.json").read_text())
    assert partial["folds"] == ["fold_01"] and partial["complete"] is False

    splits = json.loads((logdir / "splits.json").read_text())
    assert splits["n_splits"] == 3 and splits["n_subjects"] == N_SUBJECTS
    tested = []
    for entry in splits["folds"]:
        train, val, test = (set(entry[f"{p}_ids"]) for p in ("train", "val", "test"))
        assert not (train & val or train & test or val & test), "a subject is in two parts of a fold"
        assert len(train | val | test) == N_SUBJECTS
        tested += entry["test_ids"]
    assert sorted(tested) == sorted(labels)

    # the other folds as a second job into the same folder: the summary covers all three
    proc = _run(logdir, prepared, "folds.only=[0,2]")
    assert "fold_00: test AUC" in proc.stdout and "fold_01: test AUC" not in proc.stdout
    aucs = [_check_fold(logdir, k, splits, labels) for k in range(3)]
    results = json.loads((logdir / "results.json").read_text())
    for key in ("auc_mean", "auc_std", "auc", "folds", "latent_dim", "seed", "n_subjects"):
        assert key in results
    assert results["folds"] == ["fold_00", "fold_01", "fold_02"] and results["complete"] is True
    assert results["auc"] == pytest.approx(aucs)
    assert results["auc_mean"] == pytest.approx(np.mean(aucs))
    assert results["auc_std"] == pytest.approx(np.std(aucs))
    assert (results["latent_dim"], results["seed"], results["n_subjects"]) == (3, 42, N_SUBJECTS)
    assert (logdir / "configs" / "config.yaml").is_file()  # Catalyst's dump of the resolved config
    # Hydra's own output (resolved config, overrides, log) goes under the logdir, not the cwd
    assert len(list(logdir.glob("hydra/*/overrides.yaml"))) == 2


@pytest.mark.slow
def test_ddp_gloo_two_processes_write_one_result(tmp_path, prepared):
    logdir = tmp_path / "ddp"
    proc = _run(logdir, prepared, "engine=ddp_cpu", f"engine.port={_free_port()}", "folds.only=0",
                "folds.n_splits=2", timeout=400)
    assert proc.stdout.count("fold_00: test AUC") == 1  # evaluated by rank 0 only
    assert proc.stdout.count("over 1 fold(s)") == 1  # aggregated once, by the launcher
    assert sorted(p.name for p in logdir.glob("fold_*")) == ["fold_00"]
    results = json.loads((logdir / "results.json").read_text())
    assert results["folds"] == ["fold_00"] and 0.0 <= results["auc"][0] <= 1.0
    assert len(list(logdir.rglob("results.json"))) == 1
