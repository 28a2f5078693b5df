"""The subject-independent design of the synthetic VAE cohort: grids, brain mask, gray-matter
template, node positions and widths, smooth noise, and the profiles of the planted effects.

Built on the MNI152 gray-matter template that ships with nilearn (no download): at 3 mm it gives
the brain mask and the base of every subject's gray-matter volume. Everything here is fixed across
subjects; :mod:`fusion.data.synthetic_volumes` draws the subjects on top of it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from fusion.data import neuromark
from fusion.data.prepare import resample_volume
from fusion.data.vae_variants import VAECohortKnobs
from fusion.data.volume_layout import (
    DOMAIN_NETWORKS,
    DOMAIN_SIGMA_MM,
    GM_REGIONS,
    GRID_ORIGIN_MM,
    GRIDS,
    ICN_SITES,
    SMRI_FOV_MM,
    SMRI_VOXEL_RATIO,
)

__all__ = [
    "Design",
    "axes_mm",
    "brain_mask",
    "build_design",
    "effect_blob",
    "gaussian",
    "grid_affine",
    "smooth_noise",
    "smri_grid",
]


def grid_affine(voxel_mm: float, origin_mm: tuple[float, float, float] = GRID_ORIGIN_MM) -> np.ndarray:
    """Affine of an ICN grid: LAS axes (x decreasing with the first index), NeuroMark's origin."""
    affine = np.diag([-voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = origin_mm
    return affine


def smri_grid(voxel_mm: float) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and affine of the RAS grid the sMRI files are written on.

    Args:
        voxel_mm: voxel size of that grid (mm).
    """
    nx, ny, nz = (int(np.floor((hi - lo) / voxel_mm)) + 1 for lo, hi in SMRI_FOV_MM)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = [lo for lo, _ in SMRI_FOV_MM]
    return (nx, ny, nz), affine


@functools.lru_cache(maxsize=1)
def _mni_gm_template() -> tuple[np.ndarray, np.ndarray]:
    """nilearn's MNI152 gray-matter template at 3 mm (values 0..1) and its affine."""
    from nilearn.datasets import load_mni152_gm_template

    image = load_mni152_gm_template(resolution=3)
    return np.asarray(image.get_fdata(), dtype=np.float64), np.asarray(image.affine, dtype=np.float64)


def _template_on(shape: tuple[int, ...], affine: np.ndarray, fwhm_mm: float) -> np.ndarray:
    """The GM template smoothed (FWHM ``fwhm_mm``, at least half the target voxel) and resampled."""
    data, src_affine = _mni_gm_template()
    src_vox = float(np.abs(src_affine[0, 0]))
    dst_vox = float(np.abs(affine[0, 0]))
    sigma_mm = max(fwhm_mm / np.sqrt(8 * np.log(2)), dst_vox / 2)
    smooth = ndimage.gaussian_filter(data, sigma_mm / src_vox)
    return resample_volume(smooth, src_affine, shape, affine)


def brain_mask(shape: tuple[int, ...], affine: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """Whole-brain mask on a grid: smoothed MNI152 GM > ``threshold``, holes filled."""
    template = _template_on(shape, affine, fwhm_mm=6.0)
    return ndimage.binary_fill_holes(template > threshold)


def axes_mm(shape: tuple[int, ...], affine: np.ndarray) -> list[np.ndarray]:
    """World coordinate (mm) along each axis of an axis-aligned grid."""
    return [affine[a, a] * np.arange(shape[a]) + affine[a, 3] for a in range(3)]


def gaussian(axes: list[np.ndarray], centre: np.ndarray, sigma: float) -> np.ndarray:
    """Unit-peak isotropic Gaussian on an axis-aligned grid (separable outer product)."""
    gx, gy, gz = (np.exp(-0.5 * ((ax - c) / sigma) ** 2) for ax, c in zip(axes, centre))
    return gx[:, None, None] * gy[None, :, None] * gz[None, None, :]


def _smoothed_noise_sd(sigma_vox: float) -> float:
    """SD of unit white noise after a 3D ``gaussian_filter`` of ``sigma_vox`` (away from edges).

    The filter is separable, so the variance is the product over the three axes of the sum of
    the squared 1D kernel weights.
    """
    if sigma_vox <= 0:
        return 1.0
    delta = np.zeros(int(8 * sigma_vox) * 2 + 3)
    delta[delta.size // 2] = 1.0
    kernel = ndimage.gaussian_filter1d(delta, sigma_vox, mode="constant")
    return float(np.sum(kernel**2) ** 1.5)


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: float, n: int | None = None
) -> np.ndarray:
    """Unit-variance smooth Gaussian noise, shape ``shape`` (+ ``(n,)`` when given), float32."""
    full = tuple(shape) + ((n,) if n is not None else ())
    noise = rng.standard_normal(full, dtype=np.float32)
    if sigma_vox > 0:
        sigma = (sigma_vox,) * 3 + ((0.0,) if n is not None else ())
        noise = ndimage.gaussian_filter(noise, sigma, mode="reflect")
        noise /= np.float32(_smoothed_noise_sd(sigma_vox))
    return noise


@dataclass
class Design:
    """Everything fixed across subjects: grids, mask, templates, nodes, effect profiles."""

    size: str
    shape: tuple[int, int, int]
    affine: np.ndarray
    smri_shape: tuple[int, int, int]
    smri_affine: np.ndarray
    mask: np.ndarray
    axes: list[np.ndarray]
    node_icn: np.ndarray            # (n_nodes,) ICN index of each node
    node_centre: np.ndarray         # (n_nodes, 3) mm
    node_weight: np.ndarray         # (n_nodes,)
    node_sigma: np.ndarray          # (n_nodes,) mm
    effect_node: dict[int, int]     # ICN index -> node index carrying the effect
    gm_base: np.ndarray             # smoothed template on the sMRI grid
    gm_profile: np.ndarray          # (smri grid) effect profile in [0, 1]
    noise_sigma_vox: float
    gm_noise_sigma_vox: float
    knobs: VAECohortKnobs = field(repr=False)
    site_patterns: np.ndarray | None = None   # (n_sites, X, Y, Z) additive ICN pattern per site
    site_gm: np.ndarray | None = None         # (n_sites,) multiplicative GM factor per site


def _network_sites(k: int, primary: tuple[float, float, float], n_extra: int) -> list[tuple[float, float, float]]:
    """The ``n_extra`` Power-264 ROIs of ICN ``k``'s domain networks nearest its primary node,
    beyond 10 mm of every node of ``ICN_SITES[k]`` (so that an extra node adds shape)."""
    if n_extra <= 0:
        return []
    from fusion.data.power import network_indices, power_coords

    domain = neuromark.icn_domains()[k]
    rois = np.concatenate([network_indices(net) for net in DOMAIN_NETWORKS[domain]])
    coords = power_coords()[rois]
    own = np.asarray(ICN_SITES[k], dtype=float)
    far = np.min(np.linalg.norm(coords[:, None] - own[None], axis=-1), axis=1) > 10.0
    coords = coords[far]
    order = np.argsort(np.linalg.norm(coords - np.asarray(primary), axis=1), kind="stable")
    return [(float(coords[i, 0]), float(coords[i, 1]), float(coords[i, 2])) for i in order[:n_extra]]


def effect_blob(design: Design, n: int) -> tuple[np.ndarray, float]:
    """Centre (mm, before jitter) and width of the planted loss on node ``n``."""
    kn = design.knobs
    sigma = float(design.node_sigma[n])
    if kn.effect_kind == "subregion":
        centre = design.node_centre[n] + np.array([0.0, kn.effect_offset_scale * sigma, 0.0])
        return centre, kn.effect_sigma_scale * sigma
    return design.node_centre[n], sigma


def build_design(size: str, knobs: VAECohortKnobs, seed: int = 0) -> Design:
    """The design of a cohort of grid ``size`` (a key of ``GRIDS``); ``seed`` draws only the site
    patterns (its own random stream), so the subjects' draws are untouched."""
    shape, voxel = GRIDS[size]
    affine = grid_affine(voxel)
    smri_shape, smri_affine = smri_grid(voxel / SMRI_VOXEL_RATIO)
    domains = neuromark.icn_domains()
    icn: list[int] = []
    centre: list[tuple[float, float, float]] = []
    weight: list[float] = []
    sigma: list[float] = []
    effect_node: dict[int, int] = {}
    for k, sites in enumerate(ICN_SITES):
        for n, site in enumerate(sites):
            if k in knobs.effect_icns and n == len(sites) - 1:
                effect_node[k] = len(icn)
            icn.append(k)
            centre.append(site)
            weight.append(1.0 if n == 0 else knobs.secondary_amplitude)
            sigma.append(DOMAIN_SIGMA_MM[domains[k]] * knobs.icn_sigma_scale)
        for site in _network_sites(k, sites[0], knobs.network_nodes):
            icn.append(k)
            centre.append(site)
            weight.append(knobs.network_node_weight)
            sigma.append(DOMAIN_SIGMA_MM[domains[k]] * knobs.icn_sigma_scale)
    smri_axes = axes_mm(smri_shape, smri_affine)
    profile = np.zeros(smri_shape)
    for name in knobs.gm_regions:
        for site in GM_REGIONS[name]:
            profile = np.maximum(profile, gaussian(smri_axes, np.asarray(site), knobs.gm_region_sigma_mm))
    return Design(
        size=size, shape=shape, affine=affine, smri_shape=smri_shape, smri_affine=smri_affine,
        mask=brain_mask(shape, affine), axes=axes_mm(shape, affine),
        node_icn=np.asarray(icn), node_centre=np.asarray(centre, dtype=float),
        node_weight=np.asarray(weight), node_sigma=np.asarray(sigma), effect_node=effect_node,
        gm_base=_template_on(smri_shape, smri_affine, knobs.gm_fwhm_mm), gm_profile=profile,
        noise_sigma_vox=knobs.noise_sigma_mm / voxel,
        gm_noise_sigma_vox=knobs.gm_noise_sigma_mm / (voxel / SMRI_VOXEL_RATIO), knobs=knobs,
        **_site_effects(shape, voxel, knobs, seed),
    )


def _site_effects(shape: tuple[int, int, int], voxel: float, knobs: VAECohortKnobs, seed: int) -> dict:
    """Per-site ICN patterns (smooth, unit SD times ``site_effect_sd * noise_sd``) and GM factors."""
    if knobs.n_sites == 0:
        return {}
    rng = np.random.default_rng([seed, 3])
    patterns = smooth_noise(rng, shape, knobs.noise_sigma_mm * 2 / voxel, int(knobs.n_sites))
    patterns = np.moveaxis(patterns, -1, 0) * np.float32(knobs.site_effect_sd * knobs.noise_sd)
    return {"site_patterns": patterns, "site_gm": 1.0 + knobs.site_gm_sd * rng.standard_normal(int(knobs.n_sites))}
