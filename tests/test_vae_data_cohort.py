"""The synthetic VAE cohort: layout, grids, determinism, and planted effects that match the truth."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fusion.data import neuromark
from fusion.data.prepare import resample_volume
from fusion.data.synthetic_volumes import make_vae_cohort
from fusion.data.testing import cached_vae_cohort, folder_digest
from fusion.data.volume_design import grid_affine
from fusion.data.volume_layout import GRIDS
from fusion.errors import ConfigError, InputError


def _load_cohort(manifest):
    table = pd.read_csv(manifest)
    root = manifest.parent
    icn = np.stack([nib.load(root / p).get_fdata() for p in table["icn_path"]])
    icn_affine = nib.load(root / table["icn_path"][0]).affine
    smri = []
    for p in table["smri_path"]:
        image = nib.load(root / p)
        smri.append(resample_volume(image.get_fdata(), image.affine, icn.shape[1:4], icn_affine))
    volumes = np.concatenate([np.moveaxis(icn, -1, 1), np.stack(smri)[:, None]], axis=1)  # (n, 54, X, Y, Z)
    truth = nib.load(root / "ground_truth_effect.nii.gz").get_fdata()
    return table, volumes, truth, json.loads((root / "ground_truth.json").read_text())


def test_neuromark_modalities() -> None:
    names, domains = neuromark.modality_names(), neuromark.modality_domains()
    assert len(names) == len(domains) == neuromark.N_MODALITIES == 54
    assert names[0] == "ICN01 (SC)" and names[52] == "ICN53 (CB)" and names[53] == "sMRI GM"
    assert domains[-1] == "sMRI"
    # NeuroMark template order: SC 1-5, AU 6-7, SM 8-16, VI 17-25, CC 26-42, DM 43-49, CB 50-53
    for first, last, domain in [(1, 5, "SC"), (6, 7, "AU"), (8, 16, "SM"), (17, 25, "VI"), (26, 42, "CC"),
                                (43, 49, "DM"), (50, 53, "CB")]:
        assert set(domains[first - 1:last]) == {domain}


def test_cohort_layout_and_grids() -> None:
    manifest = cached_vae_cohort(24, True)
    table = pd.read_csv(manifest)
    assert list(table.columns) == ["subject_id", "label", "icn_path", "smri_path", "age", "sex"]
    assert table["subject_id"].is_unique and (table["label"] == "patient").sum() == 12
    icn = nib.load(manifest.parent / table["icn_path"][0])
    smri = nib.load(manifest.parent / table["smri_path"][0])
    assert icn.shape == (14, 16, 13, 53)
    np.testing.assert_allclose(icn.affine, grid_affine(12.0))
    # the sMRI lies on another grid (finer, RAS), so preparation must resample it
    assert smri.ndim == 3 and smri.shape != icn.shape[:3]
    assert smri.affine[0, 0] > 0 > icn.affine[0, 0]
    assert GRIDS["paper"][0] == (53, 63, 52)
    np.testing.assert_allclose(grid_affine(3.0)[:3], [[-3, 0, 0, 78], [0, 3, 0, -112], [0, 0, 3, -50]])
    truth = nib.load(manifest.parent / "ground_truth_effect.nii.gz")
    assert truth.shape == (14, 16, 13, 54)


def test_cohort_is_deterministic(tmp_path) -> None:
    a = make_vae_cohort(tmp_path / "a", size="tiny", n_subjects=4, seed=5, progress=False)
    b = make_vae_cohort(tmp_path / "b", size="tiny", n_subjects=4, seed=5, progress=False)
    c = make_vae_cohort(tmp_path / "c", size="tiny", n_subjects=4, seed=6, progress=False)
    assert folder_digest(a.parent) == folder_digest(b.parent)  # byte-identical files
    for rel in ("sub-0002/icn.nii.gz", "sub-0002/smri_gm.nii.gz", "ground_truth_effect.nii.gz"):
        assert np.array_equal(nib.load(a.parent / rel).get_fdata(), nib.load(b.parent / rel).get_fdata())
    assert not np.array_equal(nib.load(a.parent / "sub-0002/icn.nii.gz").get_fdata(),
                              nib.load(c.parent / "sub-0002/icn.nii.gz").get_fdata())


def test_effect_is_planted_exactly_where_the_truth_says() -> None:
    """Same subjects with and without effect: the difference is the planted effect, patients only."""
    table, with_effect, truth, gt = _load_cohort(cached_vae_cohort(24, True))
    table0, without, truth0, gt0 = _load_cohort(cached_vae_cohort(24, False))
    assert table.equals(table0)  # same subjects, labels and covariates
    assert gt["effect"] and not gt0["effect"] and gt0["effect_modalities"] == []
    assert gt["effect_modalities"] == [2, 5, 7, 23, 30, 49, 53] and gt["gm_effect"]
    assert not np.any(truth0)
    effect_mods = gt["effect_modalities"]
    others = [k for k in range(54) if k not in effect_mods]
    assert not np.any(truth[..., others]) and all(np.any(truth[..., k]) for k in effect_mods)

    patient = (table["label"] == "patient").to_numpy()
    delta = with_effect - without
    scale = np.abs(without).max() * 1e-3  # int16 storage quantises each file to ~1e-4 of its range
    assert np.abs(delta[~patient]).max() <= scale  # controls unchanged
    assert np.abs(delta[:, others]).max() <= scale  # nothing planted elsewhere
    mean_delta = delta[patient].mean(axis=0)
    for k in effect_mods:
        expected, observed = truth[..., k], mean_delta[k]
        # observed = planted change averaged over 12 patients' jitter / GM scale; truth = its expectation
        assert np.corrcoef(expected.ravel(), observed.ravel())[0, 1] > 0.9, k
        assert 0.75 < observed.sum() / expected.sum() < 1.25, k
        assert expected.min() < 0 and observed.sum() < 0  # patients lose signal / gray matter


def test_groups_differ_only_with_effect() -> None:
    """Patients vs controls, projected on the truth map: a clear difference only when planted."""
    table, with_effect, truth, gt = _load_cohort(cached_vae_cohort(24, True))
    _, without, _, _ = _load_cohort(cached_vae_cohort(24, False))
    patient = (table["label"] == "patient").to_numpy()

    def mean_t(volumes):
        ts = []
        for k in gt["effect_modalities"]:
            score = -(volumes[:, k] * truth[..., k]).reshape(len(patient), -1).sum(axis=1)
            ts.append(stats.ttest_ind(score[~patient], score[patient]).statistic)
        return float(np.mean(ts))

    assert mean_t(with_effect) > 1.5
    assert abs(mean_t(without)) < 1.5


def test_cohort_rejects_bad_knobs_and_existing_cohort(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown cohort knob"):
        make_vae_cohort(tmp_path / "x", size="tiny", n_subjects=4, effect_size=2)
    with pytest.raises(ConfigError, match="effect_icns: 60"):
        make_vae_cohort(tmp_path / "x", size="tiny", n_subjects=4, effect_icns=[3, 60])
    with pytest.raises(ConfigError, match="size"):
        make_vae_cohort(tmp_path / "x", size="huge")
    manifest = make_vae_cohort(tmp_path / "y", size="tiny", n_subjects=4, progress=False, icn_effect_sd=3.0,
                               gm_regions=["hippocampus"])
    gt = json.loads((manifest.parent / "ground_truth.json").read_text())
    assert gt["knobs"]["icn_effect_sd"] == 3.0 and list(gt["gm_effect_regions"]) == ["hippocampus"]
    with pytest.raises(InputError, match="already holds a cohort"):
        make_vae_cohort(tmp_path / "y", size="tiny", n_subjects=4, progress=False)


def test_cohort_cli(tmp_path, capsys) -> None:
    from fusion.cli import main

    args = ["cohort-vae", "--out", str(tmp_path / "c"), "--size", "tiny", "--n-subjects", "4", "--no-effect",
            "--seed", "3", "--no-progress"]
    assert main(args) == 0
    gt = json.loads((tmp_path / "c" / "ground_truth.json").read_text())
    assert gt["effect"] is False and gt["seed"] == 3 and gt["n_subjects"] == 4
    assert len(pd.read_csv(tmp_path / "c" / "manifest.csv")) == 4
    capsys.readouterr()
    assert main(args) == 2
    assert "already holds a cohort" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


@pytest.mark.parametrize("sigma_vox", [0.0, 0.5, 1.0])
def test_smooth_noise_has_unit_sd(sigma_vox: float) -> None:
    """``noise_sd`` means what it says: the smoothed noise is rescaled to unit variance."""
    from fusion.data.volume_design import smooth_noise

    noise = smooth_noise(np.random.default_rng(1), (48, 48, 48), sigma_vox)
    assert abs(noise[6:-6, 6:-6, 6:-6].std() - 1.0) < 0.03
    if sigma_vox:  # and it is smooth: neighbours correlate as the 1D kernel k predicts, sum k_i k_i+1 / sum k_i^2
        from scipy.ndimage import gaussian_filter1d

        delta = np.zeros(41)
        delta[20] = 1.0
        k = gaussian_filter1d(delta, sigma_vox, mode="constant")
        expected = np.sum(k[:-1] * k[1:]) / np.sum(k**2)
        r = np.corrcoef(noise[:-1].ravel(), noise[1:].ravel())[0, 1]
        assert abs(r - expected) < 0.03
