"""Turn a VAE manifest into prepared subject arrays: one ``(54, X, Y, Z)`` ``.npy`` per subject.

``prepare_cohort`` checks every file before it publishes anything: readable NIfTI, the expected
number of ICN components, one ICN grid for all subjects, finite values, no all-zero volume, an
sMRI that overlaps the ICN grid. It resamples each sMRI to the ICN grid (linear, from the two
affines), divides each of the 54 volumes by its own maximum absolute value (so each lies in
[-1, 1] with max |v| = 1), and writes::

    out_dir/<subject_id>.npy   (54, X, Y, Z) float32 or float16: 53 ICNs, then sMRI GM
    out_dir/index.csv          subject_id,label,path[,covariates...]
    out_dir/meta.json          shape, affine, modality_names, modality_domains, dtype, manifest, ...
    out_dir/scales.npy         (n_subjects, 54) the divisor of each volume (raw max |value|)
    out_dir/ground_truth.json, ground_truth_effect.nii.gz   copied when beside the manifest

All of it is written into a staging folder beside ``out_dir`` and swapped in at the end, so a
failure leaves an earlier ``out_dir`` exactly as it was.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm.auto import tqdm

from fusion import __version__, io
from fusion.data import neuromark, resample
from fusion.data.integrity import verify_manifest_files
from fusion.data.manifest import (
    MAX_REPORTED,
    ManifestEntry,
    VAEManifest,
    raise_collected,
    read_manifest,
)
from fusion.errors import ConfigError, InputError

if TYPE_CHECKING:
    from nibabel.spatialimages import SpatialImage

log = logging.getLogger(__name__)

DTYPES: tuple[str, ...] = ("float32", "float16")
GROUND_TRUTH_FILES: tuple[str, ...] = ("ground_truth.json", "ground_truth_effect.nii.gz")
AFFINE_ATOL_MM: float = 1e-3


def resample_volume(
    data: np.ndarray,
    src_affine: np.ndarray,
    dst_shape: tuple[int, ...],
    dst_affine: np.ndarray,
    order: int = 1,
) -> np.ndarray:
    """Resample a 3D volume onto another grid of the same world space.

    Each target voxel ``o`` takes the source value at voxel ``inv(src_affine) @ dst_affine @ o``
    (spline of ``order``; 1 = trilinear), 0 outside the source. Works for any pair of affines
    (flips, different voxel sizes, oblique).

    Args:
        data: source volume ``(X, Y, Z)``.
        src_affine: ``(4, 4)`` voxel-to-world (mm) of ``data``.
        dst_shape: target grid shape ``(X', Y', Z')``.
        dst_affine: ``(4, 4)`` voxel-to-world (mm) of the target grid.
        order: interpolation order (0 nearest, 1 linear, 3 cubic).

    Returns:
        float64 array of shape ``dst_shape``.
    """
    mapping = np.linalg.inv(np.asarray(src_affine, dtype=float)) @ np.asarray(dst_affine, dtype=float)
    return ndimage.affine_transform(
        np.asarray(data, dtype=np.float64), mapping[:3, :3], offset=mapping[:3, 3],
        output_shape=tuple(int(s) for s in dst_shape), order=order, mode="constant", cval=0.0,
    )


def _load(path: Path, what: str, entry: ManifestEntry):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as err:  # nibabel raises many kinds for a bad header
        raise InputError(
            f"subject {entry.subject_id!r}: {what} file {path} is not a readable NIfTI ({type(err).__name__}: {err})"
        ) from err


def _header_problems(image, path: Path, what: str, where: str) -> list[str]:
    """A stored data type that is not a real number, or an affine that is not invertible."""
    problems = []
    dtype = np.dtype(image.get_data_dtype())
    if dtype.fields is not None or dtype.kind not in "iuf":
        problems.append(f"{where}: {what} file {path} stores {dtype} values; expected real numbers (integer or float)")
    affine = np.asarray(image.affine, dtype=float)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        problems.append(f"{where}: {what} file {path} has a singular or non-finite affine "
                        f"{np.round(affine[:3], 3).tolist()}; expected an invertible voxel-to-world matrix "
                        "(check its sform/qform)")
    return problems


def _check_headers(manifest: VAEManifest, n_icn: int) -> tuple[tuple[int, int, int], np.ndarray]:
    """Check every header (cheap): ICN 4D with ``n_icn`` components on one grid, sMRI 3D, both
    with real-valued data and an invertible affine.

    Returns:
        The ICN grid: spatial shape and affine.
    """
    problems: list[str] = []
    reference: tuple[tuple[int, ...], np.ndarray, str] | None = None
    for entry in manifest.entries:
        where = f"subject {entry.subject_id!r} (manifest line {entry.line})"
        try:
            icn = _load(entry.icn_path, "ICN", entry)
        except InputError as err:
            problems.append(str(err))
        else:
            shape = tuple(int(s) for s in icn.shape)
            header = _header_problems(icn, entry.icn_path, "ICN", where)
            problems += header
            if header:
                continue  # its grid cannot be compared; the sMRI of a rejected subject is not read
            if len(shape) != 4:
                problems.append(f"{where}: ICN file {entry.icn_path} has shape {shape}; expected 4D (X, Y, Z, {n_icn})")
            elif shape[3] != n_icn:
                problems.append(f"{where}: ICN file {entry.icn_path} has {shape[3]} components (shape {shape}); "
                                f"expected {n_icn}")
            else:
                affine = np.asarray(icn.affine, dtype=float)
                if reference is None:
                    reference = (shape[:3], affine, entry.subject_id)
                elif shape[:3] != reference[0] or not np.allclose(affine, reference[1], atol=AFFINE_ATOL_MM):
                    problems.append(
                        f"{where}: ICN file {entry.icn_path} is on a different grid (shape {shape[:3]}, "
                        f"affine {np.round(affine[:3], 3).tolist()}); expected the grid of subject "
                        f"{reference[2]!r} (shape {reference[0]}, affine {np.round(reference[1][:3], 3).tolist()})")
        try:
            smri = _load(entry.smri_path, "sMRI", entry)
        except InputError as err:
            problems.append(str(err))
        else:
            shape = tuple(int(s) for s in smri.shape)
            problems += _header_problems(smri, entry.smri_path, "sMRI", where)
            if not (len(shape) == 3 or (len(shape) > 3 and all(s == 1 for s in shape[3:]))):
                problems.append(f"{where}: sMRI file {entry.smri_path} has shape {shape}; expected a 3D volume")
    raise_collected(problems, f"manifest {manifest.path}")
    assert reference is not None
    return cast("tuple[int, int, int]", reference[0]), reference[1]  # shape[:3] of a 4D ICN file


def _volume_problems(data: np.ndarray, path: Path, entry: ManifestEntry, names: list[str], what: str) -> list[str]:
    """Non-finite values and all-zero volumes in ``data`` ``(n, X, Y, Z)``."""
    problems = []
    where = f"subject {entry.subject_id!r} (manifest line {entry.line})"
    flat = data.reshape(data.shape[0], -1)
    bad = ~np.isfinite(flat)
    for k in np.flatnonzero(bad.any(axis=1)):
        label = f"component {k + 1} ({names[k]})" if data.shape[0] > 1 else "volume"
        problems.append(f"{where}: {what} file {path} {label} has {int(bad[k].sum())} non-finite value(s) (NaN/Inf); "
                        "expected finite values")
    finite = np.where(bad, 1.0, flat)
    for k in np.flatnonzero(~np.any(finite != 0, axis=1)):
        label = f"component {k + 1} ({names[k]})" if data.shape[0] > 1 else "volume"
        problems.append(f"{where}: {what} file {path} {label} is all zeros; expected a non-zero volume "
                        "(max-abs scaling divides by its maximum)")
    return problems


def _read_subject(
    entry: ManifestEntry, n_icn: int, shape: tuple[int, int, int], affine: np.ndarray, names: list[str]
) -> tuple[np.ndarray | None, list[str]]:
    """Read, check, resample one subject -> raw ``(n_icn + 1, X, Y, Z)`` float32, or its problems."""
    where = f"subject {entry.subject_id!r} (manifest line {entry.line})"
    problems: list[str] = []
    out = np.empty((n_icn + 1,) + tuple(shape), dtype=np.float32)
    try:
        icn = np.asarray(_load(entry.icn_path, "ICN", entry).get_fdata(dtype=np.float32))
    except Exception as err:
        return None, [f"{where}: ICN file {entry.icn_path} cannot be read ({type(err).__name__}: {err}); "
                      "expected a complete NIfTI (truncated or corrupt file?)"]
    out[:n_icn] = np.moveaxis(icn, -1, 0)
    del icn
    problems += _volume_problems(out[:n_icn], entry.icn_path, entry, names, "ICN")
    try:
        image = _load(entry.smri_path, "sMRI", entry)
        smri = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as err:
        return None, problems + [f"{where}: sMRI file {entry.smri_path} cannot be read ({type(err).__name__}: {err}); "
                                 "expected a complete NIfTI (truncated or corrupt file?)"]
    smri = smri.reshape(smri.shape[:3])
    smri_problems = _volume_problems(smri[None], entry.smri_path, entry, names[-1:], "sMRI")
    if not smri_problems:
        out[n_icn] = resample_volume(smri, image.affine, shape, affine)
        if not np.any(out[n_icn] != 0):
            smri_problems.append(f"{where}: sMRI file {entry.smri_path} does not overlap the ICN grid (all zero after "
                                 "resampling); expected both images in the same world space (check its affine)")
    return (None if problems or smri_problems else out), problems + smri_problems


def _check_out_dir(out_dir: Path, manifest: VAEManifest) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(
            f"output {out_dir} exists and is not a folder; expected a new folder or an earlier prepared one"
        )
    probe = out_dir.parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(f"output folder {out_dir} cannot be created: {probe} is a file; choose another output folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"output folder {out_dir} cannot be written: no write permission in {probe}; "
                         "choose another output folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "meta.json").is_file():
        raise InputError(f"output folder {out_dir} is not empty and is not a prepared folder (no meta.json); "
                         "refusing to replace it: choose a new folder")
    for entry in manifest.entries[:1]:
        if out_dir.resolve() in entry.icn_path.resolve().parents:
            raise InputError(f"output folder {out_dir} contains the input file {entry.icn_path}; choose another folder")


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``staging`` (two renames; the old folder is restored on failure)."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(out_dir, old)
    try:
        os.replace(staging, out_dir)
    except BaseException:
        os.replace(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def prepare_cohort(
    manifest: str | Path,
    out_dir: str | Path,
    dtype: str = "float32",
    n_icn: int = neuromark.N_ICN,
    n_splits: int | None = None,
    progress: bool = True,
    voxel_size: float | None = None,
) -> Path:
    """Validate a VAE manifest and its files, then write the prepared folder.

    Args:
        manifest: manifest CSV (``subject_id,label,icn_path,smri_path[,covariates...]``).
        out_dir: prepared folder to write; an earlier prepared folder there is replaced only
            when everything succeeded.
        dtype: ``"float32"`` or ``"float16"`` for the subject arrays.
        n_icn: expected number of ICN components per subject (NeuroMark: 53).
        n_splits: when given, also check that each class has at least this many subjects, so
            that ``n_splits``-fold stratified cross-validation can run.
        progress: show a progress bar.
        voxel_size: when given, every volume (and the ground-truth effect map) is resampled onto
            an isotropic grid of this voxel size (mm) in the same world space
            (:mod:`fusion.data.resample`); must be positive and not finer than the ICN grid.

    Returns:
        Path of ``out_dir/index.csv``.

    Raises:
        InputError: naming the subject, the file or field, and what was expected.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype: {dtype!r} is not supported; expected one of {list(DTYPES)}")
    if int(n_icn) < 1:
        raise ConfigError(f"n_icn must be >= 1, got {n_icn}")
    out_dir = Path(out_dir)
    table = read_manifest(manifest)
    _check_out_dir(out_dir, table)
    if n_splits is not None:
        from fusion.data.folds import check_class_counts

        check_class_counts(table.labels, n_splits, where=f"manifest {table.path}")
    # Every compressed file decompressed in full (gzip CRC32 + length) before a header is trusted:
    # nibabel reads only what the image needs and would take a corrupt voxel or a cut trailer.
    verify_manifest_files(table, progress=progress)
    shape, affine = _check_headers(table, n_icn)
    names = neuromark.generic_modality_names(n_icn)
    input_grid = (shape, affine)
    if voxel_size is not None:  # the ICN grid stays the reading grid; volumes are resampled after
        shape, affine = resample.target_grid(shape, affine, voxel_size)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    try:
        problems: list[str] = []
        scales = np.zeros((len(table), n_icn + 1))
        for i, entry in enumerate(tqdm(table.entries, desc="prepare", unit="subject", disable=not progress)):
            volumes, found = _read_subject(entry, n_icn, input_grid[0], input_grid[1], names)
            problems += found
            if len(problems) >= MAX_REPORTED:
                problems.append(f"(stopped reading after subject {entry.subject_id!r})")
                break
            if volumes is None:
                continue
            if voxel_size is not None:
                volumes = resample.resample_stack(volumes, input_grid[1], shape, affine)
            scales[i] = np.abs(volumes.reshape(n_icn + 1, -1)).max(axis=1)
            volumes /= scales[i].astype(np.float32)[:, None, None, None]
            io.save_npy(staging / f"{entry.subject_id}.npy", volumes.astype(dtype, copy=False))
        raise_collected(problems, f"manifest {table.path}")

        index = pd.DataFrame({
            "subject_id": table.subject_ids,
            "label": table.labels,
            "path": [f"{sid}.npy" for sid in table.subject_ids],
        })
        covariates = table.covariates()
        for column in covariates.columns:
            if column not in index.columns:
                index[column] = covariates[column].to_numpy()
        io.write_csv(staging / "index.csv", index)
        io.save_npy(staging / "scales.npy", scales)
        copied = _copy_ground_truth(table.path.parent, staging, shape, affine,
                                    resample_from=input_grid[1] if voxel_size is not None else None)
        labels = table.labels
        io.write_json(staging / "meta.json", {
            "shape": list(shape),
            "array_shape": [n_icn + 1, *shape],
            "affine": np.asarray(affine).tolist(),
            "n_modalities": n_icn + 1,
            "n_icn": int(n_icn),
            "modality_names": names,
            "modality_domains": neuromark.generic_modality_domains(n_icn),
            "dtype": dtype,
            "manifest": str(table.path),
            "n_subjects": len(table),
            "n_patients": int(labels.sum()),
            "n_controls": int(len(labels) - labels.sum()),
            "scaling": "each volume divided by its maximum absolute value (raw divisors in scales.npy)",
            "scales": "scales.npy",
            "smri_resampling": "trilinear (scipy.ndimage.affine_transform, order 1) onto the ICN grid, 0 outside",
            "ground_truth": copied,
            "voxel_size": None if voxel_size is None else float(voxel_size),
            "input_shape": list(input_grid[0]),
            "input_affine": np.asarray(input_grid[1]).tolist(),
            "resampling": None if voxel_size is None
            else f"ICN grid -> {float(voxel_size):g} mm isotropic: {resample.RESAMPLING}",
            "fusion_version": __version__,
        })
        _swap_into_place(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("prepared %d subjects into %s", len(table), out_dir)
    return out_dir / "index.csv"


def _copy_ground_truth(source: Path, staging: Path, shape: tuple[int, ...], affine: np.ndarray,
                       resample_from: np.ndarray | None = None) -> list[str]:
    """Copy the embedded cohort's ground-truth files; warn when the effect map's grid differs.

    With ``resample_from`` (the ICN grid's affine) the effect map is resampled onto ``(shape,
    affine)`` as the volumes were, instead of copied."""
    copied = []
    for name in GROUND_TRUTH_FILES:
        src = source / name
        if not src.is_file():
            continue
        if resample_from is not None and name.endswith(".nii.gz"):
            import nibabel as nib

            effect_image = cast("SpatialImage", nib.load(str(src)))  # nibabel types load() as FileBasedImage
            effect = np.moveaxis(np.asarray(effect_image.get_fdata(dtype=np.float32)), -1, 0)
            resampled = resample.resample_stack(effect, resample_from, shape, affine)
            io.save_nifti(staging / name, np.moveaxis(resampled, 0, -1), affine)
            copied.append(name)
            continue
        with io.atomic_path(staging / name, suffix=".nii.gz" if name.endswith(".nii.gz") else ".json") as tmp:
            shutil.copyfile(src, tmp)
        copied.append(name)
        if name.endswith(".nii.gz"):
            import nibabel as nib

            image = cast("SpatialImage", nib.load(str(src)))  # nibabel types load() as FileBasedImage
            if tuple(image.shape[:3]) != tuple(shape) or not np.allclose(image.affine, affine, atol=AFFINE_ATOL_MM):
                log.warning("%s is not on the ICN grid of this cohort; recovery scores will be wrong", src)
    return copied
