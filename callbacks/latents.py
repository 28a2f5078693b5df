"""Embed every subject with a fold's trained VAE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from catalyst.core import Callback, CallbackNode, CallbackOrder

from fusion import io
from fusion.devices import unwrap_model
from fusion.errors import InputError
from fusion.evaluate.latents import embed_subjects
from fusion.io import save_npz
from fusion_runners.base import is_main_process


class LatentExtractionCallback(Callback):
    """At the end of a fold: load its best checkpoint and write every subject's latents.

    Writes ``<logdir>/<stage>/<filename>`` with ``mu`` ``(n_subjects, 54, latent_dim)``, ``labels``,
    ``subject_ids``, and the fold's ``train``, ``val``, ``test`` subject indices (from
    ``runner.stage_indices``). Only the main process writes (``CallbackNode.master``), once.

    Args:
        logdir: the run's folder; None uses ``runner.logdir``.
        checkpoint: which checkpoint of the stage to load (``best`` or ``last``).
        checkpoint_dir: folder of the checkpoints inside the stage folder.
        batch_size: subjects per forward pass.
        filename: output file inside the stage folder.
        progress: show a progress bar.
    """

    def __init__(
        self,
        logdir: str | Path | None = None,
        checkpoint: str = "best",
        checkpoint_dir: str = "checkpoints",
        batch_size: int = 1,
        filename: str = "latents.npz",
        progress: bool = True,
    ):
        super().__init__(order=CallbackOrder.external_extra, node=CallbackNode.master)
        self.logdir = logdir
        self.checkpoint = checkpoint
        self.checkpoint_dir = checkpoint_dir
        self.batch_size = batch_size
        self.filename = filename
        self.progress = progress

    def on_stage_end(self, runner: Any) -> None:
        """Embed the cohort with the stage's checkpoint and save the latents."""
        if not is_main_process(runner.engine):
            return
        stage_dir = Path(self.logdir if self.logdir is not None else runner.logdir) / runner.stage_key
        path = stage_dir / self.checkpoint_dir / f"{self.checkpoint}.pth"
        if not path.is_file():
            raise InputError(f"latent extraction: checkpoint {path} does not exist (did the stage train?)")
        state = io.load_checkpoint(path)
        model = unwrap_model(runner.model)
        model.load_state_dict(state["model_state_dict"])
        dataset = runner.dataset
        mu = embed_subjects(model, dataset, self.batch_size, runner.engine.device, self.progress)
        split = runner.stage_indices.get(runner.stage_key, {})
        save_npz(
            stage_dir / self.filename,
            mu=mu,
            labels=np.asarray(dataset.labels, dtype=np.int64),
            subject_ids=np.asarray([str(s) for s in dataset.subject_ids]),
            train=np.asarray(split.get("train", []), dtype=np.int64),
            val=np.asarray(split.get("valid", []), dtype=np.int64),
            test=np.asarray(split.get("test", []), dtype=np.int64),
        )


__all__ = ["LatentExtractionCallback"]
