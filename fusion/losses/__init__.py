"""Losses: the VAE's ELBO and gCAM-CCL's collaborative cross-entropy."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "elbo": "fusion.losses.vae_elbo",
    "ELBOLoss": "fusion.losses.vae_elbo",
    "collaborative_cross_entropy": "fusion.losses.collaborative",
    "CollaborativeCrossEntropy": "fusion.losses.collaborative",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fusion.losses' has no attribute {name!r}")
