"""ELBO: reconstruction and KL terms against closed-form references, batch averaging, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from fusion.errors import ConfigError, InputError
from fusion.losses import ELBOLoss, elbo


def _batch(seed: int = 0, b: int = 5, latent: int = 7, shape=(4, 5, 3)):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 1, *shape, generator=g, dtype=torch.float64) * 2 - 1
    recon = torch.rand(b, 1, *shape, generator=g, dtype=torch.float64) * 2 - 1
    mu = torch.randn(b, latent, generator=g, dtype=torch.float64) * 2
    logvar = torch.randn(b, latent, generator=g, dtype=torch.float64)
    return recon, x, mu, logvar


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 4.0])
def test_elbo_matches_closed_form(beta):
    recon, x, mu, logvar = _batch()
    out = elbo(recon, x, mu, logvar, beta=beta)

    # Reconstruction by hand: per-volume sum of squared errors, then the batch mean.
    r, t = recon.numpy(), x.numpy()
    sse = [float(np.sum((r[i] - t[i]) ** 2)) for i in range(r.shape[0])]
    expected_recon = sum(sse) / len(sse)
    # KL via torch.distributions: per-dimension KL of N(mu, sigma) from N(0, 1), summed, batch mean.
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected_kl = kl_divergence(q, p).sum(dim=1).mean().item()

    assert set(out) == {"loss", "recon", "kl"}
    assert all(v.dim() == 0 for v in out.values())
    assert out["recon"].item() == pytest.approx(expected_recon, rel=1e-12)
    assert out["kl"].item() == pytest.approx(expected_kl, rel=1e-12)
    assert out["loss"].item() == pytest.approx(expected_recon + beta * expected_kl, rel=1e-12)


def test_terms_vanish_at_their_optimum():
    recon, x, mu, logvar = _batch()
    out = elbo(x.clone(), x, torch.zeros_like(mu), torch.zeros_like(logvar))
    assert out["recon"].item() == 0.0 and out["kl"].item() == 0.0 and out["loss"].item() == 0.0


def test_value_does_not_depend_on_batch_size():
    recon, x, mu, logvar = _batch()
    single = elbo(recon, x, mu, logvar)
    doubled = elbo(*(torch.cat([t, t]) for t in (recon, x, mu, logvar)))
    for key in single:
        assert doubled[key].item() == pytest.approx(single[key].item(), rel=1e-12)
    # ... and sums over voxels: a volume twice as large with the same errors doubles the term.
    big = elbo(torch.cat([recon, recon], dim=2), torch.cat([x, x], dim=2), mu, logvar)
    assert big["recon"].item() == pytest.approx(2 * single["recon"].item(), rel=1e-12)


def test_gradients_match_the_analytic_ones():
    recon, x, mu, logvar = _batch()
    recon.requires_grad_()
    mu.requires_grad_()
    logvar.requires_grad_()
    elbo(recon, x, mu, logvar, beta=2.0)["loss"].backward()
    b = x.shape[0]
    assert torch.allclose(recon.grad, 2 * (recon - x).detach() / b)
    assert torch.allclose(mu.grad, 2.0 * mu.detach() / b)
    assert torch.allclose(logvar.grad, 2.0 * 0.5 * (logvar.detach().exp() - 1) / b)


def test_module_wrapper_and_mutable_beta():
    recon, x, mu, logvar = _batch(seed=3)
    loss = ELBOLoss(beta=0.25)
    assert loss(recon, x, mu, logvar)["loss"].item() == pytest.approx(
        elbo(recon, x, mu, logvar, beta=0.25)["loss"].item()
    )
    loss.beta = 3.0  # a KL-annealing schedule may change it between batches
    assert loss(recon, x, mu, logvar)["loss"].item() == pytest.approx(
        elbo(recon, x, mu, logvar, beta=3.0)["loss"].item()
    )
    assert "beta=3.0" in repr(loss)


def test_function_and_module_spellings_agree():
    import fusion.losses
    import fusion.losses.vae_elbo as module

    recon, x, mu, logvar = _batch(seed=4)
    ref = module.elbo(recon, x, mu, logvar)["loss"].item()
    assert fusion.losses.elbo(recon, x, mu, logvar)["loss"].item() == ref
    assert elbo(recon, x, mu, logvar)["loss"].item() == ref


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"recon": torch.zeros(5, 1, 4, 5, 2)}, "recon and x"),
        ({"mu": torch.zeros(5, 6)}, "mu and logvar"),
        ({"mu": torch.zeros(4, 7), "logvar": torch.zeros(4, 7)}, "batch size"),
        ({"mu": torch.zeros(5), "logvar": torch.zeros(5)}, "mu and logvar"),
    ],
)
def test_shape_errors(change, match):
    recon, x, mu, logvar = _batch()
    args = {"recon": recon, "x": x, "mu": mu, "logvar": logvar} | change
    with pytest.raises(InputError, match=match):
        elbo(**args)


@pytest.mark.parametrize("beta", [-1.0, float("nan"), float("inf"), "one"])
def test_bad_beta(beta):
    recon, x, mu, logvar = _batch()
    with pytest.raises(ConfigError, match="beta"):
        elbo(recon, x, mu, logvar, beta=beta)
    with pytest.raises(ConfigError, match="beta"):
        ELBOLoss(beta)


def test_kl_warmup_ramps_linearly_then_holds():
    from fusion.losses.vae_elbo import kl_warmup

    assert kl_warmup(0, 10, beta=0.5) == 0.0
    assert kl_warmup(5, 10, beta=0.5) == pytest.approx(0.25)
    assert kl_warmup(10, 10, beta=0.5) == pytest.approx(0.5)
    assert kl_warmup(1000, 10, beta=0.5) == pytest.approx(0.5)
    assert kl_warmup(0, 0, beta=0.5) == pytest.approx(0.5)  # no warm-up
    with pytest.raises(ConfigError, match="warmup_steps"):
        kl_warmup(3, -1)
    with pytest.raises(ConfigError, match="beta"):
        kl_warmup(3, 10, beta=-1.0)
