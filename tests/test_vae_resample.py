"""``prepare --voxel-size``: a coarser grid in the same world space, checked against analytic images."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from fusion.cli import main
from fusion.data.prepare import prepare_cohort
from fusion.data.resample import target_grid
from fusion.data.testing import folder_digest, write_nifti
from fusion.errors import ConfigError

# The NeuroMark 3 mm grid (LAS, SPM bounding box), shrunk to keep the test fast.
ICN_AFFINE = np.array([[-3.0, 0, 0, 78], [0, 3.0, 0, -112], [0, 0, 3.0, -50], [0, 0, 0, 1]])
ICN_SHAPE = (21, 25, 19)
SMRI_AFFINE = np.array([[2.0, 0, 0, 10], [0, 2.0, 0, -120], [0, 0, 2.0, -60], [0, 0, 0, 1]])   # covers the ICN grid
SMRI_SHAPE = (41, 46, 36)
COEF = np.array([0.5, -1.25, 2.0])
SPOT_MM = np.array([30.0, -70.0, -14.0])   # the centre of a bright spot in ICN 2 (world mm)


def _world(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _cohort(tmp_path, n: int = 4):
    """Subjects whose ICN 1 and sMRI are linear ramps of world position, ICN 2 a Gaussian spot."""
    rows = []
    world = _world(ICN_AFFINE, ICN_SHAPE)
    ramp = world @ COEF + 400.0
    spot = np.exp(-0.5 * np.sum((world - SPOT_MM) ** 2, axis=-1) / 8.0**2)
    smri = _world(SMRI_AFFINE, SMRI_SHAPE) @ COEF + 400.0
    for s in range(n):
        icn = np.stack([ramp * (1 + 0.1 * s), spot * (1 + 0.1 * s)], axis=-1)
        write_nifti(tmp_path / f"s{s}" / "icn.nii", icn, ICN_AFFINE)
        write_nifti(tmp_path / f"s{s}" / "gm.nii", smri, SMRI_AFFINE)
        rows.append({"subject_id": f"s{s}", "label": "patient" if s % 2 else "control",
                     "icn_path": f"s{s}/icn.nii", "smri_path": f"s{s}/gm.nii"})
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def test_target_grid_keeps_origin_and_orientation() -> None:
    shape, affine = target_grid((53, 63, 46), ICN_AFFINE, 6.0)
    assert shape == (27, 32, 23)
    np.testing.assert_allclose(affine[:3, 3], ICN_AFFINE[:3, 3])
    np.testing.assert_allclose(np.diag(affine)[:3], [-6.0, 6.0, 6.0])
    # the last voxel stays inside the input's field of view
    last = affine @ np.array([*(np.array(shape) - 1), 1.0])
    first_in, last_in = ICN_AFFINE[:3, 3], ICN_AFFINE @ np.array([52, 62, 45, 1.0])
    assert np.all(np.minimum(first_in, last_in[:3]) - 1e-9 <= last[:3])
    assert np.all(last[:3] <= np.maximum(first_in, last_in[:3]) + 1e-9)


def test_world_coordinates_survive_prepare(tmp_path) -> None:
    """Values at a voxel of the coarse grid are the input's values at that voxel's MNI position."""
    manifest = _cohort(tmp_path)
    out = tmp_path / "prepared"
    prepare_cohort(manifest, out, n_icn=2, progress=False, voxel_size=6.0)
    meta = json.loads((out / "meta.json").read_text())
    affine = np.asarray(meta["affine"])
    shape = tuple(meta["shape"])
    assert meta["voxel_size"] == 6.0 and meta["input_shape"] == list(ICN_SHAPE)
    assert shape == (11, 13, 10)
    np.testing.assert_allclose(np.diag(affine)[:3], [-6.0, 6.0, 6.0])
    scales = np.load(out / "scales.npy")
    volumes = np.load(out / "s1.npy") * scales[1][:, None, None, None]
    world = _world(affine, shape)
    # a linear function of world position is reproduced exactly by linear interpolation
    np.testing.assert_allclose(volumes[0], (world @ COEF + 400.0) * 1.1, rtol=1e-4)
    np.testing.assert_allclose(volumes[2], world @ COEF + 400.0, rtol=1e-4)   # sMRI: its own grid, same world
    # the spot's peak lies at the same MNI position (within half a coarse voxel)
    peak = np.unravel_index(np.argmax(volumes[1]), shape)
    assert np.linalg.norm(world[peak] - SPOT_MM) <= 3.0 * np.sqrt(3) + 1e-6


def test_prepare_cli_voxel_size(tmp_path) -> None:
    manifest = _cohort(tmp_path, n=2)
    out = tmp_path / "prepared"
    assert main(["prepare", "--manifest", str(manifest), "--out", str(out), "--n-icn", "2",
                 "--voxel-size", "9", "--no-progress"]) == 0
    assert json.loads((out / "meta.json").read_text())["shape"] == [7, 9, 7]
    assert nib.load(str(tmp_path / "s0" / "icn.nii")).shape[:3] == ICN_SHAPE  # inputs untouched


@pytest.mark.parametrize("size, match", [(0, "positive"), (-3, "positive"), (2.0, "finer than the input")])
def test_bad_voxel_size_refused_and_nothing_overwritten(tmp_path, size, match, capsys) -> None:
    manifest = _cohort(tmp_path, n=2)
    out = tmp_path / "prepared"
    prepare_cohort(manifest, out, n_icn=2, progress=False)
    before = folder_digest(out)
    with pytest.raises(ConfigError, match=match):
        prepare_cohort(manifest, out, n_icn=2, progress=False, voxel_size=size)
    assert folder_digest(out) == before
    assert main(["prepare", "--manifest", str(manifest), "--out", str(out), "--n-icn", "2",
                 "--voxel-size", str(size), "--no-progress"]) == 2
    assert "voxel_size" in capsys.readouterr().err
    assert folder_digest(out) == before


def test_runner_checks_data_voxel_size(tmp_path) -> None:
    """``data.voxel_size`` is checked against the prepared folder, not passed to the dataset."""
    from omegaconf import OmegaConf

    from fusion_runners.vae import VAERunner

    manifest = _cohort(tmp_path, n=2)
    prepare_cohort(manifest, tmp_path / "p6", n_icn=2, progress=False, voxel_size=6.0)
    prepare_cohort(manifest, tmp_path / "p3", n_icn=2, progress=False)

    def runner(folder, size):
        data = {"_target_": "fusion.data.dataset.PreparedVolumes", "prepared_dir": str(tmp_path / folder),
                "voxel_size": size}
        return VAERunner(cfg=OmegaConf.create({"logdir": str(tmp_path / "run"), "data": data}))

    assert runner("p6", 6.0).dataset.shape == (11, 13, 10)
    assert runner("p3", None).dataset.shape == ICN_SHAPE
    with pytest.raises(ConfigError, match="prepared at its input grid"):
        _ = runner("p3", 6.0).dataset
    with pytest.raises(ConfigError, match="6.0 mm"):
        _ = runner("p6", 4.0).dataset
