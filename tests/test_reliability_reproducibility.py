"""Run records and reproducibility: ``run_metadata.json`` says what produced a run, and the same seed
on the CPU gives the same folds and the same AUC."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from catalyst.engines import DeviceEngine
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from reliability_helpers import CONF, TINY_VAE, run_config

from fusion.data.folds import stratified_folds
from fusion.data.testing import cached_prepared
from fusion.provenance import (
    collect_run_metadata,
    config_differences,
    git_state,
    json_safe,
    package_versions,
)

REQUIRED_PACKAGES = ("torch", "catalyst", "hydra-core", "numpy", "scipy", "scikit-learn", "nibabel", "torchio")


def _check_metadata(metadata: dict, seed: int) -> None:
    assert metadata["seed"] == seed
    assert set(REQUIRED_PACKAGES) <= set(metadata["packages"])
    assert all(isinstance(metadata["packages"][name], str) for name in REQUIRED_PACKAGES)
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", metadata["git"]["commit"])
    assert metadata["git"]["dirty"] in (True, False, None)
    assert re.fullmatch(r"3\.\d+\.\d+.*", metadata["python"])


@pytest.mark.slow
def test_same_seed_same_folds_and_auc_and_a_full_run_record(tmp_path: Path) -> None:
    prepared = cached_prepared(24, True)
    common = [f"data.prepared_dir={prepared}", "folds.n_splits=2", "stage.num_epochs=1", "stage.batch_size=8",
              *TINY_VAE]
    first, second = tmp_path / "a", tmp_path / "b"
    run_config("vae", [f"logdir={first}", *common])
    run_config("vae", [f"logdir={second}", *common])

    splits = [json.loads((d / "splits.json").read_text()) for d in (first, second)]
    assert splits[0] == splits[1]
    labels = np.asarray([int(line.split(",")[1]) for line in (prepared / "index.csv").read_text().splitlines()[1:]])
    other_seed = stratified_folds(labels, 2, 0.1, seed=7)
    assert [f["test"] for f in splits[0]["folds"]] != [f.test.tolist() for f in other_seed]  # the seed matters

    results = [json.loads((d / "results.json").read_text()) for d in (first, second)]
    assert results[0]["auc"] == pytest.approx(results[1]["auc"], abs=1e-6)
    for k in range(2):
        scores = [json.loads((d / f"fold_{k:02d}" / "result.json").read_text())["scores"] for d in (first, second)]
        np.testing.assert_allclose(scores[0], scores[1], atol=1e-6, rtol=0)

    metadata = json.loads((first / "run_metadata.json").read_text())
    _check_metadata(metadata, 42)
    assert metadata["config"]["data"]["prepared_dir"] == str(prepared)
    assert metadata["config"]["model"]["latent_dim"] == 3
    assert metadata["config"]["folds"]["seed"] == 42  # interpolations resolved
    assert metadata["stages"] == ["fold_00", "fold_01"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CONF.parent, capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout: the recorded commit is the checkout's
        assert metadata["git"]["commit"] == head.stdout.strip()


def test_ccl_run_directory_gets_the_record(tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="ccl", overrides=[f"logdir={tmp_path / 'ccl'}", "args.seed=5"])
    runner = instantiate(cfg.runner, cfg=cfg)
    runner.engine = DeviceEngine("cpu")
    runner._record_run()
    metadata = json.loads((tmp_path / "ccl" / "run_metadata.json").read_text())
    _check_metadata(metadata, 5)
    assert metadata["config"]["criterion"]["_target_"].endswith("CollaborativeCrossEntropy")


def test_git_state_outside_a_checkout_and_package_versions(tmp_path: Path) -> None:
    assert git_state(tmp_path) == {"commit": "unknown", "dirty": None, "root": None}
    versions = package_versions(["numpy", "surely-not-installed-pkg"], optional_modules=["json", "no_such_module"])
    assert versions["numpy"] == np.__version__
    assert versions["surely-not-installed-pkg"] is None
    assert "no_such_module" not in versions and versions["json"] == "unknown"  # importable, no distribution
    record = collect_run_metadata({"a": 1}, 3, code_path=tmp_path)
    assert record["git"]["commit"] == "unknown" and record["seed"] == 3 and record["config"] == {"a": 1}
    json.dumps(record)  # JSON-ready


def test_config_differences_names_dotted_keys() -> None:
    old = {"stage": {"optimizer": {"lr": 1e-3}, "num_epochs": 2}, "folds": {"only": 1}, "x": [1, 2]}
    new = {"stage": {"optimizer": {"lr": 1e-4}, "num_epochs": 2}, "folds": {"only": None}, "x": [1, 2], "y": 0}
    assert config_differences(old, new) == ["folds.only", "stage.optimizer.lr", "y"]
    assert config_differences(old, new, ignore={"folds.only", "y"}) == ["stage.optimizer.lr"]
    assert config_differences(old, old) == []
    assert json_safe({"a": [float("inf"), 1.0], "b": float("nan")}) == {"a": ["inf", 1.0], "b": "nan"}
    assert config_differences(json_safe({"x": float("inf")}), json_safe({"x": float("inf")})) == []
