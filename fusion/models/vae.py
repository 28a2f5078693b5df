"""The multimodal 3D variational autoencoder of Geenjaar et al. (2021).

One encoder-decoder pair is shared by every modality: each volume (an ICN map or the sMRI gray
matter) is an independent sample, so all modalities populate one latent space.

Encoder: ``len(channels)`` Conv3d layers (kernel 3, stride 2, padding 1) with ReLU, then two linear
maps from the flattened bottleneck to the mean and the log-variance of q(z|x).
Decoder: a linear map from z to the bottleneck, ReLU, transposed Conv3d layers (kernel 3, stride 2,
padding 1) that retrace the encoder's spatial sizes exactly, then stride-1 Conv3d layers through
``head_channels`` and a last bias-free Conv3d to one channel, followed by tanh so the output lies in
[-1, 1] like the max-abs scaled input.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from fusion.errors import ConfigError, InputError

__all__ = ["MultimodalVAE", "encoder_features", "encoder_shapes"]

_KERNEL = 3
_STRIDE = 2
_PADDING = 1


def _conv_out(size: int) -> int:
    """Spatial size after a Conv3d with kernel 3, stride 2, padding 1."""
    return (size + 2 * _PADDING - _KERNEL) // _STRIDE + 1


def encoder_shapes(in_shape: Sequence[int], n_stages: int) -> list[tuple[int, ...]]:
    """Spatial shapes along the encoder, input first and bottleneck last.

    Args:
        in_shape: ``(X, Y, Z)`` of one input volume, in voxels.
        n_stages: number of stride-2 convolutions.

    Returns:
        ``n_stages + 1`` tuples, e.g. for ``(53, 63, 52)`` and 4 stages:
        ``[(53, 63, 52), (27, 32, 26), (14, 16, 13), (7, 8, 7), (4, 4, 4)]``.
    """
    shapes = [tuple(int(s) for s in in_shape)]
    for _ in range(n_stages):
        shapes.append(tuple(_conv_out(s) for s in shapes[-1]))
    return shapes


def encoder_features(in_shape: Sequence[int], channels: Sequence[int]) -> int:
    """Features of the flattened encoder output: the largest ``latent_dim`` the grid allows."""
    return int(channels[-1]) * _prod(encoder_shapes(in_shape, len(channels))[-1])


def _check_int_tuple(name: str, value: Sequence[int], length: int | None = None) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value)
        ok = all(int(v) == v for v in value)
    except (TypeError, ValueError):
        ok, out = False, ()
    if not ok or not out or any(v < 1 for v in out) or (length is not None and len(out) != length):
        what = f"{length} positive integers" if length else "a non-empty sequence of positive integers"
        raise ConfigError(f"MultimodalVAE: {name} must be {what}, got {value!r}")
    return out


class MultimodalVAE(nn.Module):
    """3D convolutional VAE shared by all modalities.

    Args:
        in_shape: ``(X, Y, Z)`` of one volume in voxels; the paper's grid is ``(53, 63, 52)``.
        channels: output channels of the stride-2 encoder convolutions; the decoder's transposed
            convolutions run back through them in reverse. Paper: ``(64, 128, 256, 512)``.
        head_channels: ``head_channels[0]`` is the output of the last transposed convolution (at
            full resolution); the stride-1 convolutions then go through ``head_channels[1:]`` and
            end in one bias-free output channel. Paper: ``(32, 16)``.
        latent_dim: size ``l`` of the latent space. Paper: 128, 256, 512 or 1024.
        negative_slope: 0 (the paper) uses ReLU everywhere; a value > 0 uses LeakyReLU with that
            slope. A narrow reduced model can lose every unit of its full-resolution head to ReLU
            death in its first steps; its output is then exactly 0 for good (seen for 1 of 10
            fold seeds with ``head_channels=(4,)``), which a small slope prevents.
        channels_last: keep convolution weights and activations in the ``channels_last_3d`` memory
            layout. Same numbers, different speed: on CPU (oneDNN) the backward pass of 3D
            convolutions with few channels runs several times faster in this layout.

    Shapes:
        input ``x``: ``(B, 1, X, Y, Z)``; ``mu``, ``logvar``, ``z``: ``(B, latent_dim)``;
        reconstruction: ``(B, 1, X, Y, Z)`` in [-1, 1].
    """

    def __init__(
        self,
        in_shape: Sequence[int] = (53, 63, 52),
        channels: Sequence[int] = (64, 128, 256, 512),
        head_channels: Sequence[int] = (32, 16),
        latent_dim: int = 128,
        channels_last: bool = False,
        negative_slope: float = 0.0,
    ) -> None:
        super().__init__()
        if not (isinstance(negative_slope, (int, float)) and 0.0 <= float(negative_slope) < 1.0):
            raise ConfigError(f"MultimodalVAE: negative_slope must be in [0, 1), got {negative_slope!r}")
        self.negative_slope = float(negative_slope)
        self.in_shape = _check_int_tuple("in_shape", in_shape, length=3)
        self.channels = _check_int_tuple("channels", channels)
        self.head_channels = _check_int_tuple("head_channels", head_channels)
        # int listed for mypy, which does not treat int as a numbers.Integral
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, (int, numbers.Integral)) or latent_dim < 1:
            raise ConfigError(f"MultimodalVAE: latent_dim must be a positive integer, got {latent_dim!r}")
        self.latent_dim = int(latent_dim)
        self.shapes = encoder_shapes(self.in_shape, len(self.channels))

        # Encoder: 1 -> channels[0] -> ... -> channels[-1], each halving the grid (rounding up).
        enc: list[nn.Module] = []
        c_in = 1
        for c_out in self.channels:
            enc += [nn.Conv3d(c_in, c_out, _KERNEL, _STRIDE, _PADDING), self._act()]
            c_in = c_out
        self.encoder = nn.Sequential(*enc)
        n_flat = encoder_features(self.in_shape, self.channels)
        if self.latent_dim > n_flat:
            raise ConfigError(
                f"MultimodalVAE: latent_dim {self.latent_dim} is larger than the encoder output allows "
                f"({self.channels[-1]} channels x {self.bottleneck_shape} = {n_flat} features); "
                f"expected latent_dim <= {n_flat} (fewer latent dimensions, more channels or a larger grid)"
            )
        self.fc_mu = nn.Linear(n_flat, latent_dim)
        self.fc_logvar = nn.Linear(n_flat, latent_dim)

        # Decoder: z -> bottleneck, then transposed convolutions back up the encoder's shapes. Each
        # one's output_padding (0 or 1) is fixed here from the encoder's shapes, which is what
        # passing `output_size` at call time would select, and keeps the decoder a plain Sequential.
        self.fc_decode = nn.Linear(latent_dim, n_flat)
        up_channels = list(reversed(self.channels)) + [self.head_channels[0]]
        dec: list[nn.Module] = []
        for i in range(len(self.channels)):
            size_in, size_out = self.shapes[-1 - i], self.shapes[-2 - i]
            pad = cast(  # three entries: in_shape is checked to be 3D
                "tuple[int, int, int]",
                tuple(o - ((s - 1) * _STRIDE - 2 * _PADDING + _KERNEL) for s, o in zip(size_in, size_out)),
            )
            dec += [
                nn.ConvTranspose3d(
                    up_channels[i], up_channels[i + 1], _KERNEL, _STRIDE, _PADDING, output_padding=pad
                ),
                self._act(),
            ]
        c_in = self.head_channels[0]
        for c_out in self.head_channels[1:]:
            dec += [nn.Conv3d(c_in, c_out, _KERNEL, 1, _PADDING), self._act()]
            c_in = c_out
        dec += [nn.Conv3d(c_in, 1, _KERNEL, 1, _PADDING, bias=False), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            # only 5D tensors (conv weights) change; torch's stub of Module.to omits memory_format
            self.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]

    def _act(self) -> nn.Module:
        """ReLU (the paper), or LeakyReLU when ``negative_slope`` > 0."""
        return nn.LeakyReLU(self.negative_slope) if self.negative_slope > 0 else nn.ReLU()

    @property
    def bottleneck_shape(self) -> tuple[int, ...]:
        """Spatial shape after the last encoder convolution, e.g. ``(4, 4, 4)`` for the paper grid."""
        return self.shapes[-1]

    def _check_volumes(self, x: torch.Tensor) -> None:
        expected = (1, *self.in_shape)
        if not isinstance(x, torch.Tensor) or x.dim() != 5 or tuple(x.shape[1:]) != expected:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(
                f"MultimodalVAE: x must have shape (B, 1, X, Y, Z) = (B, {', '.join(map(str, expected))}), "
                f"got {got}"
            )

    def _layout(self, h: torch.Tensor) -> torch.Tensor:
        return h.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else h

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Parameters of q(z|x).

        Args:
            x: volumes ``(B, 1, X, Y, Z)``.

        Returns:
            ``(mu, logvar)``, each ``(B, latent_dim)``.
        """
        self._check_volumes(x)
        h = self.encoder(self._layout(x)).flatten(1)
        return self.fc_mu(h), self.fc_logvar(h)

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` (differentiable in mu, logvar).

        Args:
            mu: means ``(B, latent_dim)``.
            logvar: log-variances ``(B, latent_dim)``.
            generator: optional random generator, for reproducible draws.

        Returns:
            ``z`` of shape ``(B, latent_dim)``.
        """
        if mu.shape != logvar.shape:
            raise InputError(
                f"reparameterize: mu and logvar must have the same shape, got {tuple(mu.shape)} "
                f"and {tuple(logvar.shape)}"
            )
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map latents back to volumes.

        Args:
            z: latents ``(B, latent_dim)``.

        Returns:
            Volumes ``(B, 1, X, Y, Z)`` in [-1, 1].
        """
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise InputError(f"MultimodalVAE: z must have shape (B, {self.latent_dim}), got {got}")
        h = nn.functional.leaky_relu(self.fc_decode(z), self.negative_slope)  # ReLU when 0
        h = h.view(z.shape[0], self.channels[-1], *self.bottleneck_shape)
        return self.decoder(self._layout(h))

    def forward(
        self, x: torch.Tensor, sample: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, draw z (or take ``z = mu`` when ``sample`` is False), decode.

        Args:
            x: volumes ``(B, 1, X, Y, Z)``.
            sample: draw z with the reparameterization trick (training and the ELBO); False
                decodes the posterior mean.

        Returns:
            ``(recon, mu, logvar)``: ``(B, 1, X, Y, Z)``, ``(B, latent_dim)``, ``(B, latent_dim)``.
        """
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar) if sample else mu
        return self.decode(z), mu, logvar

    def extra_repr(self) -> str:
        return (
            f"in_shape={self.in_shape}, channels={self.channels}, head_channels={self.head_channels}, "
            f"latent_dim={self.latent_dim}, bottleneck_shape={self.bottleneck_shape}, "
            f"channels_last={self.channels_last}, negative_slope={self.negative_slope}"
        )


def _prod(values: Sequence[int]) -> int:
    out = 1
    for v in values:
        out *= v
    return out
