"""Fixed tables of the synthetic VAE cohort: the grids its files are written on, the default
number of subjects per grid, and where its ICN nodes and gray-matter effect regions sit (MNI mm).

Each of the 53 NeuroMark ICNs gets one or two nodes at sites that match its anatomical label
(caudate, thalamus, superior temporal gyrus, ...), primary node first;
:mod:`fusion.data.volume_design` turns them into Gaussian nodes on a grid.
"""

from __future__ import annotations

from fusion.data import neuromark

__all__ = [
    "DEFAULT_N_SUBJECTS",
    "DOMAIN_NETWORKS",
    "DOMAIN_SIGMA_MM",
    "GM_REGIONS",
    "GRIDS",
    "GRID_ORIGIN_MM",
    "ICN_SITES",
    "SMRI_FOV_MM",
    "SMRI_VOXEL_RATIO",
]

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


# Power-264 networks that match each NeuroMark domain (for network-shaped ICNs).
DOMAIN_NETWORKS: dict[str, tuple[str, ...]] = {
    "SC": ("SUB",), "AU": ("AUD",), "SM": ("SMH", "SMM"), "VI": ("VIS",),
    "CC": ("FPN", "CO", "SAL", "DAN", "VAN"), "DM": ("DMN", "MEM"), "CB": ("CER",),
}
