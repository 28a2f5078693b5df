"""Networks: the multimodal 3D VAE and the gCAM-CCL ConvNets."""

from __future__ import annotations

from fusion._lazy import lazy_getattr

# Imported lazily so that `import fusion.models` stays cheap and each network lives in one module.
_EXPORTS = {
    "MultimodalVAE": "fusion.models.vae",
    "FCNet": "fusion.models.ccl",
    "SNPNet": "fusion.models.ccl",
    "CollaborativeNet": "fusion.models.ccl",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
