"""gCAM-CCL predictions of chosen subjects: per-view softmax and their mean (the prediction)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["predict"]


def predict(model: torch.nn.Module, dataset: Any, indices: np.ndarray, view_names: list[str],
            batch_size: int = 16, device: Any = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Mean-of-views probabilities ``(k, C)`` and per-view probabilities ``(k, m, C)`` of subjects."""
    from torch.utils.data import DataLoader, Subset

    loader = DataLoader(Subset(dataset, [int(i) for i in indices]), batch_size=batch_size, shuffle=False)
    model.eval()
    per_view = []
    with torch.no_grad():
        for batch in loader:
            logits = model(*[batch[name].to(device) for name in view_names])
            per_view.append(torch.softmax(logits, dim=-1).cpu())  # mean over views = mean_of_views
    pv = torch.cat(per_view).numpy() if per_view else np.zeros((0, 1, 2), np.float32)
    return pv.mean(axis=1), pv
