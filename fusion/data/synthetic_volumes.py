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
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm.auto import tqdm

from fusion import io
from fusion.data import neuromark
from fusion.data.prepare import resample_volume
from fusion.errors import ConfigError, InputError

log = logging.getLogger(__name__)

# Grids of the ICN volumes: (shape, voxel size in mm). The origin is NeuroMark's (LAS orientation).
GRIDS: dict[str, tuple[tuple[int, int, int], float]] = {
    "paper": ((53, 63, 52), 3.0),
    "small": ((27, 32, 26), 6.0),
    "tiny": ((14, 16, 13), 12.0),
    # NeuroMark's own 3 mm grid (SPM bounding box -78..78, -112..76, -50..85 mm): what a user's
    # NeuroMark output is on; prepared for a CPU with `fusion prepare --voxel-size 6`
    "neuromark": ((53, 63, 46), 3.0),
}
GRID_ORIGIN_MM: tuple[float, float, float] = (78.0, -112.0, -50.0)
DEFAULT_N_SUBJECTS: dict[str, int] = {"paper": 200, "small": 120, "tiny": 24, "neuromark": 100}
# The sMRI files are written on a RAS grid covering the MNI152 template's field of view (mm),
# with voxels SMRI_VOXEL_RATIO times smaller than the ICN voxels.
SMRI_FOV_MM: tuple[tuple[float, float], ...] = ((-98.0, 100.0), (-134.0, 100.0), (-72.0, 117.0))
SMRI_VOXEL_RATIO: float = 1.5
# Age range of the cohort (years, uniform); the GM age effect is centred on its mean.
AGE_RANGE: tuple[float, float] = (18.0, 60.0)


def _bi(x: float, y: float, z: float) -> tuple[tuple[float, float, float], ...]:
    """Two mirrored nodes, right hemisphere first (primary)."""
    return ((abs(x), y, z), (-abs(x), y, z))


def _uni(x: float, y: float, z: float) -> tuple[tuple[float, float, float], ...]:
    return ((x, y, z),)


# MNI sites (mm) of the nodes of each ICN, template order, chosen to match NeuroMark's labels.
ICN_SITES: tuple[tuple[tuple[float, float, float], ...], ...] = (
    # SC: caudate, subthalamus/hypothalamus, putamen, caudate, thalamus
    _bi(12, 12, 8), _bi(10, -12, -4), _bi(24, 4, 2), _bi(14, 18, -2), _bi(10, -18, 8),
    # AU: superior temporal gyrus, middle temporal gyrus
    _bi(54, -18, 6), _bi(60, -10, -8),
    # SM
    _bi(42, -26, 54), _uni(-50, -20, 40), _bi(6, -30, 64), _uni(50, -20, 40), _bi(24, -50, 64),
    _bi(10, -18, 72), _bi(56, -4, 28), _bi(30, -44, 56), _bi(36, -34, 62),
    # VI
    _bi(10, -84, 6), _bi(30, -88, 10), _bi(48, -70, 2), _bi(8, -88, 28), _uni(36, -80, 20),
    _bi(30, -60, -12), _bi(40, -80, -8), _bi(14, -70, -6), _bi(50, -62, 10),
    # CC
    _bi(46, -50, 44), _bi(38, 10, 0), _bi(8, 46, 36), _bi(48, 24, 8), _uni(50, 16, 22),
    _bi(38, 38, 28), _bi(40, -60, 46), _uni(-44, -56, 40), _bi(6, 10, 56), _bi(22, 50, 20),
    _bi(32, 20, 50), _bi(26, -24, -12), _uni(-52, -40, 46), _bi(6, -8, 40), _bi(46, 32, -6),
    _bi(40, 52, 6), _bi(30, -12, -20),
    # DM
    _bi(6, -60, 44), _bi(10, -68, 32), _bi(6, 36, 14), _bi(6, -48, 28), _bi(6, 48, 4),
    _bi(8, -54, 58), _bi(6, -36, 36),
    # CB
    _bi(24, -66, -30), _bi(36, -60, -40), _bi(10, -78, -24), _bi(20, -50, -46),
)
# Node width (mm, Gaussian sigma, FWHM = 2.35 sigma) per domain: 12 mm (FWHM 28 mm) for cortical
# networks, narrower subcortical nodes. Narrower nodes (8 mm) are only ~1.3 voxels wide on the
# small 6 mm grid: the reduced VAE then needs ~8 epochs before its latents carry the patient
# effect (10-fold AUC 0.64 after one), with these widths one epoch suffices.
DOMAIN_SIGMA_MM: dict[str, float] = {"SC": 9.0, "AU": 12.0, "SM": 12.0, "VI": 12.0, "CC": 12.0, "DM": 12.0, "CB": 13.5}

# Gray-matter regions available for the patient effect: centres (MNI mm).
GM_REGIONS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "superior_temporal": _bi(54, -20, 4),
    "insula": _bi(38, 8, 0),
    "thalamus": _bi(10, -18, 8),
    "anterior_cingulate": _uni(0, 36, 16),
    "medial_frontal": _uni(0, 52, 24),
    "hippocampus": _bi(26, -22, -12),
    "cerebellum": _bi(24, -64, -32),
}

assert len(ICN_SITES) == neuromark.N_ICN


@dataclass(frozen=True)
class VAECohortKnobs:
    """Every number that shapes the synthetic VAE cohort (ICN values in z units).

    Defaults were chosen on the ``small`` cohort (120 subjects) so that the structured subject
    variability (node amplitude and position) is not buried under voxel noise, as in real ICN maps,
    and the planted effect is found by the reduced VAE of ``conf/vae.yaml`` (one epoch per fold):
    there, ``make vae`` (10 folds) gave AUC 0.892 +- 0.135, and the same subjects with
    ``effect=False`` 0.508 +- 0.101. Lower ``icn_effect_sd`` / ``gm_reduction`` for a harder cohort.

    Args:
        icn_effect_sd: patients' loss at the peak of the effect node, in units of ``noise_sd``
            (noise only; amplitude and jitter add to the subject variability at that voxel).
        gm_reduction: patients' fractional gray-matter loss at the centre of each effect region.
        effect_icns: 0-based indices of the ICNs that carry the effect. The defaults, one per
            domain but DM (putamen SC, superior temporal AU, postcentral SM, lingual VI, middle
            frontal CC, cerebellar CB), are two-node networks whose nodes lie 28-108 mm apart: on a
            midline pair 12 mm apart (as in every DM network) the effect on one node blurs into
            its twin and is barely visible.
        gm_regions: names of the gray-matter effect regions (keys of ``GM_REGIONS``).
        gm_region_sigma_mm: width (Gaussian sigma, mm) of each gray-matter effect region.
        peak_z: value of a primary node's peak (z units).
        secondary_amplitude: weight of a network's second node relative to its first.
        noise_sd: per-voxel SD of the smooth noise in every ICN map (z units).
        noise_sigma_mm: smoothing (Gaussian sigma, mm) of that noise.
        amplitude_sd: subject-to-subject SD of an ICN's overall amplitude (fraction of peak_z).
        jitter_mm: SD, per axis, of a node's position across subjects (mm).
        gm_fwhm_mm: smoothing of the gray-matter template (FWHM, mm; the paper's 6 mm).
        gm_noise: SD of the smooth multiplicative gray-matter noise (fraction).
        gm_noise_sigma_mm: smoothing (Gaussian sigma, mm) of that noise.
        gm_global_sd: SD of a subject's global gray-matter factor (fraction).
        gm_age_slope: fractional gray-matter loss per year of age.
        patient_fraction: fraction of subjects that are patients.
        icn_sigma_scale: factor on every node width (< 1: narrower ICNs than the defaults).
        network_nodes: extra nodes per ICN at the Power-264 ROIs of its domain's networks nearest
            to its primary node (network-shaped ICNs; 0: the one or two nodes of ``ICN_SITES``).
        network_node_weight: weight of each extra node relative to the primary node.
        effect_kind: ``"node"`` (the effect node loses its peak amplitude as a whole) or
            ``"subregion"`` (a narrower blob inside the effect node, off its centre, is weakened:
            a partial weakening of one sub-region of the ICN).
        effect_sigma_scale: width of the weakened sub-region relative to the node (subregion).
        effect_offset_scale: offset of the sub-region from the node centre, +y, in node widths.
        n_sites: acquisition sites (0: no ``site`` column; the default cohort has none).
        site_effect_sd: SD (units of ``noise_sd``) of a smooth additive pattern per site in every ICN.
        site_gm_sd: SD of a global multiplicative gray-matter factor per site (fraction).
        site_diagnosis_correlation: in [0, 1): with 2+ sites, patients go to the last site and
            controls to the first with probability ``(1 + c) / 2`` each (0: sites independent of
            diagnosis), so that a site effect can mimic a patient effect.
    """

    icn_effect_sd: float = 5.0
    gm_reduction: float = 0.12
    effect_icns: tuple[int, ...] = (2, 5, 7, 23, 30, 49)
    gm_regions: tuple[str, ...] = ("superior_temporal", "insula", "thalamus", "anterior_cingulate")
    gm_region_sigma_mm: float = 10.0
    peak_z: float = 8.0
    secondary_amplitude: float = 0.8
    noise_sd: float = 0.5
    noise_sigma_mm: float = 5.0
    amplitude_sd: float = 0.15
    jitter_mm: float = 2.0
    gm_fwhm_mm: float = 6.0
    gm_noise: float = 0.05
    gm_noise_sigma_mm: float = 4.0
    gm_global_sd: float = 0.04
    gm_age_slope: float = 0.003
    patient_fraction: float = 0.5
    icn_sigma_scale: float = 1.0
    network_nodes: int = 0
    network_node_weight: float = 0.5
    effect_kind: str = "node"
    effect_sigma_scale: float = 0.5
    effect_offset_scale: float = 0.75
    n_sites: int = 0
    site_effect_sd: float = 0.0
    site_gm_sd: float = 0.0
    site_diagnosis_correlation: float = 0.0

    def validate(self) -> None:
        """Raise ConfigError naming the first knob that cannot work."""
        for k in self.effect_icns:
            if not 0 <= int(k) < neuromark.N_ICN:
                raise ConfigError(f"effect_icns: {k} is not an ICN index; expected 0..{neuromark.N_ICN - 1}")
        if len(set(self.effect_icns)) != len(self.effect_icns):
            raise ConfigError(f"effect_icns: {list(self.effect_icns)} lists an ICN twice")
        for name in self.gm_regions:
            if name not in GM_REGIONS:
                raise ConfigError(f"gm_regions: unknown region {name!r}; expected one of {sorted(GM_REGIONS)}")
        positive = ("gm_region_sigma_mm", "peak_z", "noise_sd", "gm_fwhm_mm")
        non_negative = ("icn_effect_sd", "gm_reduction", "noise_sigma_mm", "amplitude_sd", "jitter_mm",
                        "gm_noise", "gm_noise_sigma_mm", "gm_global_sd", "gm_age_slope", "secondary_amplitude")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.gm_reduction < 1:
            raise ConfigError(f"gm_reduction must be < 1 (a fraction of gray matter), got {self.gm_reduction}")
        if not 0 < self.patient_fraction < 1:
            raise ConfigError(f"patient_fraction must be in (0, 1), got {self.patient_fraction}")
        if self.effect_kind not in EFFECT_KINDS:
            raise ConfigError(f"effect_kind: {self.effect_kind!r} is not known; expected one of {list(EFFECT_KINDS)}")
        for name in ("icn_sigma_scale", "effect_sigma_scale"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("network_nodes", "n_sites"):
            if int(getattr(self, name)) < 0 or int(getattr(self, name)) != getattr(self, name):
                raise ConfigError(f"{name} must be a whole number >= 0, got {getattr(self, name)}")
        for name in ("network_node_weight", "site_effect_sd", "site_gm_sd"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.site_diagnosis_correlation < 1:
            raise ConfigError(f"site_diagnosis_correlation must be in [0, 1), got {self.site_diagnosis_correlation}")
        if self.n_sites == 1:
            raise ConfigError("n_sites must be 0 (no sites) or >= 2")


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
    shape = tuple(int(np.floor((hi - lo) / voxel_mm)) + 1 for lo, hi in SMRI_FOV_MM)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = [lo for lo, _ in SMRI_FOV_MM]
    return shape, affine  # type: ignore[return-value]


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


def _axes_mm(shape: tuple[int, ...], affine: np.ndarray) -> list[np.ndarray]:
    """World coordinate (mm) along each axis of an axis-aligned grid."""
    return [affine[a, a] * np.arange(shape[a]) + affine[a, 3] for a in range(3)]


def _gaussian(axes: list[np.ndarray], centre: np.ndarray, sigma: float) -> np.ndarray:
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


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: float, n: int | None = None) -> np.ndarray:
    """Unit-variance smooth Gaussian noise, shape ``shape`` (+ ``(n,)`` when given), float32."""
    full = tuple(shape) + ((n,) if n is not None else ())
    noise = rng.standard_normal(full, dtype=np.float32)
    if sigma_vox > 0:
        sigma = (sigma_vox,) * 3 + ((0.0,) if n is not None else ())
        noise = ndimage.gaussian_filter(noise, sigma, mode="reflect")
        noise /= np.float32(_smoothed_noise_sd(sigma_vox))
    return noise


@dataclass
class _Design:
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


# Power-264 networks that match each NeuroMark domain (for network-shaped ICNs).
DOMAIN_NETWORKS: dict[str, tuple[str, ...]] = {
    "SC": ("SUB",), "AU": ("AUD",), "SM": ("SMH", "SMM"), "VI": ("VIS",),
    "CC": ("FPN", "CO", "SAL", "DAN", "VAN"), "DM": ("DMN", "MEM"), "CB": ("CER",),
}
EFFECT_KINDS: tuple[str, ...] = ("node", "subregion")


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
    return [tuple(float(v) for v in coords[i]) for i in order[:n_extra]]


def _effect_blob(design: "_Design", n: int) -> tuple[np.ndarray, float]:
    """Centre (mm, before jitter) and width of the planted loss on node ``n``."""
    kn = design.knobs
    sigma = float(design.node_sigma[n])
    if kn.effect_kind == "subregion":
        return design.node_centre[n] + np.array([0.0, kn.effect_offset_scale * sigma, 0.0]), kn.effect_sigma_scale * sigma
    return design.node_centre[n], sigma


def _design(size: str, knobs: VAECohortKnobs, seed: int = 0) -> _Design:
    shape, voxel = GRIDS[size]
    affine = grid_affine(voxel)
    smri_shape, smri_affine = smri_grid(voxel / SMRI_VOXEL_RATIO)
    domains = neuromark.icn_domains()
    icn, centre, weight, sigma = [], [], [], []
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
    smri_axes = _axes_mm(smri_shape, smri_affine)
    profile = np.zeros(smri_shape)
    for name in knobs.gm_regions:
        for site in GM_REGIONS[name]:
            profile = np.maximum(profile, _gaussian(smri_axes, np.asarray(site), knobs.gm_region_sigma_mm))
    return _Design(
        size=size, shape=shape, affine=affine, smri_shape=smri_shape, smri_affine=smri_affine,
        mask=brain_mask(shape, affine), axes=_axes_mm(shape, affine),
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
    patterns = _smooth_noise(rng, shape, knobs.noise_sigma_mm * 2 / voxel, int(knobs.n_sites))
    patterns = np.moveaxis(patterns, -1, 0) * np.float32(knobs.site_effect_sd * knobs.noise_sd)
    return {"site_patterns": patterns, "site_gm": 1.0 + knobs.site_gm_sd * rng.standard_normal(int(knobs.n_sites))}


def _subject(design: _Design, rng: np.random.Generator, patient: bool, age: float,
             site: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One subject's ICN maps ``(X, Y, Z, 53)`` and GM volume (sMRI grid), both float32.

    The random draws are the same whatever ``patient`` is, so effect / no-effect cohorts share
    their subjects.
    """
    kn = design.knobs
    amplitude = 1.0 + kn.amplitude_sd * rng.standard_normal(neuromark.N_ICN)
    jitter = kn.jitter_mm * rng.standard_normal(design.node_centre.shape)
    noise = _smooth_noise(rng, design.shape, design.noise_sigma_vox, neuromark.N_ICN)
    gm_global = 1.0 - kn.gm_age_slope * (age - np.mean(AGE_RANGE)) + kn.gm_global_sd * rng.standard_normal()
    gm_noise = _smooth_noise(rng, design.smri_shape, design.gm_noise_sigma_vox)

    maps = noise
    maps *= np.float32(kn.noise_sd)
    for n, k in enumerate(design.node_icn):
        blob = _gaussian(design.axes, design.node_centre[n] + jitter[n], design.node_sigma[n])
        value = kn.peak_z * amplitude[k] * design.node_weight[n]
        if patient and design.effect_node.get(int(k)) == n:
            if kn.effect_kind == "node":
                value -= kn.icn_effect_sd * kn.noise_sd
            else:
                centre, width = _effect_blob(design, n)
                loss = _gaussian(design.axes, centre + jitter[n], width)
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


def expected_effect(design: _Design) -> np.ndarray:
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
        centre, width = _effect_blob(design, n)
        s2 = width**2
        blurred = (s2 / (s2 + tau2)) ** 1.5 * _gaussian(design.axes, centre, np.sqrt(s2 + tau2))
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


# Knobs added for the validation family: recorded only when set, so the default cohort's files stay
# byte-identical to those written before the family existed.
_VARIANT_KNOBS: tuple[str, ...] = ("icn_sigma_scale", "network_nodes", "network_node_weight", "effect_kind",
                                   "effect_sigma_scale", "effect_offset_scale", "n_sites", "site_effect_sd",
                                   "site_gm_sd", "site_diagnosis_correlation")


def _recorded_knobs(knobs: VAECohortKnobs) -> dict:
    default = VAECohortKnobs()
    return {k: v for k, v in dataclasses.asdict(knobs).items()
            if k not in _VARIANT_KNOBS or v != getattr(default, k)}


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
    **knobs: object,
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
        knobs["effect_icns"] = tuple(int(k) for k in knobs["effect_icns"])  # type: ignore[union-attr]
    if "gm_regions" in knobs:
        knobs["gm_regions"] = tuple(knobs["gm_regions"])  # type: ignore[arg-type]
    kn = VAECohortKnobs(**knobs)  # type: ignore[arg-type]
    kn.validate()
    n = DEFAULT_N_SUBJECTS[size] if n_subjects is None else int(n_subjects)
    n_patients = int(round(n * kn.patient_fraction))
    if n_patients < 2 or n - n_patients < 2:
        raise ConfigError(f"n_subjects={n} gives {n_patients} patients and {n - n_patients} controls; need >= 2 of each")
    out_dir = Path(out_dir)
    manifest_path = out_dir / "manifest.csv"
    if manifest_path.exists() and not overwrite:
        raise InputError(f"{out_dir} already holds a cohort ({manifest_path}); pass overwrite=True (--overwrite) to replace it")

    design = _design(size, kn, seed)
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
        "effect_modality_names": [neuromark.modality_names()[k] for k in icn_mods + ([neuromark.SMRI_INDEX] if gm_on else [])],
        "effect_map": "ground_truth_effect.nii.gz",
        "effect_map_units": "raw values of the input files (before max-abs scaling); patient minus control",
        "icn_effect_sites_mm": {str(k): design.node_centre[n].tolist() for k, n in sorted(design.effect_node.items())} if effect else {},
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
        "knobs": _recorded_knobs(kn),
    })
    io.write_csv(manifest_path, pd.DataFrame(rows))
    log.info("wrote %d subjects (%d patients) to %s", n, int(labels.sum()), out_dir)
    return manifest_path


# The validation family (``fusion vae-validate``): each variant removes one convenience of the
# embedded cohort. ``voxel_size`` is what ``fusion prepare --voxel-size`` gets (None: the ICN grid).
VAE_VARIANTS: dict[str, dict] = {
    "embedded": {"size": "small", "doc": "the embedded cohort (reference)"},
    "neuromark_grid": {"size": "neuromark", "n_subjects": 120, "voxel_size": 6.0,
                       "doc": "NeuroMark 3 mm grid 53x63x46, resampled to 6 mm by prepare"},
    "narrow_networks": {"size": "small", "knobs": {"icn_sigma_scale": 0.65, "network_nodes": 3},
                        "doc": "ICNs 0.65x as wide, 3 extra Power-264 nodes of the domain's networks"},
    "subregion_effect": {"size": "small", "knobs": {"effect_kind": "subregion"},
                         "doc": "a narrower off-centre sub-region of the effect node is weakened"},
    "weak_effect": {"size": "small", "knobs": {"icn_effect_sd": 2.5, "gm_reduction": 0.06},
                    "doc": "half the ICN and GM effect sizes"},
    "few_modalities": {"size": "small", "knobs": {"effect_icns": (5, 23), "gm_regions": ("thalamus",)},
                       "doc": "effect in 2 ICNs and one GM region"},
    "gm_only": {"size": "small", "knobs": {"icn_effect_sd": 0.0}, "doc": "effect in gray matter only"},
    "n100": {"size": "small", "n_subjects": 100, "doc": "100 subjects"},
    "site_confound": {"size": "small", "knobs": {"n_sites": 2, "site_effect_sd": 1.0, "site_gm_sd": 0.04,
                                                 "site_diagnosis_correlation": 0.6},
                      "doc": "2 sites, 80% of patients at one and 80% of controls at the other, site patterns"},
    "null": {"size": "small", "effect": False, "doc": "no patient effect"},
}


def variant_settings(name: str) -> dict:
    """Settings of a validation variant: ``size``, ``n_subjects``, ``effect``, ``knobs``,
    ``voxel_size``, ``doc``; ConfigError listing the valid names for an unknown one."""
    if name not in VAE_VARIANTS:
        raise ConfigError(f"unknown VAE cohort variant {name!r}; expected one of {list(VAE_VARIANTS)}")
    spec = VAE_VARIANTS[name]
    return {"size": spec.get("size", "small"), "n_subjects": spec.get("n_subjects"), "effect": spec.get("effect", True),
            "knobs": dict(spec.get("knobs", {})), "voxel_size": spec.get("voxel_size"), "doc": spec.get("doc", "")}
