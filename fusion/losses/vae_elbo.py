"""The VAE's negative evidence lower bound (ELBO).

Per volume: a Gaussian reconstruction term, the sum of squared errors over voxels, plus the KL
divergence of the diagonal Gaussian posterior N(mu, exp(logvar)) from the prior N(0, I), summed over
latent dimensions. Both terms are averaged over the batch, so the value does not depend on the batch
size and every volume (modality) weighs the same.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fusion.errors import ConfigError, InputError

__all__ = ["elbo", "ELBOLoss", "gaussian_kl", "kl_warmup"]


def _check_beta(beta: float) -> float:
    try:
        value = float(beta)
    except (TypeError, ValueError):
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"elbo: beta must be a finite number >= 0, got {beta!r}")
    return value


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per sample.

    Args:
        mu: posterior means ``(B, L)``.
        logvar: posterior log-variances ``(B, L)``.

    Returns:
        ``(B,)``: ``0.5 * sum_l (mu^2 + exp(logvar) - 1 - logvar)``.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def kl_warmup(step: int, warmup_steps: int, beta: float = 1.0) -> float:
    """KL weight of training step ``step`` (0-based) under a linear warm-up.

    The weight rises from 0 at step 0 to ``beta`` at ``warmup_steps`` and stays there. Starting with
    a free KL term lets the decoder learn to use z before the KL pulls the posterior onto the prior;
    without it a small VAE can collapse (mu equal for every input) in its first steps.

    Args:
        step: training batches seen so far in this fold (validation batches never count).
        warmup_steps: length of the ramp in batches; 0 disables the warm-up.
        beta: the final weight.
    """
    beta = _check_beta(beta)
    if int(warmup_steps) != warmup_steps or warmup_steps < 0:
        raise ConfigError(f"kl_warmup: warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    if step < 0:
        raise ConfigError(f"kl_warmup: step must be >= 0, got {step!r}")
    if warmup_steps == 0:
        return beta
    return beta * min(1.0, step / warmup_steps)


def elbo(
    recon: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Negative ELBO of a batch of volumes (the quantity to minimise).

    Args:
        recon: reconstructions ``(B, ...)``, e.g. ``(B, 1, X, Y, Z)``.
        x: inputs, same shape as ``recon``.
        mu: posterior means ``(B, L)``.
        logvar: posterior log-variances ``(B, L)``.
        beta: weight of the KL term (1 is the plain ELBO).

    Returns:
        ``{"loss", "recon", "kl"}`` scalar tensors with ``loss = recon + beta * kl``; ``recon`` is the
        per-volume sum of squared errors and ``kl`` the per-volume KL, each averaged over the batch.
    """
    beta = _check_beta(beta)
    if recon.shape != x.shape:
        raise InputError(
            f"elbo: recon and x must have the same shape, got {tuple(recon.shape)} and {tuple(x.shape)}"
        )
    if mu.dim() != 2 or mu.shape != logvar.shape:
        raise InputError(
            f"elbo: mu and logvar must both be (B, latent_dim), got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}"
        )
    if x.dim() < 1 or x.shape[0] != mu.shape[0]:
        raise InputError(
            f"elbo: x and mu must have the same batch size B, got x {tuple(x.shape)} and mu {tuple(mu.shape)}"
        )
    rec = (recon - x).pow(2).flatten(1).sum(dim=1).mean()
    kl = gaussian_kl(mu, logvar).mean()
    return {"loss": rec + beta * kl, "recon": rec, "kl": kl}


class ELBOLoss(nn.Module):
    """Module form of :func:`elbo`; ``beta`` is an attribute so a schedule may change it.

    Args:
        beta: weight of the KL term (1 is the plain ELBO).
    """

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = _check_beta(beta)

    def forward(
        self, recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """See :func:`elbo`; returns ``{"loss", "recon", "kl"}``."""
        return elbo(recon, x, mu, logvar, beta=self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"
