"""A progress bar per loader and epoch that reads the batch metrics without touching autograd."""

from __future__ import annotations

from typing import Any

import torch
from catalyst.callbacks import TqdmCallback


class ProgressBarCallback(TqdmCallback):
    """Catalyst's ``TqdmCallback`` (one bar per loader: ``epoch/epochs * Epoch (loader)``, the
    batch metrics as its postfix), with the metrics read through ``detach()``.

    Catalyst's version calls ``float()`` on the training loss, which still requires grad (the
    optimizer callback steps on it after the bar is updated); PyTorch warns about that on every
    batch. Metrics that are not single numbers are left out of the postfix.
    """

    def on_batch_end(self, runner: Any) -> None:
        """Show the batch's metrics and advance the bar."""
        shown = {}
        for key, value in sorted(runner.batch_metrics.items()):
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    continue
                value = value.detach().item()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                shown[key] = f"{value:3.3f}" if abs(value) > 1e-3 else f"{value:1.3e}"
        self.tqdm.set_postfix(**shown)
        self.tqdm.update()


__all__ = ["ProgressBarCallback"]
