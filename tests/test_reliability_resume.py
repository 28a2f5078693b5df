"""A VAE run killed with SIGKILL mid-training resumes with the same command and matches an
uninterrupted run: finished folds are skipped, the interrupted fold continues after its last
finished epoch, the fold that never started trains from scratch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_helpers import TINY_VAE, run_config

from fusion.data.testing import cached_prepared, folder_digest
from fusion_runners.base import RUN_METADATA

ROOT = Path(__file__).resolve().parents[1]
CATALYST_DL = Path(sys.executable).parent / "catalyst-dl"
N_SPLITS, N_EPOCHS = 3, 2
KILL_STAGE, KILL_EPOCH, KILL_BATCH = "fold_01", 2, 1


def _overrides(logdir: Path, prepared: Path) -> list[str]:
    return [
        f"logdir={logdir}", f"data.prepared_dir={prepared}", f"folds.n_splits={N_SPLITS}",
        f"stage.num_epochs={N_EPOCHS}", "stage.batch_size=6", "stage.patience=5", *TINY_VAE,
    ]


def _command(logdir: Path, prepared: Path, *extra: str) -> list[str]:
    return [str(CATALYST_DL), "run", "--hydra", "--config-dir", "conf", "--config-name", "vae",
            *_overrides(logdir, prepared), *extra]


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": path}


def _run(command: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _fold(logdir: Path, k: int) -> tuple[dict, np.ndarray]:
    stage = logdir / f"fold_{k:02d}"
    result = json.loads((stage / "result.json").read_text())
    with np.load(stage / "latents.npz", allow_pickle=False) as latents:
        return result, latents["mu"].copy()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run (in this process) to compare the interrupted ones with."""
    logdir = tmp_path_factory.mktemp("reference") / "run"
    run_config("vae", _overrides(logdir, cached_prepared(24, True)))
    return logdir


def _same_as(logdir: Path, reference: Path) -> float:
    """Assert every fold matches the reference run; return the |difference| of auc_mean."""
    for k in range(N_SPLITS):
        got, mu = _fold(logdir, k)
        want, mu_ref = _fold(reference, k)
        np.testing.assert_array_equal(mu, mu_ref)
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-9)
        assert got["auc"] == pytest.approx(want["auc"], abs=1e-9)
    summary = json.loads((logdir / "results.json").read_text())
    expected = json.loads((reference / "results.json").read_text())
    assert summary["complete"] is True and summary["n_folds"] == N_SPLITS
    return abs(summary["auc_mean"] - expected["auc_mean"])


@pytest.mark.slow
def test_sigkill_mid_training_resumes_like_an_uninterrupted_run(tmp_path: Path, reference: Path) -> None:
    prepared = cached_prepared(24, True)
    logdir, marker = tmp_path / "interrupted", tmp_path / "paused"

    pause = [
        "+callbacks.pause._target_=reliability_helpers.PauseAtBatch",
        f"+callbacks.pause.stage={KILL_STAGE}", f"+callbacks.pause.epoch={KILL_EPOCH}",
        f"+callbacks.pause.batch={KILL_BATCH}", f"+callbacks.pause.marker={marker}",
    ]
    command = _command(logdir, prepared, *pause)
    proc = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the run never reached {KILL_STAGE} epoch {KILL_EPOCH}: {proc.poll()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # What the kill left: fold 0 finished, fold 1 in epoch 2 with the state of epoch 1, no summary.
    assert (logdir / "fold_00" / "complete.json").is_file()
    assert not (logdir / f"{KILL_STAGE}" / "complete.json").exists()
    assert not (logdir / f"{KILL_STAGE}" / "result.json").exists()
    state = torch.load(logdir / KILL_STAGE / "resume.pth", map_location="cpu", weights_only=True)
    assert state["stage_epoch_step"] == KILL_EPOCH - 1
    assert not (logdir / "fold_02").exists() and not (logdir / "results.json").exists()
    assert not list(logdir.rglob(".*.tmp")) and not list(logdir.rglob(".*.pth"))  # no half-written files
    fold0 = folder_digest(logdir / "fold_00")

    rerun = _run(command)  # the very same command
    out = rerun.stdout
    assert "fold_00: complete in an earlier run, skipped" in out
    assert "fold_00: test AUC" not in out  # not recomputed
    assert f"{KILL_STAGE}: resumed after epoch {KILL_EPOCH - 1} of {N_EPOCHS}" in out
    assert folder_digest(logdir / "fold_00") == fold0
    done = json.loads((logdir / KILL_STAGE / "complete.json").read_text())
    assert done["resumed_after_epoch"] == KILL_EPOCH - 1 and done["epochs"] == N_EPOCHS
    assert not (logdir / KILL_STAGE / "resume.pth").exists()

    # Same numbers as the uninterrupted run.
    auc_difference = _same_as(logdir, reference)
    assert auc_difference <= 1e-9
    summary = json.loads((logdir / "results.json").read_text())
    epochs_redone = KILL_EPOCH - done["resumed_after_epoch"]
    print(f"resume: killed in {KILL_STAGE} epoch {KILL_EPOCH} (batch {KILL_BATCH}), epochs redone {epochs_redone}, "
          f"auc_mean {summary['auc_mean']:.6f}, difference to the uninterrupted run {auc_difference:.2e}")


@pytest.mark.slow
def test_failure_at_stage_end_resumes_without_training_then_skips_then_retrains_when_asked(
        tmp_path: Path, reference: Path, capsys: pytest.CaptureFixture) -> None:
    prepared = cached_prepared(24, True)
    logdir = tmp_path / "run"
    fail = ["+callbacks.fail._target_=reliability_helpers.FailOnceAtStageEnd", f"+callbacks.fail.stage={KILL_STAGE}",
            f"+callbacks.fail.marker={tmp_path / 'failed'}"]
    overrides = [*_overrides(logdir, prepared), *fail]
    with pytest.raises(RuntimeError, match="injected failure"):
        run_config("vae", overrides)
    state = torch.load(logdir / KILL_STAGE / "resume.pth", map_location="cpu", weights_only=True)
    assert state["stage_epoch_step"] == N_EPOCHS and state["stopped"] is True
    assert not (logdir / KILL_STAGE / "complete.json").exists() and not (logdir / "results.json").exists()
    capsys.readouterr()

    run_config("vae", overrides)  # resumes: fold 1 trains no epoch, only its stage end runs
    out = capsys.readouterr().out
    assert "fold_00: complete in an earlier run, skipped" in out
    assert f"{KILL_STAGE}: resumed after epoch {N_EPOCHS} of {N_EPOCHS}" in out
    assert f"{KILL_STAGE}: test AUC" in out and "fold_02: test AUC" in out
    assert _same_as(logdir, reference) <= 1e-9

    digest = folder_digest(logdir / "fold_00")
    run_config("vae", overrides)  # everything complete: nothing retrained, the summary rewritten
    out = capsys.readouterr().out
    assert out.count("complete in an earlier run, skipped") == N_SPLITS and "test AUC" not in out
    assert folder_digest(logdir / "fold_00") == digest

    run_config("vae", [*overrides, "++args.autoresume=off"])  # retrain on request, same numbers
    out = capsys.readouterr().out
    assert "skipped" not in out and out.count("test AUC") == N_SPLITS
    assert _same_as(logdir, reference) <= 1e-9
    history = json.loads((logdir / RUN_METADATA).read_text())["history"]
    assert len(history) == 3 and json.loads((logdir / RUN_METADATA).read_text())["autoresume"] == "off"
