"""Grad-CAM, guided backprop and guided Grad-CAM against captum and hand computations."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from fusion.errors import ConfigError
from fusion.interpret.gradcam import grad_cam, select_target, view_class_target
from fusion.interpret.guided_backprop import guided_backprop, guided_grad_cam

captum_attr = pytest.importorskip("captum.attr")


class ConvNet(nn.Module):
    """Small 1D or 2D ConvNet with BatchNorm, dropout, max-pooling and ReLU modules."""

    def __init__(self, dims: int, size: int, n_classes: int = 3):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d
        pool = nn.MaxPool2d if dims == 2 else nn.MaxPool1d
        self.conv1 = conv(1, 4, 3, padding=1)
        self.bn1 = norm(4)
        self.relu1 = nn.ReLU()
        self.pool1 = pool(2)
        self.conv2 = conv(4, 6, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(6 * (size // 2) ** dims, n_classes)
        with torch.no_grad():  # non-trivial BatchNorm statistics
            self.bn1.running_mean.uniform_(-0.5, 0.5)
            self.bn1.running_var.uniform_(0.5, 2.0)
            self.bn1.weight.uniform_(0.5, 1.5)

    def forward(self, x):
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.drop(self.relu2(self.conv2(x)))
        return self.head(x.flatten(1))


class TwoViewNet(nn.Module):
    """Collaborative-style net: a 2D and a 1D branch, logits (B, 2 views, 2 classes)."""

    def __init__(self):
        super().__init__()
        self.fc = ConvNet(2, 8, n_classes=2)
        self.snp = ConvNet(1, 12, n_classes=2)

    def forward(self, fc, snp):
        return torch.stack([self.fc(fc), self.snp(snp)], dim=1)


def _captum_gradcam(model, inputs, layer, target, size, mode):
    attr = captum_attr.LayerGradCam(model, layer).attribute(inputs, target, relu_attributions=True)
    return captum_attr.LayerAttribution.interpolate(attr, size, interpolate_mode=mode)[:, 0]


CASES = [(1, 12, "linear"), (1, 12, "nearest"), (2, 8, "bilinear"), (2, 8, "nearest")]


@pytest.mark.parametrize("dims,size,mode", CASES)
@pytest.mark.parametrize("layer_name", ["conv2", "relu1", "conv1"])
@pytest.mark.parametrize("target", [0, 2])
def test_standard_gradcam_equals_captum(dims, size, mode, layer_name, target):
    model = ConvNet(dims, size).eval()
    x = torch.randn(5, 1, *([size] * dims))
    layer = getattr(model, layer_name)
    expected = _captum_gradcam(model, x, layer, target, (size,) * dims, mode)
    got = grad_cam(model, x, layer, target, variant="standard", upsample_to=(size,) * dims,
                   upsample_mode=mode)
    assert got.shape == (5, *([size] * dims))
    assert expected.abs().max() > 0
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_standard_gradcam_per_view_targets_match_captum_on_two_inputs():
    model = TwoViewNet().eval()
    fc, snp = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 12)
    for view, layer, size in ((0, model.fc.conv2, (8, 8)), (1, model.snp.relu1, (12,))):
        for c in (0, 1):
            target = view_class_target(view, c)
            expected = _captum_gradcam(model, (fc, snp), layer, target, size, "nearest")
            got = grad_cam(model, (fc, snp), layer, target, variant="standard", upsample_to=size)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_layer_by_dotted_path_and_callable_target():
    model = TwoViewNet().eval()
    fc, snp = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 12)
    by_module = grad_cam(model, (fc, snp), model.fc.conv2, (0, 1), variant="standard")
    by_path = grad_cam(model, (fc, snp), "fc.conv2", lambda out: out[:, 0, 1], variant="standard")
    torch.testing.assert_close(by_module, by_path)
    assert by_module.shape == (3, 4, 4)  # layer resolution without upsampling


def test_eq10_matches_hand_computation():
    # F^k = x for both channels; y = sum_{k,t} w_{k,t} F^k_t, so dy/dF^k_t = w_{k,t}.
    conv = nn.Conv1d(1, 2, kernel_size=1, bias=False)
    head = nn.Linear(6, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        head.weight.copy_(torch.tensor([[1.0, -2.0, 4.0, -3.0, 0.0, 3.0]]))
    model = nn.Sequential(conv, nn.Flatten(), head)
    x = torch.tensor([[[1.0, 2.0, 3.0]]])
    # Eq. 10: g_1 = mean(relu(1, -2, 4)) = 5/3, g_2 = mean(relu(-3, 0, 3)) = 1; map = 8/3 * x.
    eq10 = grad_cam(model, x, conv, None, variant="eq10")
    torch.testing.assert_close(eq10, torch.tensor([[8 / 3, 16 / 3, 8.0]]))
    # Standard: g_1 = mean(1, -2, 4) = 1, g_2 = mean(-3, 0, 3) = 0; map = relu(x).
    standard = grad_cam(model, x, conv, None, variant="standard")
    torch.testing.assert_close(standard, torch.tensor([[1.0, 2.0, 3.0]]))


def test_eq10_differs_from_standard_with_mixed_sign_gradients():
    model = ConvNet(2, 8).eval()
    x = torch.randn(6, 1, 8, 8)
    eq10 = grad_cam(model, x, model.relu2, 1, variant="eq10")
    standard = grad_cam(model, x, model.relu2, 1, variant="standard")
    assert not torch.allclose(eq10, standard, atol=1e-4)
    assert (eq10 >= 0).all()  # non-negative weights on post-ReLU maps
    # With ReLU-ed gradients the Eq. 10 weights are the mean of the positive part only.
    feats = {}
    model.relu2.register_forward_hook(lambda m, a, o: feats.setdefault("F", o))
    x_req = x.clone().requires_grad_(True)
    out = model(x_req)
    (grad,) = torch.autograd.grad(out[:, 1].sum(), feats["F"])
    model.relu2._forward_hooks.clear()
    weights = grad.clamp(min=0).mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(eq10, (weights * feats["F"]).sum(1).detach())


def test_guided_backprop_equals_captum():
    for dims, size in ((1, 12), (2, 8)):
        model = ConvNet(dims, size).eval()
        x = torch.randn(4, 1, *([size] * dims))
        for target in (0, 2):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = captum_attr.GuidedBackprop(model).attribute(x.clone(), target)
            got = guided_backprop(model, x, target)
            assert expected.abs().max() > 0
            torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    # Guided backprop is not the plain gradient.
    xg = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(model(xg)[:, 2].sum(), xg)
    assert not torch.allclose(plain, guided_backprop(model, x, 2), atol=1e-6)


def test_guided_backprop_on_two_inputs_matches_captum():
    model = TwoViewNet().eval()
    fc, snp = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = captum_attr.GuidedBackprop(model).attribute((fc, snp), (1, 0))
    got = guided_backprop(model, (fc, snp), (1, 0), input_index=None)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, atol=1e-6, rtol=0)
    assert got[0].abs().max() == 0  # the FC input does not reach the SNP view's logits


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_guided_gradcam_is_the_product_and_matches_captum(mode):
    model = ConvNet(2, 8).eval()
    x = torch.randn(4, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = captum_attr.GuidedGradCam(model, model.conv2).attribute(
            x.clone(), 1, interpolate_mode=mode)
    got = guided_grad_cam(model, x, model.conv2, 1, variant="standard", upsample_mode=mode)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    for variant in ("standard", "eq10"):
        cam = grad_cam(model, x, model.conv2, 1, variant=variant, upsample_to=(8, 8),
                       upsample_mode=mode)
        product = guided_backprop(model, x, 1) * cam[:, None]
        got = guided_grad_cam(model, x, model.conv2, 1, variant=variant, upsample_mode=mode)
        torch.testing.assert_close(got, product)


def _hook_count(model):
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


def test_no_hooks_left_and_model_state_restored():
    model = ConvNet(2, 8)
    model.relu1.inplace = True
    model.train()
    model.bn1.eval()  # mixed flags must come back as they were
    x = torch.randn(3, 1, 8, 8)
    before = {n: p.detach().clone() for n, p in model.state_dict().items()}
    grad_cam(model, x, model.relu2, 0)
    guided_backprop(model, x, 0)
    guided_grad_cam(model, x, model.conv2, 0)
    with pytest.raises(ConfigError):
        grad_cam(model, x, model.relu2, 7)  # fails after the forward pass
    with pytest.raises(ConfigError):
        guided_backprop(model, x, (0, 1))
    assert _hook_count(model) == 0
    assert model.training and model.conv1.training and not model.bn1.training
    assert model.relu1.inplace
    assert all(p.grad is None for p in model.parameters())
    for name, value in model.state_dict().items():  # BatchNorm stats untouched (eval mode)
        torch.testing.assert_close(value, before[name])


def test_eval_mode_makes_maps_deterministic_despite_dropout():
    model = ConvNet(2, 8).train()
    x = torch.randn(3, 1, 8, 8)
    a = grad_cam(model, x, model.conv2, 0)
    b = grad_cam(model, x, model.conv2, 0)
    torch.testing.assert_close(a, b)


def test_bad_targets_and_layers_raise_clear_errors():
    model = TwoViewNet().eval()
    fc, snp = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 12)
    with pytest.warns(RuntimeWarning, match="zero for every example"):
        cam = grad_cam(model, (fc, snp), model.snp.conv2, view_class_target(0, 1))
    assert cam.abs().max() == 0
    with pytest.raises(ConfigError, match="does not depend"):
        grad_cam(model, (fc, snp), model.snp.conv2, lambda out: out[:, 0, 1].detach())
    with pytest.raises(ConfigError, match="not a submodule"):
        grad_cam(model, (fc, snp), "fc.nope", (0, 0))
    with pytest.raises(ConfigError, match="non-batch"):
        grad_cam(model, (fc, snp), model.fc.conv2, (0,))
    with pytest.raises(ConfigError, match="feature map"):
        grad_cam(model, (fc, snp), model.fc.head, (0, 0))
    with pytest.raises(ConfigError, match="variant"):
        grad_cam(model, (fc, snp), model.fc.conv2, (0, 0), variant="cam")
    out = torch.randn(2, 3)
    torch.testing.assert_close(select_target(out, [2, 0]), torch.stack([out[0, 2], out[1, 0]]))


def test_input_gradient_equals_captum_saliency():
    model = TwoViewNet().eval()
    fc, snp = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 12)
    expected = captum_attr.Saliency(model).attribute((fc, snp), (1, 1), abs=False)
    from fusion.interpret.guided_backprop import input_gradient

    got = input_gradient(model, (fc, snp), (1, 1), input_index=None)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, atol=1e-6, rtol=0)
    assert not torch.allclose(got[1], guided_backprop(model, (fc, snp), (1, 1), 1), atol=1e-6)
