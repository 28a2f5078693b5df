"""Integrated gradients (Sundararajan et al. 2017) for one input of a multi-input network.

Not part of gCAM-CCL. On genotype vectors the plain gradient says how sensitive the network is
to each SNP, whatever the subject carries there; its per-subject values swing with the ReLU and
max-pool routing, and the 31-wide SNP kernels spread sensitivity well beyond the SNPs that carry
the signal. Integrated gradients credit a SNP with what moving it from a reference genotype to
the subject's own genotype does to the score, which is what a class contrast of maps needs
(:func:`fusion.interpret.significance.class_contrast`).

Attribution of input ``x`` against the reference ``x'``, with the other inputs held fixed::

    IG(x) = (x - x') * (1 / S) * sum_{k=1..S} d score / d x  at  x' + (k - 1/2) / S * (x - x')

(the midpoint Riemann sum; captum's ``IntegratedGradients`` with ``method="riemann_middle"``).
The attributions of an example add up to ``score(x) - score(x')`` up to the quadrature error.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from fusion.errors import ConfigError, InputError
from fusion.interpret.gradcam import Target, as_inputs, model_state, select_target


def integrated_gradients(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    target: Target | None,
    input_index: int = 0,
    baseline: Tensor | float | None = None,
    steps: int = 32,
    eval_mode: bool = True,
) -> Tensor:
    """Integrated gradients of the score selected by ``target`` with respect to one input.

    Args:
        model: network called as ``model(*inputs)``.
        inputs: one tensor or a tuple, each ``(B, channels, *spatial)``.
        target: the score to explain (see :func:`fusion.interpret.gradcam.select_target`).
        input_index: which input to attribute; the others stay at their values.
        baseline: the reference input, broadcastable to ``inputs[input_index]`` (e.g. the
            training subjects' mean, shape ``(1, channels, *spatial)``); ``None`` or a number
            for a constant reference (``None`` = 0).
        steps: points of the midpoint Riemann sum along the straight path.
        eval_mode: run in eval mode; training flags are restored afterwards.

    Returns:
        A tensor shaped like ``inputs[input_index]``.
    """
    tensors = as_inputs(inputs)
    if not -len(tensors) <= input_index < len(tensors):
        raise ConfigError(f"input_index {input_index} is out of range for {len(tensors)} inputs")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    x = tensors[input_index].detach()
    if baseline is None or isinstance(baseline, (int, float)):
        ref = torch.full_like(x, float(baseline or 0.0))
    else:
        ref = torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
        try:
            ref = ref.expand_as(x)
        except RuntimeError as err:
            raise InputError(
                f"baseline of shape {tuple(ref.shape)} does not broadcast to the input {tuple(x.shape)}"
            ) from err
    delta = x - ref
    total = torch.zeros_like(x)
    with model_state(model, eval_mode), torch.enable_grad():
        for k in range(steps):
            point = (ref + (k + 0.5) / steps * delta).requires_grad_(True)
            args = list(tensors)
            args[input_index] = point
            score = select_target(model(*args), target)
            grad = None
            if score.requires_grad:
                (grad,) = torch.autograd.grad(score.sum(), point, allow_unused=True)
            if grad is None:
                raise ConfigError(f"the selected score does not depend on input {input_index}")
            total += grad
    return (delta * total / steps).detach()


__all__ = ["integrated_gradients"]
