"""Gradient accumulation through Catalyst 21.12's ``OptimizerCallback(accumulation_steps=...)``.

The config knob is ``callbacks.optimizer.accumulation_steps`` (``+callbacks.optimizer.
accumulation_steps=2`` on the command line while conf/vae.yaml does not list it). Catalyst calls
``backward`` on every batch's loss as it is and steps every ``accumulation_steps`` batches, so the
step sees the *sum* of the batches' gradients:

- a sum-reduced loss accumulated over 2 half-batches gives exactly the full batch's step;
- the ELBO is a *mean* over the batch's volumes, so accumulating 2 half-batches gives twice the
  full batch's gradient: with SGD the step is twice as long (divide the learning rate, or the loss,
  by ``accumulation_steps``); Adam, the VAE's optimizer, normalises the gradient's scale away, so
  its step matches the full batch's up to the ``eps`` term.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from catalyst.callbacks import OptimizerCallback
from catalyst.engines import DeviceEngine

from fusion.losses import elbo
from fusion.models import MultimodalVAE

GRID = (6, 7, 5)
BATCH = 8  # volumes; halves of 4


def _vae() -> MultimodalVAE:
    torch.manual_seed(21)
    return MultimodalVAE(GRID, (2, 4), (2,), 3)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return torch.rand(BATCH, 1, *GRID, generator=g) * 2 - 1, torch.randn(BATCH, 3, generator=g)


def _loss(model: MultimodalVAE, x: torch.Tensor, eps: torch.Tensor, reduction: str) -> torch.Tensor:
    """Negative ELBO with fixed reparameterization noise (so halves and whole see the same z)."""
    mu, logvar = model.encode(x)
    recon = model.decode(mu + torch.exp(0.5 * logvar) * eps)
    loss = elbo(recon, x, mu, logvar)["loss"]
    return loss * x.shape[0] if reduction == "sum" else loss


def _train(batches: list[slice], accumulation_steps: int, reduction: str, optimizer: str) -> tuple[dict, list[bool]]:
    """Feed ``batches`` of the global batch through Catalyst's OptimizerCallback.

    Returns the final weights and, per batch, whether the weights changed after it.
    """
    model = _vae()
    opt = (torch.optim.SGD(model.parameters(), lr=0.05) if optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), lr=1e-3))
    runner = SimpleNamespace(model=model, optimizer=opt, engine=DeviceEngine("cpu"),
                             is_train_loader=True, batch_metrics={})
    callback = OptimizerCallback(metric_key="loss", accumulation_steps=accumulation_steps)
    callback.on_stage_start(runner)
    x, eps = _batch()
    stepped = []
    for part in batches:
        before = [p.detach().clone() for p in model.parameters()]
        runner.batch_metrics = {"loss": _loss(model, x[part], eps[part], reduction)}
        callback.on_batch_end(runner)
        stepped.append(any(not torch.equal(b, p) for b, p in zip(before, model.parameters())))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, stepped


HALVES = [slice(0, BATCH // 2), slice(BATCH // 2, BATCH)]
WHOLE = [slice(0, BATCH)]


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_accumulated_half_batches_equal_one_full_batch_for_a_summed_loss(optimizer):
    full, _ = _train(WHOLE, 1, "sum", optimizer)
    accumulated, stepped = _train(HALVES, 2, "sum", optimizer)
    assert stepped == [False, True]  # no step after the first half-batch
    assert _max_diff(full, _vae().state_dict()) > 1e-4  # the step moved the weights
    assert _max_diff(accumulated, full) < 1e-5
    # without accumulation the two half-batch steps land elsewhere
    two_steps, stepped = _train(HALVES, 1, "sum", optimizer)
    assert stepped == [True, True] and _max_diff(two_steps, full) > 1e-4


def test_mean_loss_accumulates_twice_the_gradient():
    """SGD: the accumulated step of the mean ELBO is exactly twice the full batch's step."""
    initial = _vae().state_dict()
    full, _ = _train(WHOLE, 1, "mean", "sgd")
    accumulated, _ = _train(HALVES, 2, "mean", "sgd")
    assert _max_diff(accumulated, full) > 1e-4
    for key in full:
        torch.testing.assert_close(accumulated[key] - initial[key], 2 * (full[key] - initial[key]),
                                   rtol=1e-4, atol=1e-7)


def test_mean_loss_with_adam_matches_the_full_batch():
    """Adam's update divides the gradient by its own scale: the factor 2 cancels (up to eps)."""
    full, _ = _train(WHOLE, 1, "mean", "adam")
    accumulated, _ = _train(HALVES, 2, "mean", "adam")
    assert _max_diff(accumulated, full) < 1e-5
