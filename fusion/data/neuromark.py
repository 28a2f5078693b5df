"""The 54 VAE modalities: the 53 NeuroMark 1.0 ICNs in template order, then sMRI gray matter.

NeuroMark 1.0 (Du et al. 2020, NeuroImage: Clinical 28:102375) orders its 53 intrinsic
connectivity networks (ICNs) by functional domain: subcortical (SC 1-5), auditory (AU 6-7),
sensorimotor (SM 8-16), visual (VI 17-25), cognitive control (CC 26-42), default mode (DM 43-49)
and cerebellar (CB 50-53). Modality index ``k`` (0-based) of a prepared subject array is ICN
``k + 1`` for ``k < 53``; index 53 is the sMRI gray-matter volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

N_ICN: int = 53
DOMAINS: tuple[str, ...] = ("SC", "AU", "SM", "VI", "CC", "DM", "CB")
DOMAIN_SIZES: tuple[int, ...] = (5, 2, 9, 9, 17, 7, 4)
DOMAIN_NAMES: dict[str, str] = {
    "SC": "subcortical",
    "AU": "auditory",
    "SM": "sensorimotor",
    "VI": "visual",
    "CC": "cognitive control",
    "DM": "default mode",
    "CB": "cerebellar",
}
N_MODALITIES: int = N_ICN + 1
SMRI_INDEX: int = N_ICN
SMRI_NAME: str = "sMRI GM"
SMRI_DOMAIN: str = "sMRI"

# Anatomical label of each template ICN (NeuroMark 1.0 label list, template order).
ICN_LABELS: tuple[str, ...] = (
    "caudate", "subthalamus/hypothalamus", "putamen", "caudate", "thalamus",
    "superior temporal gyrus", "middle temporal gyrus",
    "postcentral gyrus", "left postcentral gyrus", "paracentral lobule",
    "right postcentral gyrus", "superior parietal lobule", "paracentral lobule",
    "precentral gyrus", "superior parietal lobule", "postcentral gyrus",
    "calcarine gyrus", "middle occipital gyrus", "middle temporal gyrus", "cuneus",
    "right middle occipital gyrus", "fusiform gyrus", "inferior occipital gyrus",
    "lingual gyrus", "middle temporal gyrus",
    "inferior parietal lobule", "insula", "superior medial frontal gyrus",
    "inferior frontal gyrus", "right inferior frontal gyrus", "middle frontal gyrus",
    "inferior parietal lobule", "left inferior parietal lobule", "supplementary motor area",
    "superior frontal gyrus", "middle frontal gyrus", "hippocampus",
    "left inferior parietal lobule", "middle cingulate cortex", "inferior frontal gyrus",
    "middle frontal gyrus", "hippocampus",
    "precuneus", "precuneus", "anterior cingulate cortex", "posterior cingulate cortex",
    "anterior cingulate cortex", "precuneus", "posterior cingulate cortex",
    "cerebellum", "cerebellum", "cerebellum", "cerebellum",
)


def icn_domains() -> list[str]:
    """Domain abbreviation of each of the 53 ICNs, in template order."""
    return [domain for domain, size in zip(DOMAINS, DOMAIN_SIZES) for _ in range(size)]


def modality_names() -> list[str]:
    """Names of the 54 modalities: ``"ICN01 (SC)"`` ... ``"ICN53 (CB)"``, ``"sMRI GM"``."""
    names = [f"ICN{k + 1:02d} ({domain})" for k, domain in enumerate(icn_domains())]
    return names + [SMRI_NAME]


def modality_domains() -> list[str]:
    """Domain of each of the 54 modalities (53 ICN domains, then ``"sMRI"``)."""
    return icn_domains() + [SMRI_DOMAIN]


def generic_modality_names(n_icn: int) -> list[str]:
    """Names for a cohort whose ICN files do not hold the 53 NeuroMark ICNs.

    Args:
        n_icn: number of ICN components per subject.
    """
    if n_icn == N_ICN:
        return modality_names()
    return [f"IC{k + 1:02d}" for k in range(n_icn)] + [SMRI_NAME]


def generic_modality_domains(n_icn: int) -> list[str]:
    """Domains for ``n_icn`` components: NeuroMark's when ``n_icn == 53``, else ``"unknown"``."""
    if n_icn == N_ICN:
        return modality_domains()
    return ["unknown"] * n_icn + [SMRI_DOMAIN]


assert sum(DOMAIN_SIZES) == N_ICN == len(ICN_LABELS)


def modality_labels(n_modalities: int, meta: Mapping[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """``(names, domains)`` per modality: from the prepared data's ``meta.json`` when it has them,
    else NeuroMark's (53 ICNs + sMRI) or generic ones."""
    if (meta and len(meta.get("modality_names", [])) == n_modalities
            and len(meta.get("modality_domains", [])) == n_modalities):
        return list(meta["modality_names"]), list(meta["modality_domains"])
    return generic_modality_names(n_modalities - 1), generic_modality_domains(n_modalities - 1)
