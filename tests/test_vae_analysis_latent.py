"""Latent t-SNE, generation from the prior, interpolation, and the VAE figures (headless PNGs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusion.errors import ConfigError, InputError
from fusion.interpret.generation import (
    decode_interpolation,
    interpolate_latents,
    sample_prior,
)
from fusion.interpret.latent_space import (
    embed_latents,
    flatten_latents,
    resolve_tsne_backend,
    tsne,
)
from fusion.models import MultimodalVAE
from fusion.report import vae_figures as figs

SHAPE = (9, 11, 10)
# 16 mm voxels whose grid covers the MNI brain, so slices land on the template.
AFFINE = np.array([[16.0, 0, 0, -72], [0, 16.0, 0, -104], [0, 0, 16.0, -60], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def tiny_vae() -> MultimodalVAE:
    torch.manual_seed(2)
    return MultimodalVAE(in_shape=SHAPE, channels=(4, 8), head_channels=(4, 2), latent_dim=5).eval()


def _assert_png(path) -> None:
    import matplotlib.image as mpimg

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    assert img[..., :3].std() > 0.01  # something was drawn


def _clustered_latents(n_subj=12, n_mod=6, dim=8, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = 10 * rng.normal(size=(n_mod, dim))
    return centres[None] + rng.normal(size=(n_subj, n_mod, dim))


def test_flatten_latents_is_subject_major():
    mu = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    points, subject, modality = flatten_latents(mu)
    np.testing.assert_array_equal(points[4], mu[1, 1])
    assert subject[4] == 1 and modality[4] == 1


def test_tsne_keeps_modality_clusters_apart():
    mu = _clustered_latents()
    emb = embed_latents(mu, perplexity=10, max_iter=250, seed=0, backend="sklearn")
    assert emb.backend == "sklearn" and emb.coords.shape == (72, 2)
    # Each point's nearest embedded neighbour belongs to the same modality.
    d = ((emb.coords[:, None] - emb.coords[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (emb.modality[d.argmin(1)] == emb.modality).mean() > 0.95


def test_tsne_subset_of_subjects_and_backend_resolution():
    mu = _clustered_latents(n_subj=10, n_mod=3)
    emb = embed_latents(mu, perplexity=5, max_iter=250, max_subjects=4, seed=1, backend="sklearn")
    assert len(np.unique(emb.subject)) == 4 and emb.coords.shape == (12, 2)
    if not torch.cuda.is_available():
        assert resolve_tsne_backend("auto") == "sklearn"
        with pytest.raises(ConfigError, match="cuML"):
            resolve_tsne_backend("cuml")
    with pytest.raises(ConfigError):
        resolve_tsne_backend("umap")
    with pytest.raises(InputError):
        tsne(np.zeros((2, 3)))


@pytest.mark.gpu
def test_tsne_cuml_keeps_clusters():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pytest.importorskip("cuml")
    emb = embed_latents(_clustered_latents(), perplexity=10, max_iter=500, backend="cuml")
    d = ((emb.coords[:, None] - emb.coords[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert emb.backend == "cuml" and (emb.modality[d.argmin(1)] == emb.modality).mean() > 0.9


def test_interpolation_endpoints_equal_the_decoded_endpoints(tiny_vae):
    rng = np.random.default_rng(3)
    z0, z1 = rng.normal(size=5), rng.normal(size=5)
    for method in ("linear", "slerp"):
        vols, path = decode_interpolation(tiny_vae, z0, z1, steps=6, method=method)
        assert vols.shape == (6, *SHAPE) and path.shape == (6, 5)
        with torch.no_grad():
            ends = tiny_vae.decode(torch.tensor(np.stack([z0, z1]), dtype=torch.float32))[:, 0].numpy()
        np.testing.assert_allclose(vols[0], ends[0], atol=1e-6)
        np.testing.assert_allclose(vols[-1], ends[1], atol=1e-6)
        assert not np.allclose(vols[1], vols[0])


def test_linear_and_spherical_paths():
    z0, z1 = np.array([3.0, 0.0]), np.array([0.0, 1.0])
    lin = interpolate_latents(z0, z1, steps=5)
    np.testing.assert_allclose(lin[2], [1.5, 0.5])
    np.testing.assert_allclose(np.diff(lin, axis=0), np.tile((z1 - z0) / 4, (4, 1)))
    sph = interpolate_latents(z0, z1, steps=5, method="slerp")
    # Norms interpolate linearly, directions sweep the quarter circle evenly.
    np.testing.assert_allclose(np.linalg.norm(sph, axis=1), np.linspace(3, 1, 5))
    np.testing.assert_allclose(np.arctan2(sph[:, 1], sph[:, 0]), np.linspace(0, np.pi / 2, 5), atol=1e-12)
    with pytest.raises(ConfigError):
        interpolate_latents(z0, z1, steps=1)
    with pytest.raises(InputError):
        interpolate_latents(z0, np.zeros(3))


def test_prior_samples_are_reproducible(tiny_vae):
    v1, z1 = sample_prior(tiny_vae, 3, seed=7)
    v2, z2 = sample_prior(tiny_vae, 3, seed=7)
    v3, _ = sample_prior(tiny_vae, 3, seed=8)
    assert v1.shape == (3, *SHAPE) and z1.shape == (3, 5)
    np.testing.assert_array_equal(z1, z2)
    np.testing.assert_allclose(v1, v2)
    assert not np.allclose(v1, v3)
    assert np.abs(v1).max() <= 1.0


def test_figures_are_valid_pngs_without_a_display(tmp_path):
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"
    rng = np.random.default_rng(4)
    y = np.r_[np.zeros(10), np.ones(10)].astype(int)
    curves = [(y, y + rng.normal(size=20)), (y, rng.normal(size=20))]
    _assert_png(figs.plot_roc_curves(curves, tmp_path / "roc.png"))

    coords = rng.normal(size=(54 * 3, 2))
    modality = np.tile(np.arange(54), 3)
    from fusion.data.neuromark import modality_domains

    _assert_png(figs.plot_latent_tsne(coords, modality, modality_domains(), tmp_path / "tsne.png"))

    vol = np.zeros(SHAPE, np.float32)
    vol[3:5, 4:7, 4:6] = 1.0
    vol[6, 3, 5] = -0.5
    _assert_png(figs.plot_map_comparison([vol, -vol], ["a", "b"], AFFINE, tmp_path / "cmp.png"))
    _assert_png(figs.plot_brain_map(np.zeros(SHAPE), AFFINE, tmp_path / "empty.png", title="nothing kept"))
    _assert_png(figs.plot_volume_strip(rng.normal(size=(4, *SHAPE)), tmp_path / "strip.png", titles=list("abcd")))
    with pytest.raises(InputError):
        figs.plot_roc_curves([(np.zeros(4), np.arange(4.0))], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
