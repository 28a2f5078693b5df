"""Mixed precision in plain PyTorch: autocast dtypes by name, and when a gradient scaler is needed.

``torch.autocast`` runs matrix products and convolutions in a 16-bit dtype and keeps reductions
(the ELBO's sums) in float32. bfloat16 has float32's exponent range, so its gradients need no
scaling; float16 overflows above 65504 and underflows small gradients to zero, so its loss is
multiplied by a dynamic factor before the backward pass (``torch.amp.GradScaler``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import torch

from fusion.errors import ConfigError

__all__ = ["AUTOCAST_DTYPES", "autocast", "autocast_dtype", "device_type", "needs_grad_scaler"]

#: Accepted names of the autocast dtypes.
AUTOCAST_DTYPES: dict[str, torch.dtype] = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def autocast_dtype(dtype: str | torch.dtype, field: str = "dtype") -> torch.dtype:
    """The autocast dtype named by ``dtype``.

    Args:
        dtype: ``"bfloat16"`` / ``"bf16"``, ``"float16"`` / ``"fp16"`` / ``"half"``, or the
            ``torch.dtype`` itself.
        field: config field named in the error message.

    Raises:
        ConfigError: for any other value (float32 is no autocast dtype: use a plain engine).
    """
    if isinstance(dtype, torch.dtype) and dtype in AUTOCAST_DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.lower() in AUTOCAST_DTYPES:
        return AUTOCAST_DTYPES[dtype.lower()]
    raise ConfigError(
        f"{field} must be one of {sorted(AUTOCAST_DTYPES)} (mixed precision), got {dtype!r}; "
        "for full float32 use engine=cpu or engine=gpu"
    )


def needs_grad_scaler(dtype: str | torch.dtype) -> bool:
    """Whether training in ``dtype`` needs loss scaling (float16 yes, bfloat16 no)."""
    return autocast_dtype(dtype) == torch.float16


def device_type(device: str | torch.device | None) -> str:
    """``"cuda"`` / ``"cpu"`` / ... of a device string such as ``"cuda:1"`` (None: ``"cpu"``)."""
    return "cpu" if device is None else torch.device(device).type


def autocast(device: str | torch.device | None, dtype: str | torch.dtype) -> AbstractContextManager:
    """``torch.autocast`` on the device type of ``device`` in ``dtype``.

    Args:
        device: where the model runs, e.g. ``"cuda:0"`` or ``"cpu"``.
        dtype: autocast dtype (see :func:`autocast_dtype`).
    """
    return torch.autocast(device_type=device_type(device), dtype=autocast_dtype(dtype))
