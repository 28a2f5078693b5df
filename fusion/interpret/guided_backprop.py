"""Guided backpropagation and guided Grad-CAM.

Guided backprop (Springenberg et al. 2014) changes the backward pass of every ``nn.ReLU``: a
gradient passes only where the ReLU's input was positive (the ordinary ReLU rule) *and* the
gradient arriving from above is positive. The result is a fine-grained, input-resolution map that
is not class-discriminative on its own; guided Grad-CAM (Eq. 9 of Hu et al. 2021) multiplies it
element-wise with the upsampled Grad-CAM map to make it so.

Implementation: a forward hook on each ``nn.ReLU`` replaces the module's output by the output of
an autograd function with the guided backward rule. Hooks are removed when the call returns.
Functional ReLUs (``F.relu`` inside ``forward``) are not modified, as in captum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import torch
from torch import Tensor, nn

from fusion.errors import ConfigError
from fusion.interpret.gradcam import (
    Target,
    Variant,
    as_inputs,
    grad_cam,
    model_state,
    select_target,
)


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients where the input was positive."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad_output.clamp(min=0) * (x > 0).to(grad_output.dtype)


def _guided_hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
    return _GuidedReLU.apply(args[0])


@overload
def input_gradient(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    target: Target | None,
    input_index: int = ...,
    eval_mode: bool = ...,
) -> Tensor: ...


@overload
def input_gradient(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    target: Target | None,
    input_index: None,
    eval_mode: bool = ...,
) -> tuple[Tensor, ...]: ...


def input_gradient(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    target: Target | None,
    input_index: int | None = 0,
    eval_mode: bool = True,
) -> Tensor | tuple[Tensor, ...]:
    """Plain gradient of the selected score with respect to an input (vanilla saliency).

    Not part of gCAM-CCL: the un-guided baseline of :func:`guided_backprop`, equal to captum's
    ``Saliency(model).attribute(inputs, target, abs=False)``. Arguments and shapes as in
    :func:`guided_backprop`.
    """
    return _input_grads(model, inputs, target, input_index, eval_mode, guided=False)


@overload
def guided_backprop(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    target: Target | None,
    input_index: int = ...,
    eval_mode: bool = ...,
) -> Tensor: ...


@overload
def guided_backprop(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    target: Target | None,
    input_index: None,
    eval_mode: bool = ...,
) -> tuple[Tensor, ...]: ...


def guided_backprop(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    target: Target | None,
    input_index: int | None = 0,
    eval_mode: bool = True,
) -> Tensor | tuple[Tensor, ...]:
    """Guided-backprop map of the score selected by ``target`` with respect to one input view.

    Args:
        model: network called as ``model(*inputs)``; its ``nn.ReLU`` modules are guided.
        inputs: one tensor or a tuple, each ``(B, channels, *spatial)``.
        target: the score to explain (see :func:`fusion.interpret.gradcam.select_target`).
        input_index: which input to return the map for; ``None`` returns a tuple for all inputs.
        eval_mode: run in eval mode; training flags are restored afterwards.

    Returns:
        A tensor shaped like ``inputs[input_index]`` (or a tuple of them).
    """
    return _input_grads(model, inputs, target, input_index, eval_mode, guided=True)


def _input_grads(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    target: Target | None,
    input_index: int | None,
    eval_mode: bool,
    guided: bool,
) -> Tensor | tuple[Tensor, ...]:
    tensors = as_inputs(inputs)
    if input_index is not None and not -len(tensors) <= input_index < len(tensors):
        raise ConfigError(f"input_index {input_index} is out of range for {len(tensors)} inputs")
    with model_state(model, eval_mode), torch.enable_grad():
        relus = [m for m in model.modules() if isinstance(m, nn.ReLU)] if guided else []
        handles = [m.register_forward_hook(_guided_hook) for m in relus]
        try:
            output = model(*tensors)
        finally:
            for handle in handles:
                handle.remove()
        score = select_target(output, target)
        if not score.requires_grad:
            raise ConfigError("the selected score does not depend on the inputs")
        grads = torch.autograd.grad(score.sum(), tensors, allow_unused=True)
    grads = tuple(
        torch.zeros_like(x) if g is None else g.detach() for g, x in zip(grads, tensors)
    )
    return grads if input_index is None else grads[input_index]


def guided_grad_cam(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    target_layer: nn.Module | str,
    target: Target | None,
    input_index: int = 0,
    variant: Variant = "eq10",
    upsample_mode: str = "nearest",
    relu_map: bool | None = None,
    eval_mode: bool = True,
) -> Tensor:
    """Guided Grad-CAM: guided backprop times the Grad-CAM map upsampled to the input (Eq. 9).

    With ``variant="standard"`` this is captum's ``GuidedGradCam(model, layer).attribute(inputs,
    target, interpolate_mode=upsample_mode)`` for the chosen input. With ``variant="eq10"`` the
    Grad-CAM factor uses Eq. 10 weights (and, by default, no ReLU on the map: where the map is
    negative the product flips the guided-backprop sign; pass ``relu_map=True`` to drop those).

    Args:
        target_layer: convolutional layer of the branch that processes ``inputs[input_index]``.
        input_index: the input (view) to explain.
        Others: as in :func:`fusion.interpret.gradcam.grad_cam` and :func:`guided_backprop`.

    Returns:
        A tensor shaped like ``inputs[input_index]`` ``(B, channels, *spatial)``.
    """
    tensors = as_inputs(inputs)
    if not -len(tensors) <= input_index < len(tensors):
        raise ConfigError(f"input_index {input_index} is out of range for {len(tensors)} inputs")
    spatial = tuple(tensors[input_index].shape[2:])
    cam = grad_cam(
        model,
        tensors,
        target_layer,
        target,
        variant=variant,
        upsample_to=spatial,
        upsample_mode=upsample_mode,
        relu_map=relu_map,
        eval_mode=eval_mode,
    )
    guided = guided_backprop(model, tensors, target, input_index=input_index, eval_mode=eval_mode)
    return guided * cam[:, None]
