"""MultimodalVAE: layer shapes on the paper and reduced grids, output range, sampling, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fusion.errors import ConfigError, InputError
from fusion.models import MultimodalVAE
from fusion.models.vae import encoder_shapes

# Spatial shapes after each stride-2 convolution (kernel 3, padding 1: n -> ceil(n / 2)),
# written out by hand, input first.
PAPER_CHAIN = [(53, 63, 52), (27, 32, 26), (14, 16, 13), (7, 8, 7), (4, 4, 4)]
SMALL_CHAIN = [(27, 32, 26), (14, 16, 13), (7, 8, 7), (4, 4, 4), (2, 2, 2)]
TINY_CHAIN = [(14, 16, 13), (7, 8, 7), (4, 4, 4), (2, 2, 2)]
ODD_CHAIN = [(5, 9, 3), (3, 5, 2), (2, 3, 1), (1, 2, 1)]

CASES = [
    pytest.param(PAPER_CHAIN, (2, 2, 2, 2), id="paper-grid"),
    pytest.param(SMALL_CHAIN, (4, 8, 8, 8), id="small-grid-4-stages"),
    pytest.param(SMALL_CHAIN[:4], (4, 8, 8), id="small-grid-3-stages"),
    pytest.param(TINY_CHAIN, (4, 8, 8), id="tiny-grid-3-stages"),
    pytest.param(TINY_CHAIN[:3], (4, 8), id="tiny-grid-2-stages"),
    pytest.param(ODD_CHAIN, (2, 2, 2), id="odd-grid"),
]


def _layer_shapes(model: MultimodalVAE, x: torch.Tensor) -> tuple[list, list]:
    """Spatial output shapes of every encoder Conv3d and decoder ConvTranspose3d, in call order."""
    enc, dec = [], []
    hooks = []
    for module in model.modules():
        if isinstance(module, nn.ConvTranspose3d):
            hooks.append(module.register_forward_hook(lambda m, i, o: dec.append(tuple(o.shape[2:]))))
        elif isinstance(module, nn.Conv3d) and module.stride == (2, 2, 2):
            hooks.append(module.register_forward_hook(lambda m, i, o: enc.append(tuple(o.shape[2:]))))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return enc, dec


@pytest.mark.parametrize(("chain", "channels"), CASES)
def test_layer_shapes_retrace_the_encoder(chain, channels):
    torch.manual_seed(0)
    model = MultimodalVAE(in_shape=chain[0], channels=channels, head_channels=(2, 2), latent_dim=3)
    assert encoder_shapes(chain[0], len(channels)) == chain
    assert model.bottleneck_shape == chain[-1]
    x = torch.rand(2, 1, *chain[0]) * 2 - 1
    enc, dec = _layer_shapes(model, x)
    assert enc == chain[1:]
    assert dec == list(reversed(chain[:-1]))
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (2, 3)
    recon = model.decode(model.reparameterize(mu, logvar))
    assert recon.shape == x.shape


def test_paper_architecture_matches_the_paper():
    torch.manual_seed(0)
    model = MultimodalVAE()  # defaults are the paper's values
    convs = [m for m in model.encoder if isinstance(m, nn.Conv3d)]
    assert [(m.in_channels, m.out_channels) for m in convs] == [(1, 64), (64, 128), (128, 256), (256, 512)]
    assert all(m.kernel_size == (3, 3, 3) and m.stride == (2, 2, 2) and m.padding == (1, 1, 1) for m in convs)
    assert model.fc_mu.in_features == 512 * 4 * 4 * 4 and model.fc_mu.out_features == 128
    assert model.fc_logvar.in_features == 512 * 64 and model.fc_decode.out_features == 512 * 64
    layers = [m for m in model.decoder if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
    assert [(m.in_channels, m.out_channels) for m in layers] == [
        (512, 256), (256, 128), (128, 64), (64, 32), (32, 16), (16, 1)
    ]
    assert [m.stride for m in layers] == [(2, 2, 2)] * 4 + [(1, 1, 1)] * 2
    assert all(m.kernel_size == (3, 3, 3) and m.padding == (1, 1, 1) for m in layers)
    # Only the last layer goes without bias, and tanh follows it.
    assert [m.bias is None for m in layers] == [False] * 5 + [True]
    assert isinstance(model.decoder[-1], nn.Tanh) and model.decoder[-2] is layers[-1]
    # ReLU after every other convolution.
    acts = [type(m) for m in model.decoder if not isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
    assert acts == [nn.ReLU] * 5 + [nn.Tanh]


def test_paper_model_full_grid_forward():
    torch.manual_seed(0)
    model = MultimodalVAE(latent_dim=16).eval()
    x = torch.rand(1, 1, 53, 63, 52) * 2 - 1
    with torch.no_grad():
        recon, mu, logvar = model(x)
    assert recon.shape == (1, 1, 53, 63, 52)
    assert mu.shape == logvar.shape == (1, 16)
    assert torch.isfinite(recon).all()


def test_output_is_tanh_bounded():
    torch.manual_seed(0)
    model = MultimodalVAE(in_shape=(14, 16, 13), channels=(4, 8), head_channels=(4, 4), latent_dim=4)
    with torch.no_grad():
        model.decoder[-2].weight.mul_(1e3)  # saturate the tanh
    z = torch.randn(8, 4) * 10
    out = model.decode(z)
    assert out.shape == (8, 1, 14, 16, 13)
    assert out.abs().max() <= 1.0
    assert out.abs().max() > 0.99  # the range is reached, not clipped short
    assert (out > 0.5).any() and (out < -0.5).any()


def test_reparameterize_moments_and_gradients():
    n = 200_000
    mu = torch.tensor([1.0, -2.0, 0.5]).repeat(n, 1).requires_grad_()
    var = torch.tensor([0.25, 4.0, 1.0])
    logvar = var.log().repeat(n, 1).requires_grad_()
    gen = torch.Generator().manual_seed(42)
    z = MultimodalVAE.reparameterize(mu, logvar, generator=gen)
    # Standard errors: sd / sqrt(n) for the mean, sd^2 * sqrt(2 / n) for the variance.
    se_mean = var.sqrt() / math.sqrt(n)
    se_var = var * math.sqrt(2.0 / n)
    assert torch.all((z.mean(0) - mu[0]).abs() < 5 * se_mean)
    assert torch.all((z.var(0) - var).abs() < 5 * se_var)
    # dz/dmu = 1, dz/dlogvar = 0.5 * (z - mu).
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu))
    assert torch.allclose(logvar.grad, 0.5 * (z - mu).detach(), atol=1e-6)
    # Same seed, same draw.
    z2 = MultimodalVAE.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(42))
    assert torch.equal(z, z2)


def test_forward_without_sampling_decodes_the_mean():
    torch.manual_seed(0)
    model = MultimodalVAE(in_shape=(14, 16, 13), channels=(4, 8), head_channels=(4, 2), latent_dim=5)
    x = torch.rand(3, 1, 14, 16, 13)
    with torch.no_grad():
        recon, mu, _ = model(x, sample=False)
        assert torch.equal(recon, model.decode(mu))
        sampled, _, _ = model(x)
    assert not torch.equal(recon, sampled)


def test_gradients_reach_every_parameter_and_training_lowers_the_loss():
    from fusion.losses import elbo

    torch.manual_seed(0)
    shape = (10, 12, 9)
    model = MultimodalVAE(in_shape=shape, channels=(8, 16), head_channels=(8, 4), latent_dim=6, channels_last=True)
    grid = torch.stack(torch.meshgrid(*(torch.linspace(-1, 1, n) for n in shape), indexing="ij"))
    blob = torch.exp(-(grid**2).sum(0) / 0.3)
    x = (torch.linspace(0.1, 0.9, 6).view(6, 1, 1, 1, 1) * blob).float()  # one blob, 6 amplitudes
    recon, mu, logvar = model(x)
    elbo(recon, x, mu, logvar)["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name

    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        recon, mu, logvar = model(x, sample=False)
        loss = elbo(recon, x, mu, logvar)["loss"]
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


@pytest.mark.parametrize(
    "shape",
    [(2, 14, 16, 13), (2, 2, 14, 16, 13), (2, 1, 14, 16, 12), (2, 1, 53, 63, 52)],
)
def test_wrong_input_shape_names_the_expected_shape(shape):
    model = MultimodalVAE(in_shape=(14, 16, 13), channels=(2,), head_channels=(2,), latent_dim=2)
    with pytest.raises(ValueError, match=r"\(B, 1, X, Y, Z\) = \(B, 1, 14, 16, 13\)") as info:
        model.encode(torch.zeros(shape))
    assert isinstance(info.value, InputError)


def test_wrong_latent_shape():
    model = MultimodalVAE(in_shape=(14, 16, 13), channels=(2,), head_channels=(2,), latent_dim=2)
    with pytest.raises(InputError, match=r"\(B, 2\)"):
        model.decode(torch.zeros(3, 4))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_shape": (14, 16)},
        {"in_shape": (14, 0, 13)},
        {"channels": ()},
        {"channels": (4, -1)},
        {"head_channels": ()},
        {"latent_dim": 0},
        {"latent_dim": 2.5},
    ],
)
def test_bad_configuration_is_a_config_error(kwargs):
    with pytest.raises(ConfigError):
        MultimodalVAE(**kwargs)


def test_channels_last_layout_gives_the_same_numbers():
    torch.manual_seed(0)
    kwargs = dict(in_shape=(14, 16, 13), channels=(4, 8), head_channels=(4, 2), latent_dim=5)
    plain = MultimodalVAE(**kwargs)
    fast = MultimodalVAE(**kwargs, channels_last=True)
    fast.load_state_dict(plain.state_dict())
    conv = fast.decoder[-2].weight
    assert conv.is_contiguous(memory_format=torch.channels_last_3d) and not conv.is_contiguous()
    x = torch.rand(3, 1, 14, 16, 13)
    outs = []
    for model in (plain, fast):
        recon, mu, logvar = model(x, sample=False)
        recon.square().sum().backward()
        outs.append((recon, mu, model.encoder[0].weight.grad, model.decoder[-2].weight.grad))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("slope", [0.0, 0.01])
def test_negative_slope_keeps_a_dead_head_trainable(slope):
    """With every head unit pushed below zero, ReLU outputs exactly 0 and passes no gradient back;
    LeakyReLU (slope > 0) still does, so such a model can recover."""
    torch.manual_seed(0)
    model = MultimodalVAE((14, 16, 13), (2, 2), (2,), latent_dim=3, negative_slope=slope)
    acts = [m for m in model.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))]
    assert all(isinstance(m, torch.nn.LeakyReLU if slope else torch.nn.ReLU) for m in acts)
    last_up = [m for m in model.decoder if isinstance(m, torch.nn.ConvTranspose3d)][-1]
    with torch.no_grad():
        last_up.weight.zero_()
        last_up.bias.fill_(-1.0)  # every head unit dead under ReLU
    x = torch.rand(2, 1, 14, 16, 13)
    recon, _, _ = model(x, sample=False)
    (recon - x).pow(2).sum().backward()
    grad = last_up.weight.grad.abs().sum().item()  # the dead units' own weights
    if slope:
        assert grad > 0 and recon.abs().sum() > 0
    else:
        assert grad == 0 and torch.count_nonzero(recon) == 0


def test_negative_slope_is_checked():
    with pytest.raises(ConfigError, match="negative_slope"):
        MultimodalVAE((14, 16, 13), (2, 2), (2,), latent_dim=3, negative_slope=1.5)
