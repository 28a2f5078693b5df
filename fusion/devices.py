"""Where computation runs: the default torch device, GPU-library backends, wrapped models.

One rule for every optional GPU path (cuML SVM and t-SNE, CuPy PCA): ``"auto"`` takes the GPU
library when a CUDA device is present and the library imports, else the CPU one; asking for the
GPU library explicitly without both is a :class:`~fusion.errors.ConfigError` that says what is
missing. GPU libraries are imported only here, only when asked, and only with a CUDA device.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from fusion.errors import ConfigError

__all__ = ["cuda_available", "default_device", "resolve_backend", "unwrap_model"]

#: What each GPU backend needs to import, and how to install it.
_GPU_MODULES = {
    "cuml": ("cuml", "the RAPIDS cuML package (GPU extra: cuml-cu12, cupy-cuda12x)"),
    "cupy": ("cupy", "CuPy (GPU extra: cupy-cuda12x)"),
}


def cuda_available() -> bool:
    """True when torch sees a CUDA device."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return bool(torch.cuda.is_available())


def default_device() -> str:
    """``"cuda"`` when a CUDA device is present, else ``"cpu"``."""
    return "cuda" if cuda_available() else "cpu"


def _imports(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # a broken CUDA install raises more than ImportError
        return False
    return True


def resolve_backend(request: str, gpu: str, cpu: str, what: str = "backend",
                    choices: Sequence[str] | None = None) -> str:
    """Resolve a backend request to the one that will run.

    Args:
        request: ``"auto"``, the GPU backend's name or the CPU backend's name.
        gpu: the GPU backend (``"cuml"`` or ``"cupy"``).
        cpu: the CPU backend (``"sklearn"``, ``"numpy"``).
        what: the setting's name in error messages (``"backend"``, ``"t-SNE backend"``).
        choices: accepted names (default: auto, gpu, cpu).

    Raises:
        ConfigError: an unknown name, or the GPU backend asked for without a CUDA device or
            without its library.
    """
    choices = tuple(choices) if choices is not None else ("auto", gpu, cpu)
    if request not in choices:
        raise ConfigError(f"{what} must be one of {choices}, got {request!r}")
    if request == cpu:
        return cpu
    module, install = _GPU_MODULES[gpu]
    if not cuda_available():
        if request == gpu:
            raise ConfigError(f"{what}={gpu!r} needs a CUDA device and {install}, but "
                              f"torch.cuda.is_available() is False; use 'auto' or {cpu!r}")
        return cpu
    if not _imports(module):
        if request == gpu:
            raise ConfigError(f"{what}={gpu!r} needs {install}, which could not be imported; use 'auto' or {cpu!r}")
        return cpu
    return gpu


def unwrap_model(model: Any) -> Any:
    """The module inside a (Distributed)DataParallel wrapper, or the model itself."""
    import torch

    wrappers = (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)
    return model.module if isinstance(model, wrappers) else model
