"""The validation family of gCAM-CCL cohorts: variants that each remove one convenience of the
embedded cohort, their combination, and a null.

The embedded cohort is easy in four ways: its planted edges fill whole cells of the FC ConvNet's
coarse grid (aligned 8x8 ROI blocks), its SNP effects come as runs of 25 SNPs in strong LD, its
group-mean FC is weak (a factor model with large subject deviations), and it has 300 labelled
subjects. Each variant takes one of these away:

=================  ===========================================================================
``embedded``       the embedded cohort itself (``fusion cohort-ccl`` defaults)
``connectome``     strong structured group-mean FC (within-network r 0.5-0.8, distance decay;
                   not a factor model), small subject deviations
``scattered``      30 planted edges scattered between the Visual and Default-mode networks
``single_snps``    15 isolated causal SNPs inside ordinary LD blocks instead of runs
``weak``           planted effects at 60% strength
``n240``           600 subjects, so 240 labelled at 20%/20%
``outside``        all of the above but ``weak`` together (the shape of a real cohort)
``null``           no effect at all (strength 0): every method must sit at chance
=================  ===========================================================================
"""

from __future__ import annotations

from typing import Any

from fusion.errors import ConfigError

__all__ = ["VARIANTS", "variant_knobs", "variant_names"]

_CONNECTOME = {"mean_model": "connectome", "edge_shift": 0.15}
_SCATTERED = {"edge_layout": "scattered"}
_SINGLE = {"snp_layout": "single"}

VARIANTS: dict[str, dict[str, Any]] = {
    "embedded": {},
    "connectome": dict(_CONNECTOME),
    "scattered": dict(_SCATTERED),
    "single_snps": dict(_SINGLE),
    "weak": {"strength": 0.6},
    "n240": {"n_subjects": 600},
    "outside": {**_CONNECTOME, **_SCATTERED, **_SINGLE, "n_subjects": 600},
    "null": {"strength": 0.0},
}


def variant_names() -> list[str]:
    """The variant names, in the table's order."""
    return list(VARIANTS)


def variant_knobs(name: str) -> dict[str, Any]:
    """Generator options of one variant (:class:`fusion.data.synthetic_ccl.CCLCohortSpec` fields).

    Raises:
        ConfigError: unknown variant, listing the valid names.
    """
    if name not in VARIANTS:
        raise ConfigError(f"unknown gCAM-CCL cohort variant {name!r}; valid variants: {', '.join(VARIANTS)}")
    return dict(VARIANTS[name])
