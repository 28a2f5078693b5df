"""Helpers for tests of the VAE data layer: cached tiny cohorts and hand-made NIfTI files.

Cohorts are generated once per process into a temporary folder (removed at exit) and must be
treated as read-only; copy one (``copy_cohort``) before changing it.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np

_ROOT: Path | None = None


def _root() -> Path:
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="fusion-vae-data-"))
        atexit.register(shutil.rmtree, _ROOT, True)
    return _ROOT


def cached_vae_cohort(n_subjects: int = 24, effect: bool = True, seed: int = 0) -> Path:
    """Manifest of a tiny synthetic cohort (14x16x13 grid), generated once per process."""
    return _cohort(int(n_subjects), bool(effect), int(seed))


def cached_prepared(n_subjects: int = 24, effect: bool = True, seed: int = 0, dtype: str = "float32") -> Path:
    """Prepared folder of :func:`cached_vae_cohort`, made once per process."""
    return _prepared(int(n_subjects), bool(effect), int(seed), str(dtype))


@functools.cache
def _cohort(n_subjects: int, effect: bool, seed: int) -> Path:
    from fusion.data.synthetic_volumes import make_vae_cohort

    out = _root() / f"cohort-n{n_subjects}-e{int(effect)}-s{seed}"
    return make_vae_cohort(out, size="tiny", n_subjects=n_subjects, effect=effect, seed=seed, progress=False)


@functools.cache
def _prepared(n_subjects: int, effect: bool, seed: int, dtype: str) -> Path:
    from fusion.data.prepare import prepare_cohort

    manifest = cached_vae_cohort(n_subjects, effect, seed)
    out = _root() / f"prepared-n{n_subjects}-e{int(effect)}-s{seed}-{dtype}"
    prepare_cohort(manifest, out, dtype=dtype, progress=False)
    return out


def copy_cohort(manifest: Path, dest: Path) -> Path:
    """Copy a cohort folder (without any ``prepared`` folder) to ``dest``; return the new manifest."""
    shutil.copytree(manifest.parent, dest, ignore=shutil.ignore_patterns("prepared*"))
    return dest / manifest.name


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``data`` as float32 NIfTI (NaN/Inf kept), creating folders."""
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.asarray(affine, dtype=float)), str(path))
    return path


def folder_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (relative path -> digest), hidden files included."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
