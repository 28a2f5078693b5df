"""The knobs of the synthetic VAE cohort and its validation family of variants.

:class:`VAECohortKnobs` holds every number that shapes the cohort (:func:`recorded_knobs`: those
written to its ground truth). :data:`VAE_VARIANTS` are the cohorts of ``fusion vae-validate``, each
removing one convenience of the embedded cohort.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fusion.data import neuromark
from fusion.data.volume_layout import GM_REGIONS
from fusion.errors import ConfigError

__all__ = ["EFFECT_KINDS", "VAECohortKnobs", "VAE_VARIANTS", "recorded_knobs", "variant_settings"]

# How a patient's effect node is weakened (``VAECohortKnobs.effect_kind``).
EFFECT_KINDS: tuple[str, ...] = ("node", "subregion")


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


# Knobs added for the validation family: recorded only when set, so the default cohort's files stay
# byte-identical to those written before the family existed.
_VARIANT_KNOBS: tuple[str, ...] = ("icn_sigma_scale", "network_nodes", "network_node_weight", "effect_kind",
                                   "effect_sigma_scale", "effect_offset_scale", "n_sites", "site_effect_sd",
                                   "site_gm_sd", "site_diagnosis_correlation")


def recorded_knobs(knobs: VAECohortKnobs) -> dict:
    """The knobs written to ``ground_truth.json``: all, but the validation ones only when not default."""
    default = VAECohortKnobs()
    return {k: v for k, v in dataclasses.asdict(knobs).items()
            if k not in _VARIANT_KNOBS or v != getattr(default, k)}


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
