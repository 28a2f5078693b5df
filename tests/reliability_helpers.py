"""Helpers of the reliability tests (not a test module).

- :class:`PauseAtBatch`: a Catalyst callback that freezes a training run at a chosen batch.
  ``tests/test_reliability_resume.py`` adds it to a run's config
  (``+callbacks.pause._target_=reliability_helpers.PauseAtBatch ...``) with ``tests/`` on
  ``PYTHONPATH``. At the chosen training batch it writes ``marker`` and sleeps, so the test can
  send SIGKILL from outside at a known point. When ``marker`` exists (the rerun) it does nothing,
  so the very same command resumes the run.
- :func:`run_config`: what ``catalyst-dl run --hydra`` does, in this process (no import cost).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from catalyst.core import Callback, CallbackOrder

CONF = Path(__file__).resolve().parents[1] / "conf"

#: Overrides that shrink the VAE config to a seconds-long run on the tiny cohort.
TINY_VAE = [
    "callbacks.progress=null", "callbacks.analysis=null", "model.channels=[2,2]", "model.head_channels=[2]",
    "model.latent_dim=3",
]


def run_config(config_name: str, overrides: list[str]) -> Any:
    """Compose ``conf/<config_name>.yaml`` with ``overrides`` and run it as ``catalyst-dl run --hydra``
    would (its config defaults, its global seed), on one CPU thread; return the finished runner."""
    import torch
    from catalyst.dl.scripts.hydra_run import prepare_hydra_config
    from catalyst.utils.misc import set_global_seed
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = prepare_hydra_config(compose(config_name=config_name, overrides=overrides))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        set_global_seed(cfg.args.seed)
        runner = instantiate(cfg.runner, cfg=cfg)
        runner.run()
    finally:
        torch.set_num_threads(threads)
    return runner


class PauseAtBatch(Callback):
    """Sleep after training batch ``batch`` of epoch ``epoch`` of ``stage`` (once per marker)."""

    def __init__(self, stage: str, epoch: int, batch: int, marker: str, seconds: float = 600.0):
        super().__init__(order=CallbackOrder.external_extra)
        self.stage, self.epoch, self.batch = stage, int(epoch), int(batch)
        self.marker = Path(marker)
        self.seconds = float(seconds)

    def on_batch_end(self, runner: Any) -> None:
        if (runner.stage_key == self.stage and runner.stage_epoch_step == self.epoch
                and runner.is_train_loader and runner.loader_batch_step == self.batch
                and not self.marker.exists()):
            self.marker.write_text(
                f"{runner.stage_key} epoch {runner.stage_epoch_step} batch {runner.loader_batch_step}\n"
            )
            time.sleep(self.seconds)


class FailOnceAtStageEnd(Callback):
    """Raise at the end of ``stage`` (before the latent and SVM callbacks) unless ``marker`` exists;
    writes ``marker`` first, so the same config succeeds when run again."""

    def __init__(self, stage: str, marker: str):
        super().__init__(order=CallbackOrder.external + 1)
        self.stage = stage
        self.marker = Path(marker)

    def on_stage_end(self, runner: Any) -> None:
        if runner.stage_key == self.stage and not self.marker.exists():
            self.marker.write_text(f"{runner.stage_key} failed at stage end\n")
            raise RuntimeError(f"injected failure at the end of {runner.stage_key}")
