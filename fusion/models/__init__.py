"""Networks: the multimodal 3D VAE and the gCAM-CCL ConvNets."""

from __future__ import annotations

import importlib
from typing import Any

# Imported lazily so that `import fusion.models` stays cheap and each network lives in one module.
_EXPORTS = {
    "MultimodalVAE": "fusion.models.vae",
    "FCNet": "fusion.models.ccl",
    "SNPNet": "fusion.models.ccl",
    "CollaborativeNet": "fusion.models.ccl",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fusion.models' has no attribute {name!r}")
