"""Preparation: shapes, max-abs scaling, sMRI resampling against analytic images, outputs, swap."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from fusion.cli import main
from fusion.data.neuromark import modality_domains, modality_names
from fusion.data.prepare import prepare_cohort, resample_volume
from fusion.data.testing import (
    cached_prepared,
    cached_vae_cohort,
    folder_digest,
    write_nifti,
)
from fusion.errors import InputError


def _ramp(coef: np.ndarray, intercept: float, affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """f(world) = coef . world + intercept sampled at the voxels of a grid."""
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    return world @ coef + intercept


@pytest.mark.parametrize("permute", [False, True])
def test_resample_linear_ramp_matches_analytic(permute: bool) -> None:
    """Trilinear resampling reproduces a linear function exactly inside the source grid."""
    coef, intercept = np.array([0.5, -1.25, 2.0]), 7.0
    src_affine = np.array([[4.0, 0, 0, -60], [0, 4.0, 0, -80], [0, 0, 4.0, -50], [0, 0, 0, 1]])
    if permute:  # source axes stored in another order (y, z, x) and one flipped
        src_affine = np.array([[0, 0, -4.0, 62], [4.0, 0, 0, -80], [0, 4.0, 0, -50], [0, 0, 0, 1]])
    src_shape = (32, 40, 30)
    dst_affine = np.array([[-6.0, 0, 0, 40], [0, 6.0, 0, -60], [0, 0, 6.0, -30], [0, 0, 0, 1]])
    dst_shape = (12, 14, 11)
    source = _ramp(coef, intercept, src_affine, src_shape)
    out = resample_volume(source, src_affine, dst_shape, dst_affine)
    expected = _ramp(coef, intercept, dst_affine, dst_shape)
    # which target voxels fall strictly inside the source grid
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in dst_shape], indexing="ij"), axis=-1).reshape(-1, 3)
    mapping = np.linalg.inv(src_affine) @ dst_affine
    src_ijk = ijk @ mapping[:3, :3].T + mapping[:3, 3]
    inside = np.all((src_ijk >= 0) & (src_ijk <= np.array(src_shape) - 1), axis=1).reshape(dst_shape)
    assert inside.mean() > 0.8
    np.testing.assert_allclose(out[inside], expected[inside], rtol=1e-10, atol=1e-9)
    assert np.all(out[~inside] == 0)


def test_prepared_shapes_scaling_and_files() -> None:
    manifest = cached_vae_cohort(24, True)
    prepared = cached_prepared(24, True)
    meta = json.loads((prepared / "meta.json").read_text())
    index = pd.read_csv(prepared / "index.csv", dtype={"subject_id": str})
    table = pd.read_csv(manifest)
    assert list(index.columns[:3]) == ["subject_id", "label", "path"]
    assert index["subject_id"].tolist() == table["subject_id"].tolist()
    assert index["label"].tolist() == (table["label"] == "patient").astype(int).tolist()
    assert meta["shape"] == [14, 16, 13] and meta["dtype"] == "float32"
    assert meta["modality_names"] == modality_names() and meta["modality_domains"] == modality_domains()
    assert sorted(meta["ground_truth"]) == ["ground_truth.json", "ground_truth_effect.nii.gz"]
    assert (prepared / "ground_truth.json").read_bytes() == (manifest.parent / "ground_truth.json").read_bytes()
    icn_image = nib.load(manifest.parent / table["icn_path"][0])
    np.testing.assert_allclose(meta["affine"], icn_image.affine)
    scales = np.load(prepared / "scales.npy")
    assert scales.shape == (24, 54)

    for i in (0, 7):
        array = np.load(prepared / index["path"][i], allow_pickle=False)
        assert array.shape == (54, 14, 16, 13) and array.dtype == np.float32
        peak = np.abs(array.reshape(54, -1)).max(axis=1)
        assert np.all(peak == 1.0)
        # ICNs: the raw maps divided by their own max |value|
        raw = nib.load(manifest.parent / table["icn_path"][i]).get_fdata()
        raw = np.moveaxis(raw, -1, 0)
        np.testing.assert_allclose(array[:53], raw / np.abs(raw.reshape(53, -1)).max(axis=1)[:, None, None, None],
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(scales[i, :53], np.abs(raw.reshape(53, -1)).max(axis=1), rtol=1e-6)
        # sMRI: resampled from its own grid to the ICN grid, then scaled
        smri = nib.load(manifest.parent / table["smri_path"][i])
        resampled = resample_volume(smri.get_fdata(), smri.affine, (14, 16, 13), icn_image.affine)
        np.testing.assert_allclose(array[53], resampled / np.abs(resampled).max(), rtol=1e-5, atol=1e-6)


def test_prepare_resamples_a_ramp_smri_through_the_cli(tmp_path) -> None:
    """A hand-made cohort whose sMRI is an analytic ramp on another grid, prepared by the CLI."""
    icn_affine = np.array([[-8.0, 0, 0, 40], [0, 8.0, 0, -40], [0, 0, 8.0, -30], [0, 0, 0, 1]])
    smri_affine = np.array([[3.0, 0, 0, -50], [0, 3.0, 0, -50], [0, 0, 3.0, -40], [0, 0, 0, 1]])
    shape, smri_shape = (9, 10, 8), (36, 40, 34)
    coef, intercept = np.array([0.01, 0.02, -0.015]), 3.0
    rng = np.random.default_rng(0)
    rows = []
    for s in range(4):
        write_nifti(tmp_path / f"s{s}_icn.nii", rng.standard_normal(shape + (3,)), icn_affine)
        write_nifti(tmp_path / f"s{s}_gm.nii", _ramp(coef, intercept + s, smri_affine, smri_shape), smri_affine)
        rows.append(f"s{s},{'Patient' if s % 2 else 'CONTROL'},s{s}_icn.nii,{tmp_path / f's{s}_gm.nii'}")
    (tmp_path / "manifest.csv").write_text("subject_id,label,icn_path,smri_path\n" + "\n".join(rows) + "\n")
    rc = main(["prepare", "--manifest", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "prep"),
               "--n-icn", "3", "--dtype", "float16", "--no-progress"])
    assert rc == 0
    scales = np.load(tmp_path / "prep" / "scales.npy")
    for s in range(4):
        array = np.load(tmp_path / "prep" / f"s{s}.npy")
        assert array.shape == (4, 9, 10, 8) and array.dtype == np.float16
        assert np.all(np.abs(array.reshape(4, -1)).max(axis=1) == 1.0)
        expected = _ramp(coef, intercept + s, icn_affine, shape)
        np.testing.assert_allclose(array[3].astype(np.float64) * scales[s, 3], expected, rtol=2e-3)
    index = pd.read_csv(tmp_path / "prep" / "index.csv")
    assert index["label"].tolist() == [0, 1, 0, 1]
    meta = json.loads((tmp_path / "prep" / "meta.json").read_text())
    assert meta["modality_names"] == ["IC01", "IC02", "IC03", "sMRI GM"] and meta["ground_truth"] == []


def test_reprepare_replaces_and_refuses_foreign_folders(tmp_path) -> None:
    manifest = cached_vae_cohort(24, True)
    out = tmp_path / "prepared"
    prepare_cohort(manifest, out, progress=False)
    first = folder_digest(out)
    (out / "stale.txt").write_text("left by an earlier run")
    prepare_cohort(manifest, out, progress=False)
    assert folder_digest(out) == first  # replaced as a whole, same content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]  # no staging or old folders left
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("do not delete")
    with pytest.raises(InputError, match="not a prepared folder"):
        prepare_cohort(manifest, foreign, progress=False)
    assert (foreign / "thesis.tex").read_text() == "do not delete"
