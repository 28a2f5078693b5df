"""Networks: the multimodal 3D VAE and the gCAM-CCL ConvNets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fusion._lazy import lazy_getattr

if TYPE_CHECKING:  # the lazy exports below, for type checkers and IDEs (`X as X`: a re-export)
    from fusion.models.ccl import CollaborativeNet as CollaborativeNet
    from fusion.models.ccl import FCNet as FCNet
    from fusion.models.ccl import SNPNet as SNPNet
    from fusion.models.vae import MultimodalVAE as MultimodalVAE

# Imported lazily so that `import fusion.models` stays cheap and each network lives in one module.
_EXPORTS = {
    "MultimodalVAE": "fusion.models.vae",
    "FCNet": "fusion.models.ccl",
    "SNPNet": "fusion.models.ccl",
    "CollaborativeNet": "fusion.models.ccl",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
