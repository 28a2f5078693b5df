"""bench/gpu_check.sh: without CUDA it says so and runs nothing; its pieces; the CPU dry run end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import gpu_check
from bench.gpu_check import (
    Plan,
    bf16_peak,
    gpu_test_files,
    protocol_seconds,
    steady_step_seconds,
)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (gpu_check.FORCE_CPU_ENV, gpu_check.PEAK_ENV)}
    env.update(PYTHON=sys.executable, **extra)
    return env


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the script runs the whole check")
def test_without_cuda_it_says_so_exits_0_and_runs_nothing(tmp_path):
    work, out = tmp_path / "work", tmp_path / "report.json"
    proc = subprocess.run(["bash", str(SCRIPT), "--workdir", str(work), "--out", str(out)], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "needs CUDA" in proc.stdout and "nothing was run" in proc.stdout
    assert not work.exists() and not out.exists()  # no cohort, no run, no report
    assert "gpu-check:" not in proc.stdout + proc.stderr  # no step announced itself


@pytest.mark.parametrize("name, tflops", [
    ("NVIDIA H200", 989.0), ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0),
    ("NVIDIA H100 NVL", 835.0), ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A100 80GB PCIe", 312.0),
    ("NVIDIA L40S", 362.0), ("NVIDIA L40", 181.0), ("NVIDIA L4", 121.0), ("NVIDIA GH200 480GB", 989.0),
])
def test_bf16_peak_by_device_name(name, tflops, monkeypatch):
    monkeypatch.delenv(gpu_check.PEAK_ENV, raising=False)
    peak, source = bf16_peak(name)
    assert peak == pytest.approx(tflops * 1e12) and "table" in source


def test_unknown_device_is_named_and_the_peak_can_be_given(monkeypatch):
    monkeypatch.delenv(gpu_check.PEAK_ENV, raising=False)
    peak, source = bf16_peak("Tesla V100-SXM2-16GB")
    assert peak is None and "unknown device" in source and "V100" in source
    monkeypatch.setenv(gpu_check.PEAK_ENV, "100")
    assert bf16_peak("Tesla V100-SXM2-16GB")[0] == pytest.approx(1e14)


def test_protocol_projection_and_steady_step():
    assert protocol_seconds(3.0, 20.0) == pytest.approx(10 * (100 * 3.0 + 20.0))
    assert protocol_seconds(1.0, 0.0, folds=2, epochs=5) == pytest.approx(10.0)
    # warm-up batches (first 5%, at least 3) are left out of the step time
    assert steady_step_seconds([9.0, 8.0, 7.0] + [0.1] * 40 + [0.2] * 17) == pytest.approx(0.1)
    assert steady_step_seconds([5.0, 1.0]) == pytest.approx(1.0)


def test_expanded_subjects_are_new_and_scaled():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((54, 6, 7, 5)).astype(np.float32)
    noise = rng.standard_normal(base.shape).astype(np.float32)
    a = gpu_check._jittered(base.copy(), np.random.default_rng(1), noise)
    b = gpu_check._jittered(base.copy(), np.random.default_rng(2), noise)
    assert a.shape == base.shape and a.dtype == np.float32
    np.testing.assert_allclose(np.abs(a).reshape(54, -1).max(axis=1), 1.0, rtol=1e-6)
    assert not np.allclose(a, b)


def test_gpu_test_files_are_those_with_the_mark():
    files = {p.name for p in gpu_test_files()}
    assert "test_evaluate_classifiers.py" in files and "test_vae_pca.py" in files
    assert "test_gpu_check.py" not in files  # this file has no GPU test
    for path in gpu_test_files():
        assert "\n@pytest.mark.gpu" in path.read_text()


def test_full_plan_is_the_paper_config_in_bf16(tmp_path):
    """What a GPU machine would train: vae_paper's model and batch, bf16 autocast on cuda:0, one epoch of fold 0."""
    plan = Plan.full()
    assert (plan.subjects, plan.size, plan.device, plan.model, plan.n_splits) == (500, "paper", "cuda", None, None)
    cfg = gpu_check.compose_paper(plan, tmp_path / "prepared", tmp_path / "run")
    assert list(cfg.model.channels) == [64, 128, 256, 512] and list(cfg.model.head_channels) == [32, 16]
    assert cfg.model.latent_dim == 128 and cfg.stage.batch_size == 2 and cfg.folds.n_splits == 10
    assert cfg.engine._target_ == "fusion_runners.engines.AutocastEngine" and cfg.engine.dtype == "bfloat16"
    assert cfg.engine.device == "cuda:0"
    assert cfg.folds.only == 0 and cfg.stage.num_epochs == 1 and cfg.svm.backend == "auto"
    assert cfg.runner._target_ == "bench.timed_runner.TimedVAERunner"
    assert cfg.callbacks.analysis is None and cfg.callbacks.latents is not None and cfg.callbacks.svm is not None


@pytest.mark.slow
def test_dry_run_end_to_end(tmp_path):
    """The forced CPU path runs every step of the script at tiny sizes and reports them."""
    work, out = tmp_path / "work", tmp_path / "report.json"
    proc = subprocess.run(["bash", str(SCRIPT), "--workdir", str(work), "--out", str(out)], cwd=tmp_path,
                          env=_env(**{gpu_check.FORCE_CPU_ENV: "1"}), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["plan"] == json.loads(json.dumps(gpu_check.asdict(Plan.dry())))
    assert report["status"] == "PASS"
    assert report["gpu_tests"]["status"] == "PASS" and "collected" in report["gpu_tests"]["detail"]
    epoch = report["epoch"]
    assert epoch["status"] == "PASS" and epoch["svm_backend"] == "sklearn" and 0 <= epoch["auc_fold0_1_epoch"] <= 1
    # 12 subjects, 2 folds: 6 test; of the other 6, one per class validates -> 4 train = 2 batches of 2
    assert epoch["train_batches"] == 2 and epoch["volumes_per_step"] == 108
    assert 0 < epoch["step_seconds"] <= epoch["train_loader_seconds"] <= epoch["epoch_seconds"]
    # counted FLOP: the encoder's first conv alone is 2 * 27 * c1 FLOP per output voxel, x3 with backward
    step = report["model_step"]
    c1 = epoch["config"]["model"]["channels"][0]
    first_conv = 2 * 27 * c1 * math.prod(math.ceil(s / 2) for s in report["cohort"]["grid"])
    assert step["flop_per_volume"] > 3 * first_conv and step["bf16_autocast"] is False
    assert report["mfu"]["peak_flop_per_s"] is None and report["mfu"]["runner"] is None
    proj = report["protocol"]
    assert proj["seconds"] == pytest.approx(10 * (100 * proj["epoch_seconds"] + proj["after_training_seconds"]))
    assert report["svm"]["status"] == "SKIP" and report["pca"]["status"] == "SKIP"
    assert report["pca"]["numpy_seconds"] > 0
    # the expanded cohort is a valid prepared folder: 12 subjects, both groups, max |v| = 1 per volume
    from fusion.data.dataset import PreparedVolumes

    data = PreparedVolumes(work / "prepared")
    assert len(data) == 12 and set(data.labels.tolist()) == {0, 1}
    np.testing.assert_allclose(data[5]["volumes"].abs().flatten(1).max(dim=1).values.numpy(), 1.0, rtol=1e-6)
    for line in ("step time", "MFU", "protocol", "gpu_tests  PASS"):
        assert line in proc.stdout
