"""Data path: prepared ``.npy`` against gzipped NIfTI, and loader throughput against training."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from bench.common import Sizes, check_target, median, record
from fusion.data.dataset import PreparedVolumes
from fusion.data.prepare import resample_volume


def read_niigz_subject(icn_path: Path, smri_path: Path) -> tuple[np.ndarray, float]:
    """The 54 max-abs-scaled volumes of one subject straight from its gzipped NIfTI files.

    The sMRI lies on its own grid and is resampled onto the ICN grid (as ``fusion prepare`` does).

    Returns:
        ``((54, X, Y, Z) float32, seconds spent resampling the sMRI)``.
    """
    icn_img = nib.load(icn_path)
    icn = np.asarray(icn_img.get_fdata(dtype=np.float32))
    out = np.empty((icn.shape[-1] + 1, *icn.shape[:3]), dtype=np.float32)
    out[:-1] = np.moveaxis(icn, -1, 0)
    smri_img = nib.load(smri_path)
    smri = np.asarray(smri_img.get_fdata(dtype=np.float32)).reshape(smri_img.shape[:3])
    start = time.perf_counter()
    out[-1] = resample_volume(smri, smri_img.affine, icn.shape[:3], icn_img.affine)
    resample_s = time.perf_counter() - start
    peak = np.abs(out).reshape(len(out), -1).max(axis=1)
    out /= peak[:, None, None, None]
    return out, resample_s


def prepared_vs_niigz(manifest: Path, prepared: Path, sizes: Sizes, log=print) -> dict[str, Any]:
    """Subjects per second from the prepared format / from gzipped NIfTI, interleaved passes.

    Both read every subject of the cohort once per pass, files in the page cache after the first
    pass (the first pass of each is warm-up). The prepared side is ``PreparedVolumes(cache="none")``
    item access: memory map, copy to a float32 tensor.
    """
    table = pd.read_csv(manifest)
    root = manifest.parent
    paths = [(root / i, root / s) for i, s in zip(table["icn_path"], table["smri_path"])]
    dataset = PreparedVolumes(prepared, cache="none")
    n = len(paths)
    nii_rates, nii_noresample_rates, npy_rates = [], [], []
    for rep in range(sizes.repeats + 1):
        start, resample_s = time.perf_counter(), 0.0
        for icn, smri in paths:
            resample_s += read_niigz_subject(icn, smri)[1]
        nii_s = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(len(dataset)):
            dataset[i]["volumes"].sum()  # touch every voxel
        npy_s = time.perf_counter() - start
        if rep:
            nii_rates.append(n / nii_s)
            nii_noresample_rates.append(n / (nii_s - resample_s))
            npy_rates.append(n / npy_s)
    target = ">= 5"
    p, g = median(npy_rates), median(nii_rates)
    log(f"  prepared_vs_niigz: prepared {p:.1f} subj/s, nii.gz {g:.2f} subj/s")
    return record(p, g, numerator_label="prepared .npy subj/s", denominator_label="nii.gz subj/s",
                  target=target, met=check_target(p / g, target),
                  note="nii.gz side includes resampling the sMRI onto the ICN grid",
                  niigz_without_resampling_subj_per_s=median(nii_noresample_rates),
                  ratio_without_resampling=p / median(nii_noresample_rates),
                  n_subjects=n, grid=list(dataset.shape))


def loader_throughput(prepared: Path, batch_size: int, num_workers: int, passes: int) -> float:
    """Subjects per second a DataLoader delivers over ``PreparedVolumes(cache="none")`` (median pass)."""
    dataset = PreparedVolumes(prepared, cache="none")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(0))
    rates = []
    for rep in range(passes + 1):
        start, n = time.perf_counter(), 0
        for batch in loader:
            n += len(batch["volumes"])
        if rep:
            rates.append(n / (time.perf_counter() - start))
    return median(rates)


def loader_vs_train(cfg, prepared: Path, sizes: Sizes, log=print) -> dict[str, Any]:
    """DataLoader subjects/s / training subjects/s (fwd + bwd + step) at the reduced config."""
    from bench.training import training_consumption

    num_workers = int(cfg.stage.num_workers)
    loader_rates, train_rates = [], []
    for _ in range(sizes.repeats):  # interleaved
        loader_rates.append(loader_throughput(prepared, sizes.batch_size, num_workers, passes=1))
        train_rates.append(training_consumption(cfg, prepared, sizes, n_steps=3))
    target = ">= 2"
    a, b = median(loader_rates), median(train_rates)
    log(f"  loader_vs_train: loader {a:.1f} subj/s, training {b:.2f} subj/s")
    return record(a, b, numerator_label="DataLoader subj/s", denominator_label="training subj/s",
                  target=target, met=check_target(a / b, target),
                  note=f"cache=none (memory-mapped reads per batch), num_workers={num_workers}, "
                       f"batch {sizes.batch_size} subject(s) x 54 volumes",
                  grid=list(PreparedVolumes(prepared).shape), model=OmegaConf.to_container(cfg.model))
