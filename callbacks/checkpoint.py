"""Checkpoints in the folder of the current stage (one folder per fold)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from catalyst.callbacks import CheckpointCallback


class StageCheckpointCallback(CheckpointCallback):
    """Catalyst's ``CheckpointCallback`` writing to ``<logdir>/<stage>/<subdir>``.

    Catalyst's callback takes one fixed folder; with one stage per fold every fold needs its own
    (``fold_03/checkpoints/best.pth``, ``last.pth``, ``*_full.pth``, ``_metrics.json``). Build one
    per stage (the config runner does), since it keeps the best score of its stage.

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
