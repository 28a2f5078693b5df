"""Losses: the VAE's ELBO and gCAM-CCL's collaborative cross-entropy."""

from __future__ import annotations

from fusion._lazy import lazy_getattr

_EXPORTS = {
    "elbo": "fusion.losses.vae_elbo",
    "ELBOLoss": "fusion.losses.vae_elbo",
    "collaborative_cross_entropy": "fusion.losses.collaborative",
    "CollaborativeCrossEntropy": "fusion.losses.collaborative",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
