"""The embedded synthetic ICN + sMRI cohort for the multimodal VAE, with planted patient effects.

Built on real templates that ship with nilearn (no download): the MNI152 gray-matter template at
3 mm gives the brain mask and the base of every subject's sMRI gray-matter volume. Each of the 53
NeuroMark ICNs is a sum of smooth Gaussian nodes at MNI sites that match its anatomical label
(caudate, thalamus, superior temporal gyrus, ...), one or two nodes per network, primary node
first. A subject's ICN map is::

    map_k(x) = peak_z * a_k * sum_n w_n G(x; c_n + j_n, sigma_k) + noise_sd * smooth_noise(x)

with amplitude ``a_k ~ N(1, amplitude_sd)``, node weights ``w = (1, secondary_amplitude)``, node
jitter ``j_n ~ N(0, jitter_mm^2 I)`` and unit-variance smooth Gaussian noise, all inside the brain
mask. A subject's gray matter is ``T(x) g (1 + gm_noise * smooth_noise(x))`` with ``T`` the
smoothed template and a global factor ``g`` that falls with age.

Patients (``effect=True``) differ in two ways, both recorded exactly in the ground truth:

- ICNs ``effect_icns``: the last node of each network (the weaker, secondary node for a
  two-node network) loses ``icn_effect_sd * noise_sd`` at its peak (it moves with that subject's
  jitter, so the expected difference is the node blurred by the jitter distribution).
- Gray matter: reduced by the fraction ``gm_reduction`` at the centre of each region in
  ``gm_regions`` (Gaussian profiles, combined by their maximum).

The ICN files are written on the VAE grid (``paper``: the NeuroMark 3 mm grid, 53x63x52;
``small``: 6 mm, 27x32x26; ``tiny``: 12 mm, 14x16x13). The sMRI files are written on a finer,
differently oriented grid (RAS, voxels 1/1.5 of the ICN voxel, covering the template's field of
view), so ``fusion prepare`` has to resample them, as with real data.

Everything is drawn from ``numpy.random.default_rng([seed, stream, subject])``: the same seed gives
the same files; ``effect=False`` gives the same subjects (labels, covariates, noise) with nothing
planted, which is the null cohort used to check that nothing leaks between folds.

This module draws the subjects and writes the files; the grids and MNI sites are in
:mod:`fusion.data.volume_layout`, the knobs and validation variants in :mod:`fusion.data.vae_variants`,
and what is fixed across subjects (mask, templates, nodes) in :mod:`fusion.data.volume_design`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fusion import io
from fusion.data import neuromark
from fusion.data.prepare import resample_volume
from fusion.data.vae_variants import VAECohortKnobs, recorded_knobs
from fusion.data.volume_design import Design, build_design, effect_blob, gaussian, smooth_noise
from fusion.data.volume_layout import DEFAULT_N_SUBJECTS, GM_REGIONS, GRIDS
from fusion.errors import ConfigError, InputError

log = logging.getLogger(__name__)

# Age range of the cohort (years, uniform); the GM age effect is centred on its mean.
AGE_RANGE: tuple[float, float] = (18.0, 60.0)


def _subject(design: Design, rng: np.random.Generator, patient: bool, age: float,
             site: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One subject's ICN maps ``(X, Y, Z, 53)`` and GM volume (sMRI grid), both float32.

    The random draws are the same whatever ``patient`` is, so effect / no-effect cohorts share
    their subjects.
    """
    kn = design.knobs
    amplitude = 1.0 + kn.amplitude_sd * rng.standard_normal(neuromark.N_ICN)
    jitter = kn.jitter_mm * rng.standard_normal(design.node_centre.shape)
    noise = smooth_noise(rng, design.shape, design.noise_sigma_vox, neuromark.N_ICN)
    gm_global = 1.0 - kn.gm_age_slope * (age - np.mean(AGE_RANGE)) + kn.gm_global_sd * rng.standard_normal()
    gm_noise = smooth_noise(rng, design.smri_shape, design.gm_noise_sigma_vox)

    maps = noise
    maps *= np.float32(kn.noise_sd)
    for n, k in enumerate(design.node_icn):
        blob = gaussian(design.axes, design.node_centre[n] + jitter[n], design.node_sigma[n])
        value = kn.peak_z * amplitude[k] * design.node_weight[n]
        if patient and design.effect_node.get(int(k)) == n:
            if kn.effect_kind == "node":
                value -= kn.icn_effect_sd * kn.noise_sd
            else:
                centre, width = effect_blob(design, n)
                loss = gaussian(design.axes, centre + jitter[n], width)
                maps[..., k] -= np.float32(kn.icn_effect_sd * kn.noise_sd) * loss.astype(np.float32)
        maps[..., k] += np.float32(value) * blob.astype(np.float32)
    if site is not None and design.site_patterns is not None:
        maps += design.site_patterns[site][..., None]
    maps *= design.mask[..., None]

    gm = design.gm_base * gm_global * (1.0 + kn.gm_noise * gm_noise)
    if site is not None and design.site_gm is not None:
        gm = gm * design.site_gm[site]
    if patient and kn.gm_regions:
        gm = gm * (1.0 - kn.gm_reduction * design.gm_profile)
    return maps, gm.astype(np.float32)


def expected_effect(design: Design) -> np.ndarray:
    """Expected patient-minus-control difference ``(X, Y, Z, 54)`` on the ICN grid (raw units).

    ICN: minus the effect node's peak loss times the node blurred by its jitter,
    ``(s^2/(s^2+t^2))^(3/2) exp(-|x-c|^2 / 2(s^2+t^2))``, inside the brain mask. sMRI: the planted
    GM loss resampled to the ICN grid exactly as ``prepare`` resamples the sMRI (linear), so it is
    the expectation of the resampled difference.
    """
    kn = design.knobs
    truth = np.zeros(design.shape + (neuromark.N_MODALITIES,), dtype=np.float64)
    tau2 = kn.jitter_mm**2
    for k, n in design.effect_node.items():
        centre, width = effect_blob(design, n)
        s2 = width**2
        blurred = (s2 / (s2 + tau2)) ** 1.5 * gaussian(design.axes, centre, np.sqrt(s2 + tau2))
        truth[..., k] = -kn.icn_effect_sd * kn.noise_sd * blurred * design.mask
    if kn.gm_regions and kn.gm_reduction > 0:
        loss = -kn.gm_reduction * design.gm_profile * design.gm_base
        truth[..., neuromark.SMRI_INDEX] = resample_volume(loss, design.smri_affine, design.shape, design.affine)
    return truth


def _save_int16_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Atomically write ``data`` as a gzipped NIfTI stored as int16 with a scale factor.

    int16 + ``scl_slope`` (as many scanners and SPM write) keeps ~1e-4 relative precision, and is
    half the size and three times faster to compress than float32.
    """
    import nibabel as nib

    image = nib.Nifti1Image(np.asfortranarray(data), np.asarray(affine, dtype=float))
    image.set_data_dtype(np.int16)
    with io.atomic_path(path, suffix=".nii.gz") as tmp:
        nib.save(image, tmp)


def _assign_sites(labels: np.ndarray, knobs: VAECohortKnobs, seed: int) -> np.ndarray | None:
    """Site index per subject (own random stream; None without sites). With correlation ``c``,
    a patient goes to the last site and a control to the first with probability ``(1 + c) / 2``,
    otherwise to a uniformly drawn site."""
    if knobs.n_sites == 0:
        return None
    rng = np.random.default_rng([seed, 2])
    n_sites = int(knobs.n_sites)
    sites = rng.integers(0, n_sites, len(labels))
    if knobs.site_diagnosis_correlation > 0:
        biased = rng.random(len(labels)) < knobs.site_diagnosis_correlation
        sites[biased] = np.where(labels[biased] == 1, n_sites - 1, 0)
    return sites


def make_vae_cohort(
    out_dir: str | Path,
    size: str = "small",
    n_subjects: int | None = None,
    effect: bool = True,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    **knobs: Any,
) -> Path:
    """Write the synthetic VAE cohort (NIfTI files, manifest and ground truth) into ``out_dir``.

    Layout: ``sub-XXXX/icn.nii.gz`` (4D, ``(X, Y, Z, 53)``), ``sub-XXXX/smri_gm.nii.gz`` (3D, on
    its own finer RAS grid), ``manifest.csv`` (``subject_id,label,icn_path,smri_path,age,sex``),
    ``ground_truth.json`` and ``ground_truth_effect.nii.gz`` (``(X, Y, Z, 54)``, raw units).
    The manifest is written last, so its presence means the cohort is complete.

    Args:
        out_dir: destination folder.
        size: ``"paper"`` (53x63x52, 3 mm), ``"small"`` (27x32x26, 6 mm) or ``"tiny"``
            (14x16x13, 12 mm).
        n_subjects: number of subjects (default 200 / 120 / 24 for paper / small / tiny).
        effect: plant the patient effects; ``False`` gives the same subjects with none.
        seed: seed of every random draw.
        overwrite: allow writing into a folder that already holds a cohort manifest.
        progress: show a progress bar.
        **knobs: any field of :class:`VAECohortKnobs` (e.g. ``icn_effect_sd=1.0``).

    Returns:
        Path of ``manifest.csv``.
    """
    if size not in GRIDS:
        raise ConfigError(f"size: unknown cohort size {size!r}; expected one of {sorted(GRIDS)}")
    names = {f.name for f in dataclasses.fields(VAECohortKnobs)}
    unknown = sorted(set(knobs) - names)
    if unknown:
        raise ConfigError(f"unknown cohort knob(s) {unknown}; expected some of {sorted(names)}")
    if "effect_icns" in knobs:
        knobs["effect_icns"] = tuple(int(k) for k in knobs["effect_icns"])
    if "gm_regions" in knobs:
        knobs["gm_regions"] = tuple(knobs["gm_regions"])
    kn = VAECohortKnobs(**knobs)
    kn.validate()
    n = DEFAULT_N_SUBJECTS[size] if n_subjects is None else int(n_subjects)
    n_patients = int(round(n * kn.patient_fraction))
    if n_patients < 2 or n - n_patients < 2:
        raise ConfigError(
            f"n_subjects={n} gives {n_patients} patients and {n - n_patients} controls; need >= 2 of each"
        )
    out_dir = Path(out_dir)
    manifest_path = out_dir / "manifest.csv"
    if manifest_path.exists() and not overwrite:
        raise InputError(
            f"{out_dir} already holds a cohort ({manifest_path}); pass overwrite=True (--overwrite) to replace it"
        )

    design = build_design(size, kn, seed)
    cohort_rng = np.random.default_rng([seed, 0])
    labels = np.zeros(n, dtype=int)
    labels[cohort_rng.permutation(n)[:n_patients]] = 1
    sites = _assign_sites(labels, kn, seed)

    rows = []
    max_abs = np.zeros((n, neuromark.N_MODALITIES))
    for s in tqdm(range(n), desc=f"cohort-vae {size}", unit="subject", disable=not progress):
        rng = np.random.default_rng([seed, 1, s])
        age = float(np.round(rng.uniform(*AGE_RANGE), 1))
        sex = "F" if rng.random() < 0.5 else "M"
        maps, gm = _subject(design, rng, patient=effect and labels[s] == 1, age=age,
                            site=None if sites is None else int(sites[s]))
        subject_id = f"sub-{s + 1:04d}"
        icn_rel, smri_rel = f"{subject_id}/icn.nii.gz", f"{subject_id}/smri_gm.nii.gz"
        _save_int16_nifti(out_dir / icn_rel, maps, design.affine)
        _save_int16_nifti(out_dir / smri_rel, gm, design.smri_affine)
        max_abs[s, :-1] = np.abs(maps).reshape(-1, neuromark.N_ICN).max(axis=0)
        max_abs[s, -1] = np.abs(gm).max()
        rows.append({"subject_id": subject_id, "label": "patient" if labels[s] else "control",
                     "icn_path": icn_rel, "smri_path": smri_rel, "age": age, "sex": sex,
                     **({} if sites is None else {"site": f"site{int(sites[s]) + 1}"})})

    truth = expected_effect(design) if effect else np.zeros(design.shape + (neuromark.N_MODALITIES,))
    io.save_nifti(out_dir / "ground_truth_effect.nii.gz", truth, design.affine)
    icn_mods = sorted(design.effect_node) if effect and kn.icn_effect_sd > 0 else []
    gm_on = bool(effect and kn.gm_regions and kn.gm_reduction > 0)
    io.write_json(out_dir / "ground_truth.json", {
        "kind": "vae",
        "effect": bool(effect),
        "icn_effect_modalities": icn_mods,
        "gm_effect": gm_on,
        "effect_modalities": icn_mods + ([neuromark.SMRI_INDEX] if gm_on else []),
        "effect_modality_names": [neuromark.modality_names()[k]
                                  for k in icn_mods + ([neuromark.SMRI_INDEX] if gm_on else [])],
        "effect_map": "ground_truth_effect.nii.gz",
        "effect_map_units": "raw values of the input files (before max-abs scaling); patient minus control",
        "icn_effect_sites_mm": {str(k): design.node_centre[n].tolist()
                                for k, n in sorted(design.effect_node.items())} if effect else {},
        "gm_effect_regions": {name: [list(c) for c in GM_REGIONS[name]] for name in kn.gm_regions} if gm_on else {},
        "mean_max_abs": max_abs.mean(axis=0).tolist(),
        "seed": int(seed),
        "size": size,
        "n_subjects": n,
        "n_patients": int(labels.sum()),
        "n_controls": int(n - labels.sum()),
        "shape": list(design.shape),
        "affine": design.affine.tolist(),
        "smri_shape": list(design.smri_shape),
        "smri_affine": design.smri_affine.tolist(),
        "knobs": recorded_knobs(kn),
    })
    io.write_csv(manifest_path, pd.DataFrame(rows))
    log.info("wrote %d subjects (%d patients) to %s", n, int(labels.sum()), out_dir)
    return manifest_path
