"""Cluster path on one machine: folds as separate submitit_local jobs, then one aggregation.

``hydra/launcher=local`` is hydra-submitit-launcher's ``submitit_local``: the same job pickling
and result collection as ``hydra/launcher=slurm``, with local processes instead of sbatch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CATALYST_DL = Path(sys.executable).parent / "catalyst-dl"
N_SUBJECTS = 16
#: Everything that must match between the fold jobs and the single run.
SUMMARY_KEYS = ("auc_mean", "auc_std", "auc", "folds", "n_folds", "n_splits", "complete", "latent_dim",
                "seed", "n_subjects")
COMMON = [
    "folds.n_splits=2", "stage.num_epochs=1", "stage.batch_size=4", "callbacks.progress=null",
    "callbacks.analysis=null", "model.channels=[2,2]", "model.head_channels=[2]", "model.latent_dim=2",
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    from fusion.data.prepare import prepare_cohort
    from fusion.data.synthetic_volumes import make_vae_cohort

    root = tmp_path_factory.mktemp("submitit_vae")
    manifest = make_vae_cohort(root / "cohort", size="tiny", n_subjects=N_SUBJECTS, progress=False)
    prepare_cohort(manifest, root / "prepared")
    return root / "prepared"


def _catalyst(*args: str) -> subprocess.CompletedProcess:
    cmd = [str(CATALYST_DL), "run", "--hydra", "--config-dir", "conf", "--config-name", "vae", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _single_run(logdir: Path, prepared: Path) -> None:
    """Both folds in one run, in this process (what catalyst-dl does after composing the config).

    Torch runs on one thread here, as in the jobs (OMP_NUM_THREADS=1): another thread count splits
    the convolutions' sums differently, and the scores would differ by float32 rounding (~1e-8).
    """
    import torch
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("vae", overrides=[f"logdir={logdir}", f"data.prepared_dir={prepared}", *COMMON])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runner = instantiate(cfg.runner, cfg=cfg)
        runner.run()
    finally:
        torch.set_num_threads(threads)
    assert runner.exception is None


@pytest.fixture(scope="module")
def runs(tmp_path_factory, prepared) -> dict:
    """Folds 0 and 1 as two submitit_local jobs into one folder, and both in one run."""
    root = tmp_path_factory.mktemp("submitit_runs")
    proc = _catalyst("--multirun", "hydra/launcher=local", f"hydra.sweep.dir={root / 'sweep'}",
                     f"logdir={root / 'jobs'}", f"data.prepared_dir={prepared}", "folds.only=0,1", *COMMON)
    _single_run(root / "single", prepared)
    return {"root": root, "jobs": root / "jobs", "single": root / "single", "output": proc.stdout + proc.stderr}


def _result(logdir: Path, fold: str) -> dict:
    return json.loads((logdir / fold / "result.json").read_text())


@pytest.mark.slow
def test_fold_jobs_through_submitit_local_aggregate_like_a_single_run(runs):
    jobs_dir, single_dir, sweep = runs["jobs"], runs["single"], runs["root"] / "sweep"
    # two submitit jobs, one per fold, into the same folder
    submitted = sorted(p.name for p in (sweep / ".submitit").iterdir() if p.name.isdigit())
    assert len(submitted) == 2, submitted
    overrides = sorted((sweep / str(k) / "overrides.yaml").read_text() for k in range(2))
    assert ["folds.only=0" in overrides[0], "folds.only=1" in overrides[1]] == [True, True]
    assert sorted(p.name for p in jobs_dir.glob("fold_*")) == ["fold_00", "fold_01"]
    # the launching process aggregated once more after both jobs had returned
    assert "fold results: results.on_experiment_end" in runs["output"]

    jobs = json.loads((jobs_dir / "results.json").read_text())
    single = json.loads((single_dir / "results.json").read_text())
    assert set(jobs) == set(single)
    assert jobs["complete"] is True and jobs["folds"] == ["fold_00", "fold_01"]
    for key in ("folds", "n_folds", "n_splits", "complete", "latent_dim", "seed", "n_subjects"):
        assert jobs[key] == single[key], key
    # the summary covers both jobs' folds
    aucs = [_result(jobs_dir, f)["auc"] for f in ("fold_00", "fold_01")]
    assert jobs["auc"] == pytest.approx(aucs, abs=1e-12)
    assert jobs["auc_mean"] == pytest.approx(np.mean(aucs)) and jobs["auc_std"] == pytest.approx(np.std(aucs))
    # same splits; fold 0 (the first stage in both) trained identically: same scores and AUC
    assert json.loads((jobs_dir / "splits.json").read_text())["folds"] == \
        json.loads((single_dir / "splits.json").read_text())["folds"]
    a, b = _result(jobs_dir, "fold_00"), _result(single_dir, "fold_00")
    np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-6, atol=1e-9)
    assert jobs["auc"][0] == pytest.approx(single["auc"][0], abs=1e-12)


@pytest.mark.slow
def test_a_later_fold_alone_trains_like_in_the_full_run(runs):
    a, b = _result(runs["jobs"], "fold_01"), _result(runs["single"], "fold_01")
    np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-6, atol=1e-9)


def _fake_sweep(sweep: Path, logdirs: list[Path]) -> None:
    """A sweep folder as Hydra leaves it: per job, the job's config.yaml beside hydra.yaml."""
    for num, logdir in enumerate(logdirs):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
            cfg = compose("vae", overrides=[f"logdir={logdir}", "folds.n_splits=2", f"folds.only={num}",
                                            "data.prepared_dir=/nonexistent", "callbacks.analysis=null"])
        (sweep / str(num)).mkdir(parents=True)
        OmegaConf.save(cfg, sweep / str(num) / "config.yaml")
        (sweep / str(num) / "hydra.yaml").write_text("hydra: {}\n")


def test_fold_results_callback_completes_a_partial_summary(tmp_path):
    """The multirun-end callback alone: a summary written when one fold was missing is redone."""
    from fusion_runners.multirun import FoldResultsCallback, shared_run_folders

    logdir = tmp_path / "run"
    for fold, auc in ((0, 0.6), (1, 0.9)):
        path = logdir / f"fold_{fold:02d}" / "result.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"auc": auc, "latent_dim": 2, "n_subjects": 16}))
    stale = {"auc": [0.6], "folds": ["fold_00"], "complete": False}  # what a racing job left
    (logdir / "results.json").write_text(json.dumps(stale))
    # two jobs into `run`, one into `alone` (a folder of its own, e.g. one latent size)
    (tmp_path / "alone" / "fold_00").mkdir(parents=True)
    (tmp_path / "alone" / "fold_00" / "result.json").write_text(json.dumps({"auc": 0.5}))
    _fake_sweep(tmp_path / "sweep", [logdir, logdir])
    _fake_sweep(tmp_path / "sweep" / "more", [tmp_path / "alone"])
    assert shared_run_folders(tmp_path / "sweep") == {logdir.resolve(): tmp_path / "sweep" / "0" / "config.yaml"}

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("vae", overrides=["hydra/launcher=local", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                      return_hydra_config=True)
    assert cfg.hydra.callbacks.fold_results._target_ == "fusion_runners.multirun.FoldResultsCallback"
    FoldResultsCallback(enabled=False).on_multirun_end(cfg)
    assert json.loads((logdir / "results.json").read_text()) == stale
    FoldResultsCallback().on_multirun_end(cfg)
    results = json.loads((logdir / "results.json").read_text())
    assert results["auc"] == [0.6, 0.9] and results["complete"] is True and results["n_splits"] == 2
    assert results["auc_mean"] == pytest.approx(0.75) and results["seed"] == 42
    assert not (tmp_path / "alone" / "results.json").exists()  # a one-job folder is left alone
    # the job config's prepared folder does not exist here: no verdict, and results.json says why
    assert results["interpretable"] is None and "does not exist" in results["statistics"]["skipped"]
