"""Checkpoint selection and early stopping per view of a collaborative network.

In gCAM-CCL each view's class scores come from that view's branch and head only; the views meet
in the loss. Their best epochs differ: on the embedded cohorts the FC view's validation
cross-entropy bottomed out after 2-5 epochs and the SNP view's after 3-11, so any single epoch
(chosen on the summed loss) leaves one branch under- or over-trained. This callback
keeps, for every view, the parameters of the epoch where that view's own validation
cross-entropy (``label_loss_<view>``, logged by ``fusion_runners.ccl.CCLRunner``) was lowest, and writes
them together as one model checkpoint; training stops when no view has improved for
``patience`` epochs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from catalyst.core import Callback, CallbackOrder

from fusion import io
from fusion.devices import unwrap_model
from fusion.errors import ConfigError
from fusion_runners.base import is_main_process


class PerViewCheckpointCallback(Callback):
    """Best epoch per view -> ``<stage>/checkpoints/<filename>``; early stop when all views stall.

    The file holds ``model_state_dict`` (each view's branch ``views.<v>.*`` and head
    ``collab.<v>.*`` from its own best epoch) and ``epochs`` / ``scores`` per view; it is rewritten
    atomically whenever a view improves, so an interrupted stage resumes with it intact.

    Args:
        loader_key: loader whose epoch metrics are monitored (``valid``).
        metric_prefix: metric of view ``v`` is ``<metric_prefix>_<v>`` (minimised).
        patience: stop after this many epochs in which no view improved; ``None`` never stops.
        min_delta: smallest decrease that counts as an improvement.
        filename: checkpoint file name inside ``<stage>/checkpoints``.
    """

    def __init__(self, loader_key: str = "valid", metric_prefix: str = "label_loss",
                 patience: int | None = 3, min_delta: float = 1e-6, filename: str = "best_per_view.pth"):
        super().__init__(order=CallbackOrder.External)
        if patience is not None and patience < 1:
            raise ConfigError(f"patience must be >= 1 or null, got {patience}")
        self.loader_key = loader_key
        self.metric_prefix = metric_prefix
        self.patience = patience
        self.min_delta = float(min_delta)
        self.filename = filename
        self.scores: dict[str, float] = {}
        self.epochs: dict[str, int] = {}
        self.stalled = 0
        self._state: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ resume support
    def state_dict(self) -> dict[str, Any]:
        """What the resume state keeps (the weights themselves are in the checkpoint file)."""
        return {"scores": dict(self.scores), "epochs": dict(self.epochs), "stalled": int(self.stalled)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scores = {str(k): float(v) for k, v in state.get("scores", {}).items()}
        self.epochs = {str(k): int(v) for k, v in state.get("epochs", {}).items()}
        self.stalled = int(state.get("stalled", 0))
        self._state = None  # read back from the file when a view next improves

    # ------------------------------------------------------------------ events
    def on_stage_start(self, runner: Any) -> None:
        self.scores, self.epochs, self.stalled, self._state = {}, {}, 0, None

    def on_epoch_end(self, runner: Any) -> None:
        metrics = runner.epoch_metrics.get(self.loader_key)
        if metrics is None:
            return
        model = unwrap_model(runner.model)
        views = list(getattr(model, "view_names", []))
        if not views:
            raise ConfigError("PerViewCheckpointCallback needs a model with view_names (CollaborativeNet)")
        missing = [f"{self.metric_prefix}_{v}" for v in views if f"{self.metric_prefix}_{v}" not in metrics]
        if missing:
            raise ConfigError(
                f"PerViewCheckpointCallback: the {self.loader_key} metrics have no {missing} "
                f"(have {sorted(metrics)}); the runner must log one metric per view"
            )
        improved = [v for v in views
                    if float(metrics[f"{self.metric_prefix}_{v}"]) < self.scores.get(v, float("inf")) - self.min_delta]
        if improved:
            self.stalled = 0
            self._update(runner, model, improved, metrics)
        else:
            self.stalled += 1
        if self.patience is not None and self.stalled >= self.patience:
            runner.need_early_stop = True

    # ------------------------------------------------------------------ work
    def path(self, runner: Any) -> Path:
        return Path(runner.stage_dir()) / "checkpoints" / self.filename

    def _update(self, runner: Any, model: torch.nn.Module, improved: list[str], metrics: dict) -> None:
        current = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        path = self.path(runner)
        if self._state is None:
            self._state = dict(current)
            if path.is_file() and self.epochs:  # resumed: the earlier bests are in the file
                self._state.update(io.load_checkpoint(path)["model_state_dict"])
        for view in improved:
            prefixes = (f"views.{view}.", f"collab.{view}.")
            self._state.update({k: v for k, v in current.items() if k.startswith(prefixes)})
            self.scores[view] = float(metrics[f"{self.metric_prefix}_{view}"])
            self.epochs[view] = int(runner.stage_epoch_step)
        if is_main_process(runner.engine):
            path.parent.mkdir(parents=True, exist_ok=True)
            with io.atomic_path(path, suffix=".pth") as tmp:
                torch.save({"model_state_dict": self._state, "epochs": dict(self.epochs),
                            "scores": dict(self.scores), "metric": self.metric_prefix}, tmp)


__all__ = ["PerViewCheckpointCallback"]
