"""Latent extraction: the posterior means of every volume of every subject, and a scikit-learn
transformer around it, so that ``make_pipeline(VAELatents(model), LinearSVM())`` works."""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any, cast

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from fusion.errors import InputError

__all__ = ["VAELatents", "embed_subjects"]

#: ``model.encode``: volumes ``(B, 1, X, Y, Z)`` -> ``(mu, logvar)``
_Encode = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def embed_subjects(
    model: torch.nn.Module,
    dataset: Dataset,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """Posterior means of every volume of every subject, in eval mode.

    Args:
        model: a VAE with ``encode(x (B, 1, X, Y, Z)) -> (mu, logvar)``.
        dataset: items ``{"volumes": (M, X, Y, Z), "index": int}`` (``index`` = row of the result).
        batch_size: subjects per forward pass.
        device: where to run the model.
        progress: show a progress bar.

    Returns:
        ``mu`` ``(len(dataset), M, latent_dim)`` float32.
    """
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    out: np.ndarray | None = None
    n_subjects = len(cast(Sized, dataset))  # a map-style dataset: torch's Dataset type declares no __len__
    seen = np.zeros(n_subjects, dtype=np.bool_)
    try:
        for batch in tqdm(loader, desc="latents", unit="batch", disable=not progress, leave=False):
            volumes = batch["volumes"].to(device=device, dtype=torch.float32)
            k, m = volumes.shape[:2]
            mu_t, _ = cast(_Encode, model.encode)(volumes.reshape(k * m, 1, *volumes.shape[2:]))
            mu = mu_t.float().reshape(k, m, -1).cpu().numpy()
            if out is None:
                out = np.zeros((n_subjects, m, mu.shape[-1]), dtype=np.float32)
            rows = np.asarray(batch["index"], dtype=np.int64)
            if rows.size and (rows.min() < 0 or rows.max() >= n_subjects):
                raise InputError(f"latent extraction: the dataset's 'index' values must lie in 0..{n_subjects - 1}, "
                                 f"got {sorted(set(rows.tolist()) - set(range(n_subjects)))}")
            out[rows] = mu
            seen[rows] = True
    finally:
        model.train(was_training)
    if out is None or not seen.all():
        raise InputError(
            f"latent extraction: the dataset's 'index' values must cover 0..{n_subjects - 1}; "
            f"{int((~seen).sum())} subject(s) were never embedded"
        )
    return out


class _Volumes(Dataset):
    """``(n, M, X, Y, Z)`` array -> items ``{"volumes", "index"}`` (what embed_subjects reads)."""

    def __init__(self, volumes: np.ndarray) -> None:
        self.volumes = volumes

    def __len__(self) -> int:
        return len(self.volumes)

    def __getitem__(self, i: int) -> dict:
        return {"volumes": torch.as_tensor(np.asarray(self.volumes[i], dtype=np.float32)), "index": i}


class VAELatents(TransformerMixin, BaseEstimator):
    """Transform-only wrapper of a trained VAE: subjects' volumes -> concatenated latent means.

    ``fit`` does nothing (the VAE is trained elsewhere); ``transform`` takes ``(n, M, X, Y, Z)``
    volumes and returns ``(n, M * latent_dim)`` posterior means, the SVM's features in the paper.

    Args:
        model: a VAE with ``encode(x (B, 1, X, Y, Z)) -> (mu, logvar)``.
        batch_size: subjects per forward pass.
        device: where to run the model.
    """

    def __init__(self, model: Any = None, batch_size: int = 4, device: str = "cpu") -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = device

    def fit(self, X: Any, y: Any = None) -> VAELatents:
        if self.model is None:
            raise InputError("VAELatents needs a trained model (VAELatents(model))")
        self.n_features_in_ = int(np.prod(np.shape(X)[1:]))
        return self

    def transform(self, X: Any) -> np.ndarray:
        if self.model is None:
            raise InputError("VAELatents needs a trained model (VAELatents(model))")
        X = np.asarray(X)
        if X.ndim != 5:
            raise InputError(f"VAELatents expects volumes (n_subjects, n_modalities, X, Y, Z), got shape {X.shape}")
        mu = embed_subjects(self.model, _Volumes(X), self.batch_size, self.device, progress=False)
        return mu.reshape(len(X), -1)
