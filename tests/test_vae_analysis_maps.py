"""Group-difference maps, thresholds and agreement scores (fusion.interpret.group_maps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusion.errors import InputError
from fusion.interpret.group_maps import (
    combine_maps,
    compare_maps,
    data_mask,
    decode_latents,
    decoded_group_difference,
    dice,
    group_centres,
    input_group_difference,
    map_correlation,
    map_dice,
    percentile_threshold,
    recovery_scores,
    top_modalities,
)
from fusion.models import MultimodalVAE

SHAPE = (9, 11, 10)


@pytest.fixture(scope="module")
def tiny_vae() -> MultimodalVAE:
    torch.manual_seed(1)
    return MultimodalVAE(in_shape=SHAPE, channels=(4, 8), head_channels=(4, 2), latent_dim=6).eval()


def _blob(centre: tuple[float, float, float], sigma: float = 1.5, shape=SHAPE) -> np.ndarray:
    grid = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    d2 = sum((g - c) ** 2 for g, c in zip(grid, centre))
    return np.exp(-d2 / (2 * sigma**2)).astype(np.float32)


def test_group_centres_are_group_means():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(7, 3, 4))
    labels = np.array([0, 1, 0, 1, 1, 0, 0])
    control, patient = group_centres(mu, labels)
    np.testing.assert_allclose(control, mu[[0, 2, 5, 6]].mean(0))
    np.testing.assert_allclose(patient, mu[[1, 3, 4]].mean(0))


def test_decoded_difference_is_decode_of_patient_centre_minus_decode_of_control_centre(tiny_vae):
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(8, 3, 6)).astype(np.float32)
    labels = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    diff = decoded_group_difference(tiny_vae, mu, labels, batch_size=2)
    assert diff.shape == (3, *SHAPE)
    with torch.no_grad():
        p = tiny_vae.decode(torch.from_numpy(mu[labels == 1].mean(0)))[:, 0].numpy()
        c = tiny_vae.decode(torch.from_numpy(mu[labels == 0].mean(0)))[:, 0].numpy()
    np.testing.assert_allclose(diff, p - c, atol=1e-6)
    assert np.abs(diff).max() > 0
    # A subset of modalities, in the order asked for.
    np.testing.assert_allclose(decoded_group_difference(tiny_vae, mu, labels, modalities=[2, 0]), diff[[2, 0]],
                               atol=1e-6)


def test_decode_latents_batches_do_not_change_the_result(tiny_vae):
    z = np.random.default_rng(2).normal(size=(5, 6))
    np.testing.assert_allclose(decode_latents(tiny_vae, z, batch_size=1), decode_latents(tiny_vae, z, batch_size=5),
                               atol=1e-6)


def test_group_difference_needs_both_groups():
    with pytest.raises(InputError, match="patient"):
        group_centres(np.zeros((3, 2, 4)), np.zeros(3, dtype=int))
    with pytest.raises(InputError, match="labels must be"):
        group_centres(np.zeros((3, 2, 4)), np.zeros(4, dtype=int))


def test_99th_percentile_keeps_about_one_percent_and_keeps_signs():
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(2, 40, 40, 40)).astype(np.float32)
    out = percentile_threshold(maps, 99.0)
    kept = (out != 0).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(kept, 0.01, atol=0.0005)
    nz = out != 0
    np.testing.assert_array_equal(out[nz], maps[nz])
    # Every kept voxel is at least as large as every dropped one, per map.
    for m, o in zip(maps, out):
        assert np.abs(m[o != 0]).min() >= np.abs(m[o == 0]).max()
    assert (out < 0).any() and (out > 0).any()


def test_threshold_within_mask_ignores_voxels_outside():
    rng = np.random.default_rng(4)
    m = rng.normal(size=(20, 20, 20))
    mask = np.zeros(m.shape, bool)
    mask[:10] = True
    m[~mask] *= 100  # huge values outside the mask must not set the threshold
    out = percentile_threshold(m, 95.0, mask)
    assert not out[~mask].any()
    assert (out[mask] != 0).sum() == pytest.approx(0.05 * mask.sum(), abs=2)


def test_threshold_of_a_sparse_map_keeps_only_its_nonzero_voxels():
    m = np.zeros((10, 10, 10))
    m[1, 2, 3], m[4, 4, 4] = 2.0, -1.0
    out = percentile_threshold(m, 99.0)
    assert set(zip(*np.nonzero(out))) == {(1, 2, 3), (4, 4, 4)}


def test_correlation_and_dice_on_constructed_maps():
    a = _blob((3, 3, 3))
    b = _blob((6, 8, 7))
    assert map_correlation(a, a) == pytest.approx(1.0)
    assert map_correlation(a, -2 * a + 1) == pytest.approx(-1.0)
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=SHAPE), rng.normal(size=SHAPE)
    assert map_correlation(x, y) == pytest.approx(np.corrcoef(x.ravel(), y.ravel())[0, 1])
    assert np.isnan(map_correlation(np.ones(SHAPE), x))
    assert dice(a > 0.5, a > 0.5) == 1.0
    assert dice(a > 0.5, b > 0.5) == 0.0
    half = np.zeros(SHAPE, bool)
    half[:2] = True
    other = np.zeros(SHAPE, bool)
    other[1:3] = True
    assert dice(half, other) == pytest.approx(0.5)
    assert map_dice(a, 3 * a) == 1.0
    assert map_dice(a, b, q=95) == 0.0


def test_input_group_difference_matches_numpy_and_gives_the_data_mask():
    rng = np.random.default_rng(6)
    vols = rng.normal(size=(6, 3, *SHAPE)).astype(np.float32)
    vols[..., 0, :, :] = 0  # a slab outside the brain
    labels = np.array([1, 0, 1, 0, 0, 1])
    vols[..., 1, :, :] = 1e-6 * rng.normal(size=vols[..., 1, :, :].shape)  # resampling residue
    diff, intensity = input_group_difference(list(vols), labels)
    np.testing.assert_allclose(diff, vols[labels == 1].mean(0) - vols[labels == 0].mean(0), atol=1e-5)
    np.testing.assert_allclose(intensity, np.abs(vols).mean(axis=(0, 1)), rtol=1e-5)
    mask = data_mask(intensity)
    assert not mask[:2].any() and mask[2:].all()
    assert data_mask(intensity, 0.0)[1:].all()
    with pytest.raises(InputError, match="all zero"):
        data_mask(np.zeros(SHAPE))
    items = [{"volumes": torch.from_numpy(v), "label": int(y)} for v, y in zip(vols, labels)]
    diff2, _ = input_group_difference(items, modalities=[2])
    np.testing.assert_allclose(diff2, diff[[2]], atol=1e-5)
    with pytest.raises(InputError, match="labels"):
        input_group_difference(list(vols))
    with pytest.raises(InputError, match="more volumes than labels"):
        input_group_difference(list(vols), labels[:5])
    with pytest.raises(InputError, match="6 volumes but 7 labels"):
        input_group_difference(list(vols), np.r_[labels, 0])


def test_compare_and_combine():
    a = np.stack([_blob((3, 3, 3)), -_blob((6, 8, 7))])
    comp = compare_maps(a, 2 * a, q=98)
    assert comp["correlation"] == pytest.approx(1.0)
    assert comp["dice"] == pytest.approx(1.0)
    assert comp["correlation_per_modality"] == pytest.approx([1.0, 1.0])
    np.testing.assert_allclose(combine_maps(a), a[0] + a[1])
    np.testing.assert_allclose(combine_maps(a, [1]), a[1])
    swapped = compare_maps(a, a[::-1].copy(), q=98)
    assert swapped["dice_per_modality"] == [0.0, 0.0]
    assert swapped["dice"] == 1.0  # the union over modalities is the same


def test_recovery_scores_reward_the_planted_map_and_penalise_others():
    planted = np.zeros((4, *SHAPE), np.float32)
    planted[1] = -_blob((3, 4, 3))
    planted[3] = _blob((6, 7, 6))
    rng = np.random.default_rng(7)
    good = 3 * planted + 0.01 * rng.normal(size=planted.shape)
    rec = recovery_scores(good, planted, [1, 3], q=98)
    assert rec["map_correlation"] > 0.99 and rec["map_dice"] > 0.8
    assert set(rec["per_modality"]) == {"1", "3"}
    wrong = planted[[0, 3, 2, 1]]  # modality 1 and 3 swapped: right blobs, wrong modalities
    bad = recovery_scores(wrong, planted, [1, 3], q=98)
    assert bad["map_correlation"] < 0.2 and bad["map_dice"] == 0.0
    with pytest.raises(InputError, match="all zero"):
        recovery_scores(good, planted, [0])


def test_top_modalities_orders_by_importance():
    np.testing.assert_array_equal(top_modalities(np.array([0.1, 0.5, 0.05, 0.35]), k=2), [1, 3])
    assert len(top_modalities(np.ones(3), k=10)) == 3
