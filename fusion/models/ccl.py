"""gCAM-CCL networks (Hu et al. 2021, Table IV): an FC ConvNet, a SNP ConvNet and the
collaborative layer that turns each view's representation into that view's class scores.

Shapes (B = batch):

- ``FCNet``:  (B, 1, 264, 264) -> conv1 (B, 16, 132, 132) -> conv2 (B, 32, 33, 33)
  -> conv3 (B, 32, 11, 11) -> conv4 (B, 64, 1, 1) -> (B, 64)
- ``SNPNet``: (B, 1, 750) -> conv1 (B, 16, 120) -> conv2 (B, 32, 15) -> conv3 (B, 64, 1) -> (B, 64)
- ``CollaborativeNet``: one linear head per view, (B, 64) -> (B, C); stacked to (B, m, C), i.e. the
  paper's ``collab_layer`` output (B, 4) for two views and two classes, reshaped.

Every ReLU is its own non-inplace ``nn.ReLU`` module so that guided backprop can hook it, and each
stage is a named ``nn.Sequential`` (``features.conv1`` ...) so that a Grad-CAM target layer can be
named by a dotted path such as ``views.fc.features.conv3``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import cast

import torch
from torch import nn

from fusion.errors import ConfigError, InputError


def _stage(
    dims: int,
    in_channels: int,
    out_channels: int,
    kernel: int,
    padding: int,
    pool: int | None,
    dropout: float,
) -> nn.Sequential:
    """Conv -> BatchNorm -> ReLU [-> MaxPool] [-> Dropout] for 1D or 2D inputs."""
    conv = nn.Conv2d if dims == 2 else nn.Conv1d
    norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
    layers: dict[str, nn.Module] = {
        "conv": conv(in_channels, out_channels, kernel_size=kernel, padding=padding),
        "bn": norm(out_channels),
        "relu": nn.ReLU(inplace=False),
    }
    if pool:
        layers["pool"] = (nn.MaxPool2d if dims == 2 else nn.MaxPool1d)(pool)
    if dropout > 0:
        layers["drop"] = nn.Dropout(dropout)
    return nn.Sequential(_ordered(layers))


def _ordered(layers: dict[str, nn.Module]) -> OrderedDict[str, nn.Module]:
    return OrderedDict(layers)


def _stage_output(size: int, kernel: int, padding: int, pool: int | None) -> int:
    """Length along one axis after conv (stride 1) and max-pool (floor); < 1 means nothing is left."""
    out = size + 2 * padding - kernel + 1
    return out // pool if (pool and out >= 1) else out


def _fit_spec(spec: Sequence[tuple[int, int | None, int, int | None]], size: int, net: str,
              size_name: str) -> list[tuple[int, int, int, int | None]]:
    """Check that ``spec`` collapses an input of ``size`` to one position, resolving a ``None``
    kernel of the last stage to what the earlier stages leave (so any input size works).

    Raises:
        ConfigError: naming the input size the kernels and pools take, and the last kernel that
            would fit ``size``.
    """
    fitted: list[tuple[int, int, int, int | None]] = []
    n = int(size)
    for k, (channels, kernel, padding, pool) in enumerate(spec, start=1):
        if kernel is None:
            if k != len(spec):
                raise ConfigError(f"{net}: only the last kernel may be null (collapse what is left); conv{k} has none")
            kernel = n + 2 * padding
        fitted.append((channels, int(kernel), padding, pool))
        out = _stage_output(n, int(kernel), padding, pool)
        if out < 1 or (k == len(spec) and out != 1):
            explicit = [kern for _, kern, _, _ in spec]
            fits = [m for m in range(1, 20001) if _collapses(spec, m)]
            takes = f"{size_name} {fits[0]}-{fits[-1]}" if fits else f"no {size_name}"
            if k == len(spec):
                last = (f"; for {size_name}={size} set the last kernel to null (collapse what the pools leave) "
                        f"or to {n + 2 * padding}")
            else:
                last = f"; for {size_name}={size} use smaller kernels or pools in the first {k} stage(s)"
            raise ConfigError(
                f"{net} with kernels {explicit}, paddings {[s[2] for s in spec]} and pools {[s[3] for s in spec]} "
                f"takes {takes}; an input of {size_name}={size} leaves {max(out, 0)} position(s) after conv{k} "
                f"(expected 1 after the last){last}")
        n = out
    return fitted


def _collapses(spec: Sequence[tuple[int, int | None, int, int | None]], size: int) -> bool:
    n = size
    for _, kernel, padding, pool in spec:
        if kernel is None:
            return n >= 1
        n = _stage_output(n, kernel, padding, pool)
        if n < 1:
            return False
    return n == 1


class _ViewNet(nn.Module):
    """A stack of conv stages whose last stage collapses the input to one position."""

    out_features: int
    input_shape: tuple[int, ...]
    channels_last: bool = False

    def __init__(self, dims: int, spec: Sequence[tuple[int, int | None, int, int | None]], in_channels: int,
                 dropout: float, input_shape: tuple[int, ...], size_name: str = "size") -> None:
        super().__init__()
        spec = _fit_spec(spec, int(input_shape[-1]), type(self).__name__, size_name)
        stages: dict[str, nn.Module] = {}
        channels = in_channels
        n = len(spec)
        for k, (out_channels, kernel, padding, pool) in enumerate(spec, start=1):
            # Dropout in the middle layers only (not after the first or the last conv).
            drop = dropout if 1 < k < n else 0.0
            stages[f"conv{k}"] = _stage(dims, channels, out_channels, kernel, padding, pool, drop)
            channels = out_channels
        self.features = nn.Sequential(_ordered(stages))
        self.out_features = channels
        self.input_shape = tuple(input_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the flattened representation ``(B, out_features)``."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise InputError(
                f"{type(self).__name__} expects input of shape (B, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(x.shape)}"
            )
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        z = self.features(x)
        return z.flatten(1)


class FCNet(_ViewNet):
    """2D ConvNet for a (1, 264, 264) functional-connectivity matrix (Table IV, fMRI ConvNet).

    Args:
        channels: output channels of the four convs (paper: 16, 32, 32, 64).
        kernels: kernel sizes (paper: 7, 5, 3, 11). The last may be ``None``: the size that
            collapses what the pools leave to 1 x 1 (11 for 264 ROIs), so any atlas size works.
        paddings: paddings (paper: 3, 2, 1, 0).
        pools: max-pool sizes after each conv, ``None`` for none (paper: 2, 4, 3, none).
        dropout: dropout probability in the middle layers (paper: 0.2).
        n_rois: side of the FC matrix (paper: 264; the paper's kernels take 264-287: another
            atlas needs a null or fitting last kernel, which the error for a misfit names).
        channels_last: keep weights and activations in the NHWC memory layout: the same numbers
            up to rounding, about 1.7x faster training steps on a CPU (oneDNN). State dicts load
            into either layout.
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 32, 64),
        kernels: Sequence[int | None] = (7, 5, 3, 11),
        paddings: Sequence[int] = (3, 2, 1, 0),
        pools: Sequence[int | None] = (2, 4, 3, None),
        dropout: float = 0.2,
        n_rois: int = 264,
        channels_last: bool = False,
    ) -> None:
        spec = list(zip(channels, kernels, paddings, pools, strict=True))
        super().__init__(2, spec, 1, dropout, (1, n_rois, n_rois), "n_rois")
        self.channels_last = bool(channels_last)
        if self.channels_last:
            # only the 4D conv weights change; torch's stub of Module.to omits memory_format
            self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


class SNPNet(_ViewNet):
    """1D ConvNet for a (1, 750) genotype vector coded 0/1/2 (Table IV, SNP ConvNet).

    Args:
        channels: output channels of the three convs (paper: 16, 32, 64).
        kernels: kernel sizes (paper: 31, 31, 15); the last may be ``None`` (collapse what is
            left: 15 for 750 SNPs), so any SNP count works.
        paddings: paddings (paper: none).
        pools: max-pool sizes after each conv (paper: 6, 6, none).
        dropout: dropout probability in the middle layers (paper: 0.2).
        n_snps: number of SNPs (paper: 750; the paper's kernels take 750-785).
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64),
        kernels: Sequence[int | None] = (31, 31, 15),
        paddings: Sequence[int] = (0, 0, 0),
        pools: Sequence[int | None] = (6, 6, None),
        dropout: float = 0.2,
        n_snps: int = 750,
    ) -> None:
        spec = list(zip(channels, kernels, paddings, pools, strict=True))
        super().__init__(1, spec, 1, dropout, (1, n_snps), "n_snps")


def mean_of_views(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(B, C)`` from per-view logits ``(B, m, C)``: the mean over views of
    each view's softmax (the prediction of gCAM-CCL everywhere: training metrics, test, maps)."""
    return torch.softmax(logits, dim=-1).mean(dim=1)


class CollaborativeNet(nn.Module):
    """m view networks fused by a collaborative layer: one linear classifier per view.

    The collaborative layer maps each view's representation ``Z_i`` to that view's class scores
    ``h^(i)`` (the paper's ``collab_layer``, output (B, m*C)); the views interact through the
    collaborative cross-entropy (``fusion.losses.collaborative_cross_entropy``), which ties each
    view's class probabilities to the label and to the other views'.

    Args:
        views: name -> view network (each with an ``out_features`` attribute or a
            ``representation_dim`` given in ``feature_dims``). Default: ``{"fc": FCNet(), "snp": SNPNet()}``.
            The order of this mapping is the order of ``forward``'s inputs.
        n_classes: number of classes C.
        feature_dims: representation size per view when a view has no ``out_features``.

    ``forward(*inputs)`` takes one tensor per view in ``views`` order (``fc`` (B, 1, 264, 264),
    ``snp`` (B, 1, 750) by default) and returns logits ``(B, m, C)``.
    """

    def __init__(
        self,
        views: Mapping[str, nn.Module] | None = None,
        n_classes: int = 2,
        feature_dims: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        if views is None:
            views = {"fc": FCNet(), "snp": SNPNet()}
        if len(views) < 1:
            raise ConfigError("CollaborativeNet needs at least one view")
        if n_classes < 2:
            raise ConfigError(f"n_classes must be >= 2, got {n_classes}")
        self.views = nn.ModuleDict(dict(views))
        self.view_names = list(self.views.keys())
        self.n_classes = int(n_classes)
        dims = dict(feature_dims or {})
        heads = {}
        for name, net in self.views.items():
            dim = dims.get(name, getattr(net, "out_features", None))
            if dim is None:
                raise ConfigError(f"view {name!r} has no out_features; give feature_dims[{name!r}]")
            heads[name] = nn.Linear(int(dim), self.n_classes)
        self.collab = nn.ModuleDict(heads)

    @property
    def fc_net(self) -> nn.Module:
        """The view named ``fc`` (KeyError if absent)."""
        return self.views["fc"]

    @property
    def snp_net(self) -> nn.Module:
        """The view named ``snp`` (KeyError if absent)."""
        return self.views["snp"]

    @property
    def n_views(self) -> int:
        return len(self.view_names)

    def single_view(self, name: str) -> CollaborativeNet:
        """The network of one view and its collaborative head, sharing this model's modules.

        A view's logits depend on that view's input only, so its maps can be computed without
        running the other views (for the FC view's maps the SNP network is skipped, and, which
        matters more, the 264 x 264 FC network for the SNP view's maps). Module paths stay the
        same (``views.<name>...``); the returned model takes one input and returns ``(B, 1, C)``.
        """
        if name not in self.views:
            raise ConfigError(f"CollaborativeNet has no view {name!r} (views: {self.view_names})")
        sub = CollaborativeNet({name: self.views[name]}, self.n_classes,
                               feature_dims={name: cast(nn.Linear, self.collab[name]).in_features})
        sub.collab[name] = self.collab[name]
        return sub.train(self.training)

    def representations(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        """Each view's flattened representation ``(B, d_i)``, in views order (the collaborative
        layer's inputs; used as features by the CCL+SVM / CCL+RF baselines)."""
        if len(inputs) != self.n_views:
            raise InputError(
                f"CollaborativeNet has views {self.view_names} but got {len(inputs)} input tensor(s)"
            )
        return [self.views[name](x) for name, x in zip(self.view_names, inputs)]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Per-view class logits ``(B, m, C)``."""
        feats = self.representations(*inputs)
        logits = [self.collab[name](z) for name, z in zip(self.view_names, feats)]
        return torch.stack(logits, dim=1)

    def predict_proba(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, C)``: the mean over views of each view's softmax."""
        return mean_of_views(self.forward(*inputs))
