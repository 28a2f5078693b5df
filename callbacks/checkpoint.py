"""Checkpoints in the folder of the current stage (one folder per fold)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from catalyst.callbacks import CheckpointCallback

from fusion.io import atomic_path


class StageCheckpointCallback(CheckpointCallback):
    """Catalyst's ``CheckpointCallback`` writing to ``<logdir>/<stage>/<subdir>``.

    Catalyst's callback takes one fixed folder; with one stage per fold every fold needs its own
    (``fold_03/checkpoints/best.pth``, ``last.pth``, ``*_full.pth``, ``_metrics.json``). Build one
    per stage (the config runner does), since it keeps the best score of its stage.

    Every ``.pth`` file is written to a temporary name and renamed into place (Catalyst writes
    them in place), so a run killed while saving never leaves a truncated ``best.pth`` or
    ``last.pth`` behind; the rest is Catalyst's behaviour unchanged.

    Args:
        logdir: the run's folder; None uses ``runner.logdir``.
        subdir: folder inside the stage folder.
        **kwargs: passed to ``CheckpointCallback`` (``loader_key``, ``metric_key``, ``minimize``,
            ``save_n_best``, ``mode``, ...).
    """

    def __init__(self, logdir: str | Path | None = None, subdir: str = "checkpoints", **kwargs: Any):
        # Catalyst asserts a folder at init; the real one is known at stage start.
        super().__init__(logdir=str(logdir or "."), **kwargs)
        self._run_logdir = None if logdir is None else Path(logdir)
        self.subdir = subdir

    def on_stage_start(self, runner: Any) -> None:
        """Point the callback at this stage's folder, then Catalyst's stage start."""
        run_logdir = self._run_logdir if self._run_logdir is not None else Path(runner.logdir)
        self.logdir = str(run_logdir / runner.stage_key / self.subdir)
        super().on_stage_start(runner)

    def _save_checkpoint(self, runner: Any, checkpoint: dict, is_best: bool, is_last: bool) -> str | None:
        """Catalyst's full and model-only checkpoints (and their best/last copies), atomically."""
        folder = Path(str(self.logdir))
        folder.mkdir(parents=True, exist_ok=True)
        suffix = f"{runner.stage_key}.{runner.stage_epoch_step}"
        saved: str | None = None
        parts = []
        if self.mode in ("all", "full"):
            parts.append((checkpoint, "_full"))
        if self.mode in ("all", "model"):
            exclude = ("criterion", "optimizer", "scheduler")
            parts.append(({k: v for k, v in checkpoint.items() if all(z not in k for z in exclude)}, ""))
        for content, extra in parts:
            path = folder / f"{suffix}{extra}.pth"
            with atomic_path(path, suffix=".pth") as tmp:
                runner.engine.save_checkpoint(content, str(tmp))
            for flag, name in ((is_best, "best"), (is_last, "last")):
                if flag:
                    with atomic_path(folder / f"{name}{extra}.pth", suffix=".pth") as tmp:
                        shutil.copyfile(path, tmp)
            saved = f"{folder}/{suffix}{extra}.pth"
        return saved  # None only when mode is none of "all", "full", "model" (nothing written)
