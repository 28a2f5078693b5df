"""Mixed precision: the AMP engine configs, fusion.precision, and bf16 / fp16 training steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from fusion.errors import ConfigError
from fusion.losses import elbo
from fusion.models import MultimodalVAE
from fusion.precision import autocast, autocast_dtype, device_type, needs_grad_scaler

CONF = Path(__file__).resolve().parents[1] / "conf"
GRID = (6, 7, 5)


def _engine_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="vae", overrides=overrides).engine


# ---------------------------------------------------------------- fusion.precision
def test_autocast_dtype_names_and_scaler_rule():
    for name in ("bfloat16", "bf16", "BF16", torch.bfloat16):
        assert autocast_dtype(name) is torch.bfloat16
        assert not needs_grad_scaler(name)
    for name in ("float16", "fp16", "half", torch.float16):
        assert autocast_dtype(name) is torch.float16
        assert needs_grad_scaler(name)
    for bad in ("float32", torch.float32, "int8", None):
        with pytest.raises(ConfigError, match="engine.dtype must be one of"):
            autocast_dtype(bad, field="engine.dtype")
    assert device_type("cuda:1") == "cuda" and device_type(None) == "cpu"


def test_cpu_autocast_runs_convolutions_in_bf16_and_sums_in_fp32():
    conv = torch.nn.Conv3d(1, 2, 3)
    x = torch.randn(2, 1, 5, 5, 5)
    with autocast("cpu", "bf16"):
        y = conv(x)
        total = y.float().pow(2).sum()
    assert y.dtype == torch.bfloat16 and total.dtype == torch.float32
    assert conv.weight.dtype == torch.float32  # weights stay float32 (master copy)
    torch.testing.assert_close(y.float(), conv(x), rtol=2e-2, atol=2e-2)


# ---------------------------------------------------------------- engine configs
@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled, but CUDA is not available")
@pytest.mark.parametrize(
    "overrides, cls, dtype, device, scaler",
    [
        (["engine=amp"], "AutocastEngine", torch.float16, "cuda:0", True),
        (["engine=amp", "engine.dtype=bfloat16"], "AutocastEngine", torch.bfloat16, "cuda:0", False),
        (["engine=amp_bf16"], "AutocastEngine", torch.bfloat16, "cuda:0", False),
        (["engine=amp_cpu"], "AutocastEngine", torch.bfloat16, "cpu", False),
        (["engine=ddp_amp"], "DistributedDataParallelAutocastEngine", torch.float16, None, True),
        (["engine=ddp_amp", "engine.dtype=bf16"], "DistributedDataParallelAutocastEngine", torch.bfloat16, None, False),
    ],
)
def test_amp_engine_configs_resolve(overrides, cls, dtype, device, scaler):
    import fusion_runners.engines as engines

    cfg = _engine_cfg(overrides)
    engine = instantiate(cfg)  # constructing touches no GPU
    assert type(engine) is getattr(engines, cls)
    assert engine.amp_dtype is dtype
    # Catalyst's OptimizerCallback logs `engine.scaler` whenever the attribute exists
    assert hasattr(engine, "scaler") is scaler
    if device is not None:
        assert engine.device == device
    if "ddp" in overrides[0]:
        assert engine.is_ddp and engine.process_group_kwargs["backend"] == "nccl"
    else:
        assert not engine.is_ddp


def test_float32_is_not_an_amp_dtype():
    cfg = _engine_cfg(["engine=amp_cpu", "engine.dtype=float32"])
    with pytest.raises(InstantiationException, match="engine.dtype must be one of") as info:
        instantiate(cfg)
    assert isinstance(info.value.__cause__, ConfigError)


# ---------------------------------------------------------------- training steps
def _vae() -> MultimodalVAE:
    torch.manual_seed(4)
    return MultimodalVAE(GRID, (2, 4), (2,), 3)


def _engine_step(engine, device: str) -> tuple[torch.Tensor, torch.Tensor, MultimodalVAE, dict]:
    """One training step through the engine's autocast, backward and optimizer step."""
    model = _vae().to(device)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = (torch.rand(4, 1, *GRID, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
    torch.manual_seed(2)
    with engine.autocast():
        recon, mu, logvar = model(x)
        loss = elbo(recon, x, mu, logvar)["loss"]
        engine.backward_loss(loss, model, optimizer)  # Catalyst calls it inside autocast, too
        engine.optimizer_step(loss, model, optimizer)
    return recon, loss, model, before


def _fp32_loss(device: str) -> torch.Tensor:
    model = _vae().to(device)
    x = (torch.rand(4, 1, *GRID, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
    torch.manual_seed(2)
    recon, mu, logvar = model(x)
    return elbo(recon, x, mu, logvar)["loss"].detach()


def test_bf16_training_step_on_cpu_is_finite_and_close_to_fp32():
    from fusion_runners.engines import AutocastEngine

    recon, loss, model, before = _engine_step(AutocastEngine("cpu", "bfloat16"), "cpu")
    assert recon.dtype == torch.bfloat16  # the decoder really ran in bf16
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(_fp32_loss("cpu").item(), rel=2e-2)
    for key, value in model.state_dict().items():
        assert value.dtype == torch.float32 and torch.isfinite(value).all(), key
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


class _Cohort(torch.utils.data.Dataset):
    """Eight subjects of two volumes on ``GRID``."""

    def __init__(self, n: int = 8):
        rng = np.random.default_rng(0)
        self.labels = np.arange(n) % 2
        self.subject_ids = [f"s{i}" for i in range(n)]
        self.shape = GRID
        self.x = np.clip(rng.normal(size=(n, 2, *GRID)) * 0.3, -1, 1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"volumes": torch.from_numpy(self.x[i]), "label": int(self.labels[i]), "index": i}


class DtypeRecordingVAE(MultimodalVAE):
    """A MultimodalVAE that records the dtype of every reconstruction it returns."""

    seen: list[torch.dtype] = []

    def forward(self, x, sample: bool = True):
        out = super().forward(x, sample)
        DtypeRecordingVAE.seen.append(out[0].dtype)
        return out


def test_vae_runner_trains_a_fold_with_engine_amp_cpu(tmp_path):
    """Catalyst wraps handle_batch and the optimizer callback in the engine's bf16 autocast."""
    from omegaconf import OmegaConf

    from fusion_runners.vae import VAERunner

    engine = OmegaConf.to_container(_engine_cfg(["engine=amp_cpu"]))
    cfg = {
        "logdir": str(tmp_path), "engine": engine, "loggers": {},
        "data": {"_target_": "test_scale_amp._Cohort"},
        "model": {"_target_": "test_scale_amp.DtypeRecordingVAE", "in_shape": None,
                  "channels": [2, 4], "head_channels": [2], "latent_dim": 3},
        "folds": {"n_splits": 2, "only": 0},
        "stage": {"num_epochs": 2, "batch_size": 2,
                  "optimizer": {"_target_": "torch.optim.Adam", "lr": 1e-3}},
        "callbacks": {
            "folds": {"_target_": "fusion_callbacks.folds.FoldSplitCallback", "n_splits": 2,
                      "val_fraction": 0.25, "seed": 0, "logdir": str(tmp_path)},
            "optimizer": {"_target_": "catalyst.callbacks.OptimizerCallback", "metric_key": "loss"},
        },
    }
    DtypeRecordingVAE.seen.clear()
    runner = VAERunner(cfg=cfg)
    runner.run()
    assert runner.exception is None
    assert DtypeRecordingVAE.seen and set(DtypeRecordingVAE.seen) == {torch.bfloat16}
    for loader in ("train", "valid"):
        assert np.isfinite(runner.epoch_metrics[loader]["loss"])
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in runner.model.parameters())


@pytest.mark.gpu
def test_fp16_training_step_on_cuda_uses_the_scaler():
    if not torch.cuda.is_available():
        pytest.skip("float16 autocast training needs a CUDA device")
    from fusion_runners.engines import AutocastEngine

    engine = AutocastEngine("cuda:0", "float16", scaler_kwargs={"init_scale": 2.0**10})
    recon, loss, model, before = _engine_step(engine, "cuda:0")
    assert recon.dtype == torch.float16 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(_fp32_loss("cuda:0").item(), rel=2e-2)
    assert engine.scaler.get_scale() > 0
    for key, value in model.state_dict().items():
        assert value.dtype == torch.float32 and torch.isfinite(value).all(), key
    assert any(not torch.equal(before[k].cpu(), v.cpu()) for k, v in model.state_dict().items())
