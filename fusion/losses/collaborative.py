"""Collaborative cross-entropy of gCAM-CCL (Hu et al. 2021, Eqs. 11-12).

For m views with class probabilities ``h^(i) = softmax(logits_i)`` and one-hot label ``y``:

    Loss = -1/m * sum_i sum_c y_c log h^(i)_c  -  1/(m(m-1)) * sum_{i != j} sum_c h^(i)_c log h^(j)_c

The first term fits every view to the label; the second is the cross-entropy between every ordered
pair of views (the probability of view i weighs the log-probability of view j), which pulls the
views' predictions together. Gradients flow through both sides of each pair (the paper's
"two composite gradients passed mutually"). Eq. 11 is the 2-view, 2-class case written with sums
instead of means (so it equals 2 x Eq. 12), with its ``log(1 - h_2)`` read as ``log h_2``: with
``1 - h_2 = h_1`` the label term would reward class 1 for both labels, which cannot be meant.
Every loss here is averaged over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    from fusion.errors import InputError

    if logits.ndim != 3:
        raise InputError(f"logits_per_view must have shape (B, m, C), got {tuple(logits.shape)}")
    if target.ndim != 1 or target.shape[0] != logits.shape[0]:
        raise InputError(
            f"target must have shape (B,) with B={logits.shape[0]}, got {tuple(target.shape)}"
        )


def collaborative_terms(logits_per_view: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of Eq. 12 per sample, before weighting and batch reduction.

    Args:
        logits_per_view: ``(B, m, C)`` unnormalised class scores of each view.
        target: ``(B,)`` integer labels in ``[0, C)``.

    Returns:
        ``(label_term, pair_term)``, each ``(B,)``: the mean over views of the cross-entropy
        with the label, and the mean over ordered view pairs of the between-view cross-entropy
        (zeros for a single view).
    """
    _check(logits_per_view, target)
    b, m, c = logits_per_view.shape
    log_h = F.log_softmax(logits_per_view, dim=-1)  # (B, m, C)
    h = log_h.exp()
    y = F.one_hot(target.long(), c).to(log_h.dtype)  # (B, C)
    label_term = -(y[:, None, :] * log_h).sum(-1).mean(1)  # (B,)
    if m > 1:
        # cross[b, i, j] = sum_c h^(i)_c log h^(j)_c ; the diagonal i == j is excluded.
        cross = torch.einsum("bic,bjc->bij", h, log_h)
        off = ~torch.eye(m, dtype=torch.bool, device=cross.device)
        pair_term = -cross[:, off].sum(-1) / (m * (m - 1))
    else:
        pair_term = torch.zeros_like(label_term)
    return label_term, pair_term


def view_label_losses(logits_per_view: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each view's batch-mean cross-entropy with the label, ``(m,)``; their mean is the label
    term of Eq. 12. A view's logits depend on its own branch only, so this is what choosing a
    checkpoint per view (``callbacks.per_view_checkpoint``) monitors."""
    _check(logits_per_view, target)
    log_h = F.log_softmax(logits_per_view, dim=-1)  # (B, m, C)
    picked = log_h.gather(-1, target.long()[:, None, None].expand(-1, log_h.shape[1], 1))[..., 0]
    return -picked.mean(0)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    from fusion.errors import ConfigError

    raise ConfigError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def collaborative_cross_entropy(
    logits_per_view: torch.Tensor,
    target: torch.Tensor,
    pair_weight: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Eq. 12 for m views and C classes.

    Args:
        logits_per_view: ``(B, m, C)`` unnormalised class scores of each view.
        target: ``(B,)`` integer labels in ``[0, C)``.
        pair_weight: weight of the between-view term (paper: 1). With one view the term is 0.
        reduction: ``"mean"`` over the batch, ``"sum"`` or ``"none"`` (per-sample ``(B,)``).

    Returns:
        The loss (a scalar unless ``reduction="none"``).
    """
    label_term, pair_term = collaborative_terms(logits_per_view, target)
    return _reduce(label_term + pair_weight * pair_term, reduction)


def collaborative_cross_entropy_eq11(logits_view1: torch.Tensor, logits_view2: torch.Tensor,
                                     y: torch.Tensor) -> torch.Tensor:
    """Eq. 11 written term by term for two views and two classes (batch mean).

    ``-sum_i [(1-y) log h^(i)_1 + y log h^(i)_2] - sum_c [h^(1)_c log h^(2)_c + h^(2)_c log h^(1)_c]``
    with ``h^(i) = softmax(logits_view_i)``, logits ``(B, 2)`` and ``y`` in {0, 1} ``(B,)``.
    Equals ``2 * collaborative_cross_entropy(stack([l1, l2], 1), y)``.
    """
    y = y.to(logits_view1.dtype)
    lh1 = F.log_softmax(logits_view1, dim=-1)
    lh2 = F.log_softmax(logits_view2, dim=-1)
    h1, h2 = lh1.exp(), lh2.exp()
    fit = -((1 - y) * lh1[:, 0] + y * lh1[:, 1]) - ((1 - y) * lh2[:, 0] + y * lh2[:, 1])
    cross = -(h1[:, 0] * lh2[:, 0] + h2[:, 0] * lh1[:, 0]) - (h1[:, 1] * lh2[:, 1] + h2[:, 1] * lh1[:, 1])
    return (fit + cross).mean()


class CollaborativeCrossEntropy(nn.Module):
    """``nn.Module`` wrapper of :func:`collaborative_cross_entropy` (for Catalyst criteria)."""

    def __init__(self, pair_weight: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.pair_weight = pair_weight
        self.reduction = reduction

    def forward(self, logits_per_view: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return collaborative_cross_entropy(logits_per_view, target, self.pair_weight, self.reduction)

    def terms(self, logits_per_view: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch means of the two terms of Eq. 12, unweighted (logged beside the loss).

        ``label_loss`` (how well the views fit the label) is what a checkpoint should be chosen
        on: ``pair_loss`` measures agreement between views, not correctness, and rises whenever
        a weak view disagrees with a strong one.
        """
        label_term, pair_term = collaborative_terms(logits_per_view, target)
        return {"label_loss": label_term.mean(), "pair_loss": pair_term.mean()}
