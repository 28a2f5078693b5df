"""Grad-CAM for 1D, 2D and 3D convolutional layers, with the gCAM-CCL weighting (Eq. 10).

Grad-CAM combines the K feature maps ``F^k`` of a layer with one weight per channel computed from
the gradient of a class score ``y^c`` with respect to those maps:

- ``variant="standard"`` (Selvaraju et al. 2017, Eq. 7-8 of Hu et al. 2021):
  ``w_k = mean_space(dy^c / dF^k)``, ``map = ReLU(sum_k w_k F^k)``. Equal to captum's
  ``LayerGradCam(...).attribute(..., relu_attributions=True)`` followed by
  ``LayerAttribution.interpolate`` with the same mode.
- ``variant="eq10"`` (Hu et al. 2021, Eq. 10): ``w_k = mean_space(ReLU(dy^c / dF^k))``, so that
  locations that argue against the class cannot cancel those that argue for it. The paper's map
  (Eq. 8) is ``sum_k w_k F^k`` with no final ReLU; that is the default here (``relu_map=None``).
  For a layer whose output follows a ReLU both weights and maps are non-negative, so the choice
  does not matter there.

The map is computed at the layer's resolution, optionally passed through ReLU, then upsampled to
the input's size with ``torch.nn.functional.interpolate`` (ReLU before upsampling, as captum does).

The model is run with hooks that are always removed, in eval mode unless asked otherwise (the
training flags of every module are restored afterwards), and without touching parameter
gradients (``torch.autograd.grad`` is used, not ``backward``).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fusion.errors import ConfigError, InputError

Target = int | tuple[int, ...] | Tensor | Sequence[int] | Callable[[Tensor], Tensor]
Variant = Literal["eq10", "standard"]
VARIANTS = ("eq10", "standard")
UPSAMPLE_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact")


# --------------------------------------------------------------------------------------- targets


def view_class_target(view_index: int, class_index: int) -> tuple[int, int]:
    """Target selecting ``logits[:, view_index, class_index]`` of a collaborative network.

    ``CollaborativeNet.forward`` returns ``(B, m_views, C)`` logits, each view's own class scores;
    the score ``y^c`` of Eq. 10 for view ``v`` is that view's logit for class ``c``.
    """
    if view_index < 0 or class_index < 0:
        raise ConfigError(
            f"view_class_target: view_index and class_index must be >= 0, got "
            f"({view_index}, {class_index})"
        )
    return (int(view_index), int(class_index))


def select_target(output: Tensor, target: Target | None) -> Tensor:
    """Reduce a model output ``(B, ...)`` to one score per example ``(B,)``.

    Args:
        output: model output, first dimension the batch.
        target: ``None`` (output already ``(B,)`` or ``(B, 1)``); an ``int`` (class index of a
            ``(B, C)`` output); a ``tuple`` of indices into the non-batch dimensions (e.g.
            ``(view, class)`` for ``(B, m, C)`` logits, see :func:`view_class_target`); a 1D
            integer tensor or list of length ``B`` (one class per example, ``(B, C)`` output); or
            a callable ``output -> (B,)``.
    """
    batch = output.shape[0]
    if callable(target) and not isinstance(target, Tensor):
        score = target(output)
    elif target is None:
        score = output.reshape(batch, -1)
        if score.shape[1] != 1:
            raise ConfigError(
                f"target=None needs one score per example, but the model output has shape "
                f"{tuple(output.shape)}: give a class index, a (view, class) tuple or a callable"
            )
        score = score[:, 0]
    elif isinstance(target, tuple):
        if len(target) != output.dim() - 1:
            raise ConfigError(
                f"target tuple {target} has {len(target)} indices but the model output "
                f"{tuple(output.shape)} has {output.dim() - 1} non-batch dimensions"
            )
        indices = tuple(int(i) for i in target)
        _check_indices(indices, output.shape[1:])
        key: tuple[slice | int, ...] = (slice(None), *indices)
        score = output[key]
    elif isinstance(target, numbers.Integral):
        target = int(target)
        if output.dim() != 2:
            raise ConfigError(
                f"an int target needs a (B, C) output, got {tuple(output.shape)}: use a tuple "
                f"such as view_class_target(view, class)"
            )
        _check_indices((target,), output.shape[1:])
        score = output[:, target]
    else:
        index = torch.as_tensor(target, dtype=torch.long, device=output.device).reshape(-1)
        if output.dim() != 2 or index.numel() != batch:
            raise ConfigError(
                f"a per-example target needs a (B, C) output and B={batch} indices, got output "
                f"{tuple(output.shape)} and {index.numel()} indices"
            )
        _check_indices(tuple(int(i) for i in index.unique()), output.shape[1:2])
        score = output.gather(1, index[:, None])[:, 0]
    if score.shape != (batch,):
        raise ConfigError(
            f"the target must give one score per example, shape ({batch},), got "
            f"{tuple(score.shape)}"
        )
    return score


def _check_indices(index: tuple[int, ...], shape: Sequence[int]) -> None:
    for i, n in zip(index, shape):
        if not -n <= int(i) < n:
            raise ConfigError(f"target index {index} is out of range for output dims {tuple(shape)}")


# ------------------------------------------------------------------------------- model handling


def resolve_layer(model: nn.Module, layer: nn.Module | str) -> nn.Module:
    """Return ``layer`` itself, or the submodule at a dotted path such as ``"fc_net.conv3"``."""
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ConfigError(f"target layer {type(layer).__name__} is not a submodule of the model")
        return layer
    try:
        return model.get_submodule(layer)
    except AttributeError as err:
        names = [n for n, _ in model.named_modules() if n]
        raise ConfigError(
            f"target layer {layer!r} is not a submodule of {type(model).__name__}; available: "
            f"{', '.join(names[:40])}{' ...' if len(names) > 40 else ''}"
        ) from err


@contextmanager
def model_state(model: nn.Module, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode (if asked) with in-place ReLUs made out-of-place; restore both.

    In-place activations would overwrite the feature maps captured by hooks, so every
    ``nn.ReLU(inplace=True)`` is switched to ``inplace=False`` for the duration.
    """
    training = {m: m.training for m in model.modules()}
    inplace = [m for m in model.modules() if isinstance(m, nn.ReLU) and m.inplace]
    try:
        for m in inplace:
            m.inplace = False
        if eval_mode:
            model.eval()
        yield model
    finally:
        for m in inplace:
            m.inplace = True
        for module, flag in training.items():
            module.train(flag)


def as_inputs(inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    """Validate and copy inputs into a tuple of leaf tensors that require gradients."""
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    if not inputs or not all(isinstance(x, Tensor) for x in inputs):
        raise InputError("inputs must be a tensor or a non-empty tuple of tensors (one per view)")
    batch = inputs[0].shape[0]
    out = []
    for i, x in enumerate(inputs):
        if x.dim() < 2 or x.shape[0] != batch:
            raise InputError(
                f"input {i} has shape {tuple(x.shape)}: expected (B, channels, *spatial) with "
                f"B={batch} like input 0"
            )
        if not torch.is_floating_point(x):
            raise InputError(f"input {i} has dtype {x.dtype}: expected a floating-point tensor")
        if not torch.isfinite(x).all():
            raise InputError(f"input {i} contains NaN or infinite values")
        out.append(x.detach().clone().requires_grad_(True))
    return tuple(out)


def upsample(maps: Tensor, size: Sequence[int], mode: str = "nearest") -> Tensor:
    """Upsample ``(B, C, *spatial)`` maps to ``size`` exactly as captum's ``interpolate`` does.

    ``F.interpolate(maps, size, mode=mode)`` with ``align_corners`` left at its default
    (``False`` for the linear modes), which is captum's ``LayerAttribution.interpolate`` call.
    """
    if mode not in UPSAMPLE_MODES:
        raise ConfigError(f"upsample mode {mode!r} is not one of {UPSAMPLE_MODES}")
    size = tuple(int(s) for s in size)
    if len(size) != maps.dim() - 2:
        raise ConfigError(
            f"upsample size {size} must have {maps.dim() - 2} entries for maps of shape "
            f"{tuple(maps.shape)}"
        )
    if tuple(maps.shape[2:]) == size:
        return maps
    return F.interpolate(maps, size=size, mode=mode)


# -------------------------------------------------------------------------------------- Grad-CAM


def layer_activations_and_gradients(
    model: nn.Module,
    inputs: tuple[Tensor, ...],
    target_layer: nn.Module,
    target: Target | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Forward ``model(*inputs)``, return the layer's output, d(score)/d(output) and the output.

    A forward hook (removed before returning) captures the layer's output tensor; the gradient of
    the summed per-example scores with respect to it is taken with ``torch.autograd.grad``.
    Examples do not interact in eval mode, so each example's gradient is its own.
    """
    captured: list[Tensor] = []

    def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
        if not isinstance(output, Tensor):
            raise ConfigError(
                f"target layer {type(module).__name__} returns {type(output).__name__}; Grad-CAM "
                f"needs a layer whose output is one tensor (B, K, *spatial)"
            )
        captured.append(output)

    handle = target_layer.register_forward_hook(hook)
    try:
        output = model(*inputs)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise ConfigError(
            f"target layer {type(target_layer).__name__} ran {len(captured)} times in one forward "
            f"pass; choose a layer that is called exactly once"
        )
    activation = captured[0]
    if activation.dim() < 3:
        raise ConfigError(
            f"target layer output has shape {tuple(activation.shape)}: Grad-CAM needs a "
            f"convolutional feature map (B, K, *spatial)"
        )
    score = select_target(output, target)
    if not activation.requires_grad:
        raise ConfigError("the target layer's output does not depend on the inputs' gradients")
    gradient = None
    if score.requires_grad:
        (gradient,) = torch.autograd.grad(score.sum(), activation, allow_unused=True)
    if gradient is None:
        raise ConfigError(
            f"the selected score does not depend on target layer {type(target_layer).__name__}: "
            f"for a collaborative network, explain a view with a layer of that view's branch"
        )
    if not gradient.any():
        warnings.warn(
            f"the gradient of the selected score with respect to target layer "
            f"{type(target_layer).__name__} is zero for every example: the maps will be empty "
            f"(is the layer in the branch of the explained view?)",
            RuntimeWarning,
            stacklevel=3,
        )
    return activation.detach(), gradient.detach(), output.detach()


def grad_cam(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    target_layer: nn.Module | str,
    target: Target | None,
    variant: Variant = "eq10",
    upsample_to: Sequence[int] | None = None,
    upsample_mode: str = "nearest",
    relu_map: bool | None = None,
    eval_mode: bool = True,
) -> Tensor:
    """Class activation map of ``target_layer`` for the score selected by ``target``.

    Args:
        model: network called as ``model(*inputs)``.
        inputs: one tensor or a tuple of tensors, each ``(B, channels, *spatial)``; for a
            collaborative network ``(fc (B, 1, 264, 264), snp (B, 1, 750))``.
        target_layer: a submodule or its dotted path; its output ``(B, K, *spatial)`` (1, 2 or 3
            spatial dims) gives the feature maps ``F^k``.
        target: which score ``y^c`` to explain; see :func:`select_target`. For a collaborative
            network, ``view_class_target(v, c)``.
        variant: ``"eq10"`` (ReLU on the gradients before pooling, Hu et al. Eq. 10) or
            ``"standard"`` (mean of raw gradients, Selvaraju et al.).
        upsample_to: spatial size of the returned maps (e.g. ``(264, 264)`` or ``(750,)``);
            ``None`` returns the layer's resolution.
        upsample_mode: ``F.interpolate`` mode (captum's default is ``"nearest"``).
        relu_map: apply ReLU to the combined map before upsampling; ``None`` uses the variant's
            definition (``True`` for ``"standard"``, ``False`` for ``"eq10"``, as Eq. 8 is written).
        eval_mode: run the model in eval mode (BatchNorm running stats, no dropout); the
            modules' training flags are restored afterwards.

    Returns:
        Maps of shape ``(B, *spatial)``: the layer's spatial shape, or ``upsample_to``.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"Grad-CAM variant {variant!r} is not one of {VARIANTS}")
    if relu_map is None:
        relu_map = variant == "standard"
    layer = resolve_layer(model, target_layer)
    tensors = as_inputs(inputs)
    with model_state(model, eval_mode), torch.enable_grad():
        activation, gradient, _ = layer_activations_and_gradients(model, tensors, layer, target)
    spatial_dims = tuple(range(2, gradient.dim()))
    if variant == "eq10":
        gradient = F.relu(gradient)
    weights = gradient.mean(dim=spatial_dims, keepdim=True)
    cam = (weights * activation).sum(dim=1, keepdim=True)
    if relu_map:
        cam = F.relu(cam)
    if upsample_to is not None:
        cam = upsample(cam, upsample_to, upsample_mode)
    return cam[:, 0]


def class_maps(
    model: nn.Module,
    inputs: Tensor | Sequence[Tensor],
    target_layer: nn.Module | str,
    view_index: int,
    n_classes: int,
    **kwargs,
) -> Tensor:
    """Grad-CAM maps of one view of a collaborative network for every class.

    Args:
        view_index: which view's logits give the score (the view the layer belongs to).
        n_classes: number of classes C.
        **kwargs: passed to :func:`grad_cam` (variant, upsample_to, ...).

    Returns:
        ``(C, B, *spatial)``: ``out[c]`` explains ``logits[:, view_index, c]``.
    """
    return torch.stack(
        [
            grad_cam(model, inputs, target_layer, view_class_target(view_index, c), **kwargs)
            for c in range(n_classes)
        ]
    )
