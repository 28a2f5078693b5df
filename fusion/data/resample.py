"""Resample prepared volumes onto a coarser isotropic grid that lies in the same world (MNI) space.

A NeuroMark cohort comes on a 3 mm grid (53x63x46); the reduced CPU VAE trains in minutes on a
6 mm grid. :func:`target_grid` keeps the world position of voxel (0, 0, 0) and the direction of
every axis of the input grid and changes only the spacing, so a world coordinate (mm) means the
same place before and after; :func:`resample_stack` does the interpolation with nilearn's
``resample_img`` (linear, 0 outside the input field of view).

Downsampling by interpolation alone does not low-pass the data: ICN maps and smoothed gray matter
are already smooth at the scale of a few voxels, so aliasing is small, and the ``(k, X, Y, Z)``
stack is resampled in one call so that every modality sees exactly the same operation.
"""

from __future__ import annotations

import warnings
from typing import cast

import numpy as np

from fusion.errors import ConfigError

__all__ = ["voxel_sizes", "check_voxel_size", "target_grid", "resample_stack", "RESAMPLING"]

#: how the resampling is described in ``meta.json``
RESAMPLING = "nilearn.image.resample_img, interpolation 'linear', fill 0 outside the input field of view"
_TOL_MM = 1e-6


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) along each of the three axes of a ``(4, 4)`` voxel-to-world affine."""
    return np.linalg.norm(np.asarray(affine, dtype=float)[:3, :3], axis=0)


def check_voxel_size(voxel_size: float, affine: np.ndarray, where: str = "voxel_size") -> float:
    """``voxel_size`` as a float; ConfigError when it is not positive or finer than the input grid.

    Args:
        voxel_size: requested isotropic voxel size (mm).
        affine: the input grid's ``(4, 4)`` affine.
        where: the option's name for the message.
    """
    try:
        size = float(voxel_size)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {voxel_size!r} is not a number; expected a voxel size in mm (e.g. 6)") from err
    if not np.isfinite(size) or size <= 0:
        raise ConfigError(f"{where}: {voxel_size!r} must be a positive voxel size in mm (e.g. 6)")
    native = voxel_sizes(affine)
    if size < native.max() - _TOL_MM:
        raise ConfigError(
            f"{where}: {size:g} mm is finer than the input grid's voxels ({', '.join(f'{v:g}' for v in native)} mm); "
            "resampling only makes a grid coarser: choose a voxel size >= "
            f"{native.max():g} mm, or leave it unset to keep the input grid")
    return size


def target_grid(
    shape: tuple[int, ...], affine: np.ndarray, voxel_size: float
) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of an isotropic ``voxel_size`` grid covering the field of view of a grid.

    The new affine keeps the input's world position of voxel (0, 0, 0) and its axis directions
    (an LAS grid stays LAS); each axis keeps ``floor(extent / voxel_size) + 1`` voxels, where
    ``extent = (n - 1) * input voxel size``, so no new voxel lies outside the input's field of view.

    Args:
        shape: input spatial shape ``(X, Y, Z)``.
        affine: input ``(4, 4)`` voxel-to-world (mm).
        voxel_size: target voxel size (mm), checked by :func:`check_voxel_size`.

    Returns:
        ``(shape, affine)`` of the target grid.
    """
    affine = np.asarray(affine, dtype=float)
    size = check_voxel_size(voxel_size, affine)
    native = voxel_sizes(affine)
    new_shape = tuple(int(np.floor((int(n) - 1) * v / size + 1e-6)) + 1 for n, v in zip(shape[:3], native))
    new_affine = np.eye(4)
    new_affine[:3, :3] = affine[:3, :3] / native * size
    new_affine[:3, 3] = affine[:3, 3]
    return cast("tuple[int, int, int]", new_shape), new_affine  # shape is (X, Y, Z)


def resample_stack(
    volumes: np.ndarray,
    affine: np.ndarray,
    dst_shape: tuple[int, ...],
    dst_affine: np.ndarray,
) -> np.ndarray:
    """Resample ``(k, X, Y, Z)`` volumes from grid ``affine`` onto ``(dst_shape, dst_affine)``.

    Args:
        volumes: ``(k, X, Y, Z)`` (or ``(X, Y, Z)``) values on the input grid.
        affine: ``(4, 4)`` voxel-to-world of the input grid.
        dst_shape: target ``(X', Y', Z')``.
        dst_affine: target ``(4, 4)`` voxel-to-world.

    Returns:
        float32 ``(k, X', Y', Z')`` (or ``(X', Y', Z')``), linear interpolation, 0 outside.
    """
    import nibabel as nib
    from nilearn.image import resample_img

    data = np.asarray(volumes, dtype=np.float32)
    single = data.ndim == 3
    stack = data[None] if single else data
    image = nib.Nifti1Image(np.moveaxis(stack, 0, -1), np.asarray(affine, dtype=float))
    with warnings.catch_warnings():
        # nilearn warns when a stack happens to hold two values (a mask-like effect map, a flat
        # GM map); linear is intended for every map here, so the warning is noise to the user
        warnings.filterwarnings("ignore", message="Resampling binary images", category=UserWarning)
        out = resample_img(image, target_affine=np.asarray(dst_affine, dtype=float),
                           target_shape=tuple(int(s) for s in dst_shape[:3]),
                           interpolation="linear", fill_value=0.0, force_resample=True, copy_header=True)
    result = np.moveaxis(np.asarray(out.get_fdata(dtype=np.float32)), -1, 0)
    return np.ascontiguousarray(result[0] if single else result)
