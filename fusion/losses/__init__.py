"""Losses: the VAE's ELBO and gCAM-CCL's collaborative cross-entropy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fusion._lazy import lazy_getattr

if TYPE_CHECKING:  # the lazy exports below, for type checkers and IDEs (`X as X`: a re-export)
    from fusion.losses.collaborative import CollaborativeCrossEntropy as CollaborativeCrossEntropy
    from fusion.losses.collaborative import collaborative_cross_entropy as collaborative_cross_entropy
    from fusion.losses.vae_elbo import ELBOLoss as ELBOLoss
    from fusion.losses.vae_elbo import elbo as elbo

_EXPORTS = {
    "elbo": "fusion.losses.vae_elbo",
    "ELBOLoss": "fusion.losses.vae_elbo",
    "collaborative_cross_entropy": "fusion.losses.collaborative",
    "CollaborativeCrossEntropy": "fusion.losses.collaborative",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
