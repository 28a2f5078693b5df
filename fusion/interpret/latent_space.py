"""2D t-SNE embedding of the VAE's latent space: one point per subject and modality (paper Fig. 1).

All modalities share one encoder, so every subject contributes ``n_modalities`` points to one latent
space; the embedding shows whether modalities (and NeuroMark domains) form clusters. cuML's t-SNE
runs on a CUDA device when present, scikit-learn's otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fusion.errors import ConfigError, InputError

__all__ = ["LatentEmbedding", "flatten_latents", "tsne", "embed_latents", "resolve_tsne_backend"]

log = logging.getLogger(__name__)


@dataclass
class LatentEmbedding:
    """A 2D embedding of subject x modality latents.

    Attributes:
        coords: ``(n_points, 2)`` embedded coordinates.
        subject: ``(n_points,)`` subject index (row of the latents array) of each point.
        modality: ``(n_points,)`` modality index of each point.
        backend: ``"cuml"`` or ``"sklearn"``, the implementation that ran.
    """

    coords: np.ndarray
    subject: np.ndarray
    modality: np.ndarray
    backend: str


def flatten_latents(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack ``(n_subjects, n_modalities, l)`` latents into points.

    Returns:
        ``(points (n_subjects * n_modalities, l), subject (n,), modality (n,))``, subject-major.
    """
    mu = np.asarray(mu)
    if mu.ndim != 3 or 0 in mu.shape:
        raise InputError(f"mu must be a non-empty (n_subjects, n_modalities, latent_dim) array, got {mu.shape}")
    n_subj, n_mod, dim = mu.shape
    subject = np.repeat(np.arange(n_subj), n_mod)
    modality = np.tile(np.arange(n_mod), n_subj)
    return mu.reshape(n_subj * n_mod, dim), subject, modality


def resolve_tsne_backend(backend: str = "auto") -> str:
    """``"auto"`` -> ``"cuml"`` when cuML imports and a CUDA device is present, else ``"sklearn"``
    (:func:`fusion.devices.resolve_backend`)."""
    from fusion import devices

    return devices.resolve_backend(backend, gpu="cuml", cpu="sklearn", what="t-SNE backend")


def tsne(
    points: np.ndarray,
    perplexity: float = 30.0,
    max_iter: int = 1000,
    learning_rate: float | str = "auto",
    init: str = "pca",
    seed: int = 0,
    backend: str = "auto",
) -> tuple[np.ndarray, str]:
    """2D t-SNE of a point cloud.

    Args:
        points: ``(n, d)`` features.
        perplexity: effective number of neighbours; capped below ``n`` for tiny inputs.
        max_iter: optimisation iterations.
        learning_rate: step size, or ``"auto"`` (``max(n / 12 / 4, 50)``, scikit-learn's rule; the
            same number is passed to cuML).
        init: ``"pca"`` or ``"random"``.
        seed: random seed.
        backend: ``"auto"``, ``"cuml"`` or ``"sklearn"`` (see :func:`resolve_tsne_backend`).

    Returns:
        ``(coords (n, 2) float64, backend used)``.
    """
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[0] < 3:
        raise InputError(f"t-SNE needs (n >= 3, d) points, got shape {points.shape}")
    if not np.all(np.isfinite(points)):
        raise InputError("t-SNE input holds NaN or inf values")
    if perplexity <= 0 or max_iter < 250:
        raise ConfigError(f"t-SNE needs perplexity > 0 and max_iter >= 250, got {perplexity} and {max_iter}")
    if init not in ("pca", "random"):
        raise ConfigError(f"t-SNE init must be 'pca' or 'random', got {init!r}")
    n = points.shape[0]
    perp = float(min(perplexity, (n - 1) / 3.0))
    if perp != perplexity:
        log.info("t-SNE: perplexity %.1f capped to %.1f for %d points", perplexity, perp, n)
    lr = max(n / 12.0 / 4.0, 50.0) if learning_rate == "auto" else float(learning_rate)
    resolved = resolve_tsne_backend(backend)
    if resolved == "cuml":
        import inspect

        from cuml.manifold import TSNE as CuTSNE

        # cuML names the iteration count n_iter in older releases and max_iter in newer ones.
        iter_key = "max_iter" if "max_iter" in inspect.signature(CuTSNE).parameters else "n_iter"
        model = CuTSNE(
            n_components=2, perplexity=perp, learning_rate=lr, init=init, random_state=seed, **{iter_key: max_iter}
        )
        coords = model.fit_transform(points)
        coords = coords.get() if hasattr(coords, "get") else np.asarray(coords)
    else:
        from sklearn.manifold import TSNE

        model = TSNE(
            n_components=2, perplexity=perp, max_iter=max_iter, learning_rate=lr, init=init, random_state=seed
        )
        coords = model.fit_transform(points)
    return np.asarray(coords, dtype=np.float64), resolved


def embed_latents(
    mu: np.ndarray,
    perplexity: float = 30.0,
    max_iter: int = 1000,
    learning_rate: float | str = "auto",
    init: str = "pca",
    max_subjects: int | None = None,
    seed: int = 0,
    backend: str = "auto",
) -> LatentEmbedding:
    """t-SNE of every subject x modality latent.

    Args:
        mu: posterior means ``(n_subjects, n_modalities, latent_dim)``.
        perplexity, max_iter, learning_rate, init, seed, backend: see :func:`tsne`.
        max_subjects: embed a random subset of this many subjects (all their modalities), drawn
            with ``seed``, to bound the cost at full size; None embeds everyone.

    Returns:
        A :class:`LatentEmbedding` whose ``subject`` indexes rows of ``mu``.
    """
    mu = np.asarray(mu)
    points, subject, modality = flatten_latents(mu)
    if max_subjects is not None:
        if max_subjects < 1:
            raise ConfigError(f"max_subjects must be >= 1 or None, got {max_subjects}")
        if max_subjects < mu.shape[0]:
            rng = np.random.default_rng(seed)
            chosen = np.sort(rng.choice(mu.shape[0], size=max_subjects, replace=False))
            keep = np.isin(subject, chosen)
            points, subject, modality = points[keep], subject[keep], modality[keep]
    log.info("t-SNE of %d latents (%d subjects x %d modalities, dim %d)", points.shape[0],
             len(np.unique(subject)), mu.shape[1], mu.shape[2])
    coords, used = tsne(points, perplexity, max_iter, learning_rate, init, seed, backend)
    return LatentEmbedding(coords=coords, subject=subject, modality=modality, backend=used)
