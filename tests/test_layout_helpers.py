"""fusion.devices (one backend resolver, unwrapping), fusion.rundir (run-folder names) and the
scikit-learn surface of latent extraction (VAELatents)."""

import sys

import numpy as np
import pytest
import torch
from sklearn.pipeline import make_pipeline

from fusion import devices, rundir
from fusion.errors import ConfigError, InputError
from fusion.evaluate.classifiers import LinearSVM
from fusion.evaluate.latents import VAELatents, embed_subjects


def test_resolve_backend_rules(monkeypatch):
    assert devices.resolve_backend("numpy", gpu="cupy", cpu="numpy") == "numpy"
    with pytest.raises(ConfigError, match="must be one of"):
        devices.resolve_backend("gpu", gpu="cupy", cpu="numpy")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_backend("auto", gpu="cuml", cpu="sklearn") == "sklearn"
    with pytest.raises(ConfigError, match="CUDA device"):
        devices.resolve_backend("cuml", gpu="cuml", cpu="sklearn")
    assert devices.default_device() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    assert devices.resolve_backend("auto", gpu="cupy", cpu="numpy") == "numpy"
    with pytest.raises(ConfigError, match="CuPy"):
        devices.resolve_backend("cupy", gpu="cupy", cpu="numpy")


def test_unwrap_model():
    net = torch.nn.Linear(2, 2)
    assert devices.unwrap_model(net) is net
    assert devices.unwrap_model(torch.nn.DataParallel(net)) is net


def test_rundir_names(tmp_path):
    assert rundir.fold_name(3) == "fold_03" and rundir.fold_number("fold_03") == 3
    assert rundir.fold_number("fold_x") is None and rundir.fold_number("fold_03.bak") is None
    for name in ("fold_10", "fold_02", "notes"):
        (tmp_path / name).mkdir()
    (tmp_path / "fold_02" / "result.json").write_text("{}")
    assert [k for k, _ in rundir.fold_dirs(tmp_path)] == [2, 10]
    assert rundir.fold_result_paths(tmp_path) == [(2, tmp_path / "fold_02" / "result.json")]
    with pytest.raises(InputError, match="fold_02, fold_10|'fold_02', 'fold_10'"):
        rundir.fold_dir(tmp_path, 5)


class _MeanEncoder(torch.nn.Module):
    """encode(x) -> (mean and max of the volume, zeros): a closed-form stand-in for a VAE."""

    def encode(self, x):
        flat = x.flatten(1)
        mu = torch.stack([flat.mean(1), flat.amax(1)], dim=1)
        return mu, torch.zeros_like(mu)


def test_vae_latents_transformer_matches_embed_subjects():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 3, 4, 4, 4)).astype(np.float32)
    y = np.repeat([0, 1], 6)
    X[y == 1, 0] += 1.0
    Z = VAELatents(_MeanEncoder(), batch_size=5).fit(X).transform(X)
    flat = X.reshape(12, 3, -1)
    expected = np.stack([flat.mean(-1), flat.max(-1)], axis=-1).reshape(12, -1)
    np.testing.assert_allclose(Z, expected, rtol=1e-5, atol=1e-6)
    pipe = make_pipeline(VAELatents(_MeanEncoder()), LinearSVM(backend="sklearn")).fit(X, y)
    assert pipe.score(X, y) == 1.0
    with pytest.raises(InputError, match="n_modalities"):
        VAELatents(_MeanEncoder()).fit(X).transform(X[:, 0])
    with pytest.raises(InputError, match="index"):
        embed_subjects(_MeanEncoder(), [{"volumes": torch.zeros(3, 4, 4, 4), "index": 1}], progress=False)
