"""Genotypes of the synthetic gCAM-CCL cohort: LD blocks and planted causal SNPs.

Within an LD block the two haplotypes follow a Gaussian AR(1) copula (correlation ``rho`` between
neighbours), thresholded at each SNP's minor-allele frequency; genotype = minor-allele count 0/1/2.
Causal SNPs come as runs of consecutive SNPs in a strong-LD block of their own (``snp_layout:
runs``, the embedded cohort) or as isolated SNPs inside ordinary blocks (``single``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fusion.errors import ConfigError

if TYPE_CHECKING:
    from fusion.data.synthetic_ccl import CCLCohortSpec


def simulate_snps(
    rng: np.random.Generator, n: int, spec: CCLCohortSpec
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Genotypes ``(n, n_snps)`` int8 in {0,1,2}, the MAFs and the planted runs (index arrays)."""
    p = spec.n_snps
    if spec.snp_layout == "single":
        return _simulate_single_snps(rng, n, spec)
    run_len = spec.snp_run_length
    if spec.n_snp_runs * run_len > p // 2:
        raise ConfigError("planted SNP runs cover more than half of the SNPs; reduce n_snp_runs or snp_run_length")
    # Planted runs start on multiples of run_len, spread over the genome, not touching each other.
    candidates = np.arange(run_len, p - 2 * run_len + 1, run_len)
    runs: list[np.ndarray] = []
    for start in rng.permutation(candidates):
        if all(abs(int(start) - int(r[0])) >= 2 * run_len for r in runs):
            runs.append(np.arange(start, start + run_len))
        if len(runs) == spec.n_snp_runs:
            break
    if len(runs) < spec.n_snp_runs:
        raise ConfigError(f"cannot place {spec.n_snp_runs} SNP runs of length {run_len} among {p} SNPs")
    runs.sort(key=lambda r: int(r[0]))
    # LD blocks: planted runs are blocks of their own; the rest is cut into blocks of 1-15 SNPs.
    blocks: list[tuple[np.ndarray, float]] = []
    planted = np.zeros(p, dtype=bool)
    for r in runs:
        planted[r] = True
        blocks.append((r, 0.9))
    pos = 0
    while pos < p:
        if planted[pos]:
            pos += 1
            continue
        size = int(rng.integers(1, 16))
        end = pos
        while end < p and end - pos < size and not planted[end]:
            end += 1
        blocks.append((np.arange(pos, end), float(rng.uniform(0.3, 0.9))))
        pos = end
    geno, maf = _genotypes(rng, n, p, blocks, spec.maf_range)
    return geno, maf, runs


def _genotypes(rng: np.random.Generator, n: int, p: int, blocks: list[tuple[np.ndarray, float]],
               maf_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Minor-allele counts ``(n, p)`` int8 from the AR(1) copula of each LD block, and the MAFs."""
    from scipy.stats import norm

    maf = rng.uniform(*maf_range, size=p)
    thresholds = norm.ppf(maf)
    geno = np.zeros((n, p), dtype=np.int8)
    for idx, rho in blocks:
        L = len(idx)
        u = np.empty((n, 2, L))
        u[..., 0] = rng.standard_normal((n, 2))
        for j in range(1, L):
            u[..., j] = rho * u[..., j - 1] + np.sqrt(1 - rho**2) * rng.standard_normal((n, 2))
        geno[:, idx] = (u < thresholds[idx]).sum(axis=1).astype(np.int8)
    return geno, maf


def _simulate_single_snps(rng: np.random.Generator, n: int, spec: CCLCohortSpec
                          ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Genotypes in LD blocks of 1-15 SNPs everywhere, with ``n_causal_snps`` isolated causal SNPs
    (at least 20 SNPs apart) inside ordinary blocks: a causal SNP's neighbours share its signal
    through LD, as in real data."""
    p = spec.n_snps
    if spec.n_causal_snps * 20 > p:
        raise ConfigError(f"cannot place {spec.n_causal_snps} causal SNPs 20 apart among {p} SNPs")
    blocks: list[tuple[np.ndarray, float]] = []
    pos = 0
    while pos < p:
        end = min(p, pos + int(rng.integers(1, 16)))
        blocks.append((np.arange(pos, end), float(rng.uniform(0.3, 0.9))))
        pos = end
    causal: list[int] = []
    for cand in rng.permutation(p):
        if all(abs(int(cand) - c) >= 20 for c in causal):
            causal.append(int(cand))
        if len(causal) == spec.n_causal_snps:
            break
    geno, maf = _genotypes(rng, n, p, blocks, spec.maf_range)
    return geno, maf, [np.array([c]) for c in sorted(causal)]
