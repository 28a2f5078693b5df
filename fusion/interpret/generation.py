"""Generation with the trained VAE: decode draws from the prior and paths between two latents.

The decoder is shared by all modalities, so a path may join two subjects in one modality or two
modalities of one subject (the paper's interpolation "between modalities").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusion.errors import ConfigError, InputError
from fusion.interpret.group_maps import decode_latents

__all__ = ["sample_prior", "interpolate_latents", "decode_interpolation"]


def sample_prior(
    model: Any, n: int, seed: int = 0, batch_size: int = 8, device: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``z ~ N(0, I)`` and decode.

    Args:
        model: the trained VAE (``latent_dim`` attribute and ``decode``).
        n: number of volumes.
        seed: NumPy seed of the draws (reproducible whatever the device).
        batch_size: latents decoded at once.
        device: torch device (default: the model's).

    Returns:
        ``(volumes (n, X, Y, Z) float32, z (n, latent_dim) float32)``.
    """
    if int(n) < 1:
        raise InputError(f"n must be >= 1, got {n}")
    z = np.random.default_rng(seed).standard_normal((int(n), int(model.latent_dim))).astype(np.float32)
    return decode_latents(model, z, batch_size=batch_size, device=device), z


def interpolate_latents(
    z0: np.ndarray, z1: np.ndarray, steps: int = 8, method: str = "linear"
) -> np.ndarray:
    """Points from ``z0`` to ``z1``, both endpoints included.

    Args:
        z0, z1: latents ``(latent_dim,)``.
        steps: number of points (>= 2).
        method: ``"linear"`` (``(1 - t) z0 + t z1``) or ``"slerp"`` (spherical: along the great circle
            between the directions, with the norm interpolated linearly, which keeps points at the
            typical radius of a Gaussian prior instead of cutting through its low-density centre).

    Returns:
        ``(steps, latent_dim)`` float64, row 0 equal to ``z0`` and the last row equal to ``z1``.
    """
    z0 = np.asarray(z0, dtype=np.float64).reshape(-1)
    z1 = np.asarray(z1, dtype=np.float64).reshape(-1)
    if z0.shape != z1.shape or z0.size == 0:
        raise InputError(f"z0 and z1 must be latents of the same size, got {z0.shape} and {z1.shape}")
    if int(steps) < 2:
        raise ConfigError(f"steps must be >= 2 (the two endpoints at least), got {steps}")
    t = np.linspace(0.0, 1.0, int(steps))[:, None]
    if method == "linear":
        out = (1.0 - t) * z0 + t * z1
    elif method == "slerp":
        n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
        if n0 == 0 or n1 == 0:
            raise InputError("slerp needs two non-zero latents; use method='linear'")
        u0, u1 = z0 / n0, z1 / n1
        omega = np.arccos(np.clip(u0 @ u1, -1.0, 1.0))
        if omega < 1e-6:  # parallel: the great circle degenerates to the line
            direction = (1.0 - t) * u0 + t * u1
        else:
            direction = (np.sin((1.0 - t) * omega) * u0 + np.sin(t * omega) * u1) / np.sin(omega)
        out = direction * ((1.0 - t) * n0 + t * n1)
    else:
        raise ConfigError(f"method must be 'linear' or 'slerp', got {method!r}")
    out[0], out[-1] = z0, z1  # exact endpoints, free of rounding
    return out


def decode_interpolation(
    model: Any,
    z0: np.ndarray,
    z1: np.ndarray,
    steps: int = 8,
    method: str = "linear",
    batch_size: int = 8,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the path of :func:`interpolate_latents`.

    Returns:
        ``(volumes (steps, X, Y, Z) float32, path (steps, latent_dim))``.
    """
    path = interpolate_latents(z0, z1, steps, method)
    return decode_latents(model, path, batch_size=batch_size, device=device), path
