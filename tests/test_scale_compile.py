"""``torch.compile`` as a config switch (fusion.models.compile), in place and checkpoint-safe.

The tests compile with the ``aot_eager`` backend: it traces the model with Dynamo and AOTAutograd,
as inductor does, without generating C++ (inductor takes minutes on this CPU).
"""

from __future__ import annotations

import pytest
import torch

from fusion.errors import ConfigError
from fusion.losses import elbo
from fusion.models import MultimodalVAE
from fusion.models.compile import (
    COMPILE_KEYS,
    compile_model,
    compile_options,
    is_compiled,
)

GRID = (6, 7, 5)
FAST = {"backend": "aot_eager"}


def _vae(channels_last: bool = False) -> MultimodalVAE:
    torch.manual_seed(8)
    return MultimodalVAE(GRID, (2, 4), (2,), 3, channels_last=channels_last)


def test_compile_options_from_config_values():
    assert compile_options(False) is None and compile_options(None) is None
    assert compile_options({"enabled": False, "backend": "eager"}) is None
    defaults = {k: v for k, v in COMPILE_KEYS.items() if k != "enabled"}
    assert compile_options(True) == defaults and defaults["backend"] == "inductor"
    assert compile_options({"backend": "aot_eager", "mode": None}) == {**defaults, "backend": "aot_eager"}


@pytest.mark.parametrize(
    "value, match",
    [
        ({"backnd": "eager"}, r"stage\.compile\.backnd"),
        ({"backend": "no-such-backend"}, "not a torch.compile backend"),
        ({"enabled": "yes"}, r"stage\.compile\.enabled must be true or false"),
        ("inductor", "must be true, false or a mapping"),
    ],
)
def test_bad_compile_settings_name_the_field(value, match):
    with pytest.raises(ConfigError, match=match):
        compile_options(value, field="stage.compile")


def test_switch_off_leaves_the_model_alone():
    model = _vae()
    assert compile_model(model, False) is model and not is_compiled(model)


@pytest.mark.parametrize("channels_last", [False, True])
def test_compiled_model_matches_eager_and_keeps_its_checkpoint_keys(channels_last):
    eager, compiled = _vae(channels_last), _vae(channels_last)
    assert compile_model(compiled, FAST, field="stage.compile") is compiled
    assert is_compiled(compiled) and type(compiled) is MultimodalVAE
    x = torch.rand(4, 1, *GRID, generator=torch.Generator().manual_seed(0)) * 2 - 1

    losses, grads = [], []
    for model in (eager, compiled):
        recon, mu, logvar = model(x, sample=False)  # z = mu: no random draw to line up
        loss = elbo(recon, x, mu, logvar)["loss"]
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5)
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6)

    # the training path (sample=True) runs compiled, too
    recon, mu, logvar = compiled(x)
    assert torch.isfinite(elbo(recon, x, mu, logvar)["loss"])

    # a compiled model's checkpoint loads into a plain one (torch.compile's wrapper would not)
    state = compiled.state_dict()
    assert list(state) == list(eager.state_dict())
    MultimodalVAE(GRID, (2, 4), (2,), 3).load_state_dict(state, strict=True)
    wrapped = torch.compile(_vae(), backend="eager")
    assert all(k.startswith("_orig_mod.") for k in wrapped.state_dict())
