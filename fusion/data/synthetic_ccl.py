"""The embedded synthetic imaging-genetic cohort for gCAM-CCL (DESIGN.md section 5).

What is simulated, per subject:

- **FC**: ROI time series on the Power-264 atlas from a network factor model (each ROI loads on
  its Power network's factor and on a global signal, plus noise; loadings jitter per subject),
  Pearson correlation over ``n_timepoints``, Fisher z (``arctanh``). The diagonal is set to 0
  (the Fisher z of a self-correlation is infinite). Matrices are symmetric, float32.
- **SNPs**: ``n_snps`` bi-allelic loci in linkage-disequilibrium blocks: within a block the two
  haplotypes follow a Gaussian AR(1) copula (correlation ``rho`` between neighbours), thresholded
  at each SNP's minor-allele frequency (uniform in [0.05, 0.5]); genotype = minor-allele count
  0/1/2. A small fraction of calls is set missing.
- **Score** (WRAT-like, mean 100, SD 15): ``strength * (b + snp_weight * g) + e`` standardised, where ``b`` is a
  standard-normal brain factor that shifts the planted FC edges by ``edge_shift * strength * b``
  (sign +1 or -1 per block), ``g`` the standardised genetic score of the planted SNP runs (sum of
  their standardised dosages, sign per run), and ``e`` standard-normal noise. ``strength=0`` gives
  a null cohort.

Planted effects (recorded in ``ground_truth.json``):

- edges: blocks of ``roi_block x roi_block`` ROIs between named Power networks (default DMN-FPN,
  stronger in high scorers, and VIS-SMH, stronger in low scorers). Each block's ROIs are
  consecutive and start on a multiple of ``roi_block`` so that it fills whole cells of the FC
  ConvNet's coarse layers; every pair (i < j) of the block is a planted edge.
- SNPs: ``n_snp_runs`` runs of ``snp_run_length`` consecutive SNPs forming their own strong-LD
  block (rho 0.9), one causal "gene" each.

Written layout (what a user would have): ``fc/<subject>.npy`` (264 x 264 float32),
``genotypes.bed/.bim/.fam`` (PLINK, bed-reader), ``manifest.csv`` (``subject_id,score,fc_path``),
``ground_truth.json``. Deterministic from ``seed``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fusion.data.power import N_ROIS, network_indices, power_networks
from fusion.data.synthetic_snps import simulate_snps
from fusion.errors import ConfigError

log = logging.getLogger(__name__)

SIZES = {"tiny": 60, "small": 750, "paper": 854}


@dataclass
class CCLCohortSpec:
    """Every knob of the synthetic FC + SNP cohort (defaults = the embedded ``small`` cohort)."""

    n_subjects: int = 750
    n_snps: int = 750
    n_timepoints: int = 120
    strength: float = 1.0
    snp_weight: float = 1.5
    edge_shift: float = 0.3
    edge_blocks: tuple[tuple[str, str, int], ...] = (("DMN", "FPN", 1), ("VIS", "SMH", -1))
    roi_block: int = 8
    n_snp_runs: int = 2
    snp_run_length: int = 25
    snp_run_signs: tuple[int, ...] = (1, -1)
    missing_rate: float = 0.002
    maf_range: tuple[float, float] = (0.05, 0.5)
    network_loading: tuple[float, float] = (0.4, 0.9)
    global_loading: float = 0.3
    quantiles: tuple[float, float] = (0.2, 0.2)
    # Validation-family options (fusion.data.ccl_variants); the defaults give the embedded cohort.
    mean_model: str = "factor"              # factor: the network factor model | connectome: a strong group mean
    mean_within: tuple[float, float] = (0.5, 0.8)   # connectome: within-network correlation range
    subject_loading: float = 0.25           # connectome: weight of each subject's own network factors
    edge_layout: str = "blocks"             # blocks: aligned ROI blocks | scattered: single edges
    scattered_networks: tuple[str, str] = ("VIS", "DMN")
    n_scattered_edges: int = 30
    snp_layout: str = "runs"                # runs: LD runs of causal SNPs | single: isolated causal SNPs
    n_causal_snps: int = 15
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, allowed in (("mean_model", ("factor", "connectome")), ("edge_layout", ("blocks", "scattered")),
                             ("snp_layout", ("runs", "single"))):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"cohort option {key} must be one of {list(allowed)}, got {getattr(self, key)!r}")


def _aligned_block(network: str, size: int, rng: np.random.Generator, taken: set[int]) -> np.ndarray:
    """``size`` consecutive ROIs of ``network`` starting on a multiple of ``size``."""
    members = set(network_indices(network).tolist())
    starts = [s for s in range(0, N_ROIS - size + 1, size)
              if all(r in members and r not in taken for r in range(s, s + size))]
    if not starts:
        raise ConfigError(
            f"network {network!r} has no run of {size} consecutive ROIs aligned on {size}; use a smaller roi_block"
        )
    start = int(rng.choice(starts))
    return np.arange(start, start + size)


def _group_connectome(rng: np.random.Generator, spec: CCLCohortSpec) -> np.ndarray:
    """A strong, structured group-mean correlation matrix ``(264, 264)`` (not a factor model).

    Within-network correlation drawn per network from ``mean_within`` (0.5-0.8 by default; the
    'Uncertain' ROIs get a third of it), a correlation per network pair in [-0.1, 0.25], plus a
    distance decay (0.25 exp(-d / 40 mm) on the Power coordinates); projected to the nearest
    correlation matrix with eigenvalues >= 0.02.
    """
    from fusion.data.power import power_coords

    nets = np.asarray(power_networks())
    names, idx = np.unique(nets, return_inverse=True)
    k = len(names)
    between = rng.uniform(-0.1, 0.25, size=(k, k))
    between = (between + between.T) / 2
    within = rng.uniform(*spec.mean_within, size=k)
    within[names == "UNC"] /= 3
    between[np.arange(k), np.arange(k)] = within
    c = between[idx][:, idx]
    d = np.linalg.norm(power_coords()[:, None, :] - power_coords()[None, :, :], axis=-1)
    c = np.clip(c + 0.25 * np.exp(-d / 40.0), -0.95, 0.95)
    np.fill_diagonal(c, 1.0)
    w, v = np.linalg.eigh(c)
    c = (v * np.maximum(w, 0.02)) @ v.T
    sd = np.sqrt(np.diag(c))
    return c / sd[:, None] / sd[None, :]


def _correlate(x: np.ndarray) -> np.ndarray:
    """Fisher-z correlation matrices of time series ``(m, R, T)``, diagonal 0."""
    x = x - x.mean(axis=2, keepdims=True)
    x /= np.linalg.norm(x, axis=2, keepdims=True)
    r = np.einsum("mit,mjt->mij", x, x)
    np.clip(r, -0.999999, 0.999999, out=r)
    z = np.arctanh(r)
    idx = np.arange(x.shape[1])
    z[:, idx, idx] = 0.0
    return z


def _simulate_fc_connectome(rng: np.random.Generator, n: int, spec: CCLCohortSpec, chunk: int = 50) -> np.ndarray:
    """Fisher-z FC ``(n, 264, 264)``: time series drawn around the group connectome; each subject
    adds ``subject_loading`` x its own network factors, so subject deviations are small."""
    nets = np.asarray(power_networks())
    _, net_idx = np.unique(nets, return_inverse=True)
    k = int(net_idx.max()) + 1
    chol = np.linalg.cholesky(_group_connectome(rng, spec))
    t = spec.n_timepoints
    out = np.empty((n, N_ROIS, N_ROIS), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = np.einsum("ij,mjt->mit", chol, rng.standard_normal((m, N_ROIS, t)))
        own = rng.standard_normal((m, k, t))[:, net_idx, :] * rng.uniform(0, 1, size=(m, N_ROIS, 1))
        out[start:start + m] = _correlate(x + spec.subject_loading * own)
    return out


def _scattered_pairs(rng: np.random.Generator, spec: CCLCohortSpec) -> list:
    """``n_scattered_edges`` distinct ROI pairs between the two ``scattered_networks``, each with a
    random sign, as one-pair blocks ``(a, b, sign, net_a, net_b)``."""
    net_a, net_b = spec.scattered_networks
    a_idx, b_idx = network_indices(net_a), network_indices(net_b)
    if spec.n_scattered_edges > len(a_idx) * len(b_idx):
        raise ConfigError(f"{net_a}-{net_b} has only {len(a_idx) * len(b_idx)} edges; "
                          f"n_scattered_edges={spec.n_scattered_edges}")
    flat = rng.choice(len(a_idx) * len(b_idx), size=spec.n_scattered_edges, replace=False)
    signs = rng.choice([-1, 1], size=spec.n_scattered_edges)
    return [(a_idx[[f // len(b_idx)]], b_idx[[f % len(b_idx)]], int(sg), net_a, net_b)
            for f, sg in zip(flat, signs)]


def _simulate_fc(rng: np.random.Generator, n: int, spec: CCLCohortSpec, chunk: int = 50) -> np.ndarray:
    """Fisher-z FC matrices ``(n, 264, 264)`` float32 from the network factor model, diagonal 0."""
    if spec.mean_model == "connectome":
        return _simulate_fc_connectome(rng, n, spec, chunk)
    nets = np.asarray(power_networks())
    names, net_idx = np.unique(nets, return_inverse=True)
    k = len(names)
    lo, hi = spec.network_loading
    base_loading = rng.uniform(lo, hi, size=N_ROIS)
    base_loading[nets == "UNC"] *= 0.5  # uncertain ROIs belong weakly to their block
    # Mild between-network coupling shared by all subjects.
    mix = np.eye(k) + 0.15 * rng.standard_normal((k, k))
    t = spec.n_timepoints
    out = np.empty((n, N_ROIS, N_ROIS), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        factors = np.einsum("kl,mlt->mkt", mix, rng.standard_normal((m, k, t)))
        glob = rng.standard_normal((m, 1, t))
        loading = base_loading[None, :] * rng.uniform(0.8, 1.2, size=(m, N_ROIS))
        x = loading[:, :, None] * factors[:, net_idx, :] + spec.global_loading * glob
        x = x + rng.standard_normal((m, N_ROIS, t))
        out[start:start + m] = _correlate(x)
    return out


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / (sd if sd > 0 else 1.0)


def simulate_ccl_cohort(spec: CCLCohortSpec) -> dict:
    """Simulate the cohort in memory (see the module docstring); no files are written.

    Returns:
        dict with ``fc`` (n, 264, 264) float32, ``genotypes`` (n, n_snps) float32 with NaN for
        missing, ``score`` (n,), ``subject_ids``, ``snp_ids``, ``chromosome``, ``bp_position`` and
        ``ground_truth`` (the JSON-ready dict).
    """
    if spec.n_subjects < 10:
        raise ConfigError(f"n_subjects must be >= 10, got {spec.n_subjects}")
    if spec.snp_layout == "runs" and len(spec.snp_run_signs) < spec.n_snp_runs:
        raise ConfigError("snp_run_signs needs one sign per planted SNP run")
    rng = np.random.default_rng(spec.seed)
    n = spec.n_subjects
    nets = power_networks()

    # Planted FC blocks (or, scattered, one "block" of a single ROI pair per edge).
    taken: set[int] = set()
    blocks = []
    if spec.edge_layout == "scattered":
        blocks = _scattered_pairs(rng, spec)
    else:
        for net_a, net_b, sign in spec.edge_blocks:
            a = _aligned_block(net_a, spec.roi_block, rng, taken)
            taken.update(a.tolist())
            b = _aligned_block(net_b, spec.roi_block, rng, taken)
            taken.update(b.tolist())
            blocks.append((a, b, int(sign), net_a, net_b))

    fc = _simulate_fc(rng, n, spec)
    geno, maf, runs = simulate_snps(rng, n, spec)
    snp_signs = tuple(spec.snp_run_signs) if spec.snp_layout == "runs" else \
        tuple(int(v) for v in rng.choice([-1, 1], size=len(runs)))

    # Latent drivers of the score.
    brain = rng.standard_normal(n)
    dosage = (geno - 2 * maf[None, :]) / np.sqrt(2 * maf * (1 - maf))[None, :]
    gen = sum(sign * dosage[:, r].mean(axis=1) for r, sign in zip(runs, snp_signs))
    gen = _standardise(np.asarray(gen, dtype=float))
    noise = rng.standard_normal(n)
    latent = spec.strength * (brain + spec.snp_weight * gen) + noise
    score = 100.0 + 15.0 * _standardise(latent)

    edges: list[list[int]] = []
    edge_networks: list[list[str]] = []
    edge_signs: list[int] = []
    shift = (spec.edge_shift * spec.strength * brain).astype(np.float32)
    for a, b, sign, _, _ in blocks:
        ii, jj = np.meshgrid(a, b, indexing="ij")
        fc[:, ii, jj] += sign * shift[:, None, None]
        fc[:, jj, ii] += sign * shift[:, None, None]
        for i in a:
            for j in b:
                lo_, hi_ = (int(i), int(j)) if i < j else (int(j), int(i))
                edges.append([lo_, hi_])
                edge_networks.append([nets[lo_], nets[hi_]])
                edge_signs.append(sign)

    genotypes = geno.astype(np.float32)
    if spec.missing_rate > 0:
        genotypes[rng.random(genotypes.shape) < spec.missing_rate] = np.nan

    width = max(4, len(str(n)))
    subject_ids = [f"sub-{k + 1:0{width}d}" for k in range(n)]
    snp_ids = [f"synSNP{k + 1:04d}" for k in range(spec.n_snps)]
    # 22 autosomes in order, 100 kb apart inside a chromosome.
    per_chr = int(np.ceil(spec.n_snps / 22))
    chromosome = [str(1 + k // per_chr) for k in range(spec.n_snps)]
    bp_position = [100_000 * (1 + k % per_chr) for k in range(spec.n_snps)]
    snps = sorted(int(s) for r in runs for s in r)
    snp_sign = {int(s): int(sign) for r, sign in zip(runs, snp_signs) for s in r}
    order = np.lexsort((np.asarray(edges)[:, 1], np.asarray(edges)[:, 0]))
    ground_truth = {
        "edges": [edges[k] for k in order],
        "edge_networks": [edge_networks[k] for k in order],
        "edge_signs": [edge_signs[k] for k in order],
        "edge_blocks": [
            {"rois_a": a.tolist(), "rois_b": b.tolist(), "networks": [na, nb], "sign": s,
             "stronger_in": "high" if s > 0 else "low"}
            for a, b, s, na, nb in blocks
        ] if spec.edge_layout == "blocks" else [],
        "edge_layout": spec.edge_layout,
        "snp_layout": spec.snp_layout,
        "mean_model": spec.mean_model,
        "snps": snps,
        "snp_ids": [snp_ids[s] for s in snps],
        "snp_signs": [snp_sign[s] for s in snps],
        "snp_runs": [{"start": int(r[0]), "stop": int(r[-1]) + 1, "sign": int(s)}
                     for r, s in zip(runs, snp_signs)],
        "score": "WRAT-like: 100 + 15 * standardised(strength * (brain + snp_weight * genetic) + noise)",
        "snp_weight": spec.snp_weight,
        "labels": "bottom quantile = 'low' (label 0), top quantile = 'high' (label 1)",
        "fc": "Fisher z of Pearson correlation, symmetric, zero diagonal",
        "strength": spec.strength,
        "edge_shift": spec.edge_shift,
        "roi_block": spec.roi_block,
        "n_subjects": n,
        "n_snps": spec.n_snps,
        "n_rois": N_ROIS,
        "missing_rate": spec.missing_rate,
        "seed": spec.seed,
    }
    return {
        "fc": fc,
        "genotypes": genotypes,
        "score": score,
        "brain_factor": brain,
        "genetic_score": gen,
        "subject_ids": subject_ids,
        "snp_ids": snp_ids,
        "chromosome": chromosome,
        "bp_position": bp_position,
        "maf": maf,
        "ground_truth": ground_truth,
    }


def make_ccl_cohort(
    out_dir: str | os.PathLike,
    size: str = "small",
    n_subjects: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    **knobs,
) -> Path:
    """Write the synthetic FC + SNP cohort to ``out_dir`` and return the manifest path.

    Args:
        out_dir: destination folder (created).
        size: ``"tiny"`` (60 subjects, for tests), ``"small"`` (750: 300 labelled at 20%/20%)
            or ``"paper"`` (854 as in Hu et al.).
        n_subjects: overrides the size's subject count.
        seed: random seed; the cohort is a pure function of the arguments.
        overwrite: replace an existing cohort in ``out_dir`` (otherwise an error).
        **knobs: any other :class:`CCLCohortSpec` field (``strength``, ``edge_shift``,
            ``roi_block``, ``n_snp_runs``, ``snp_run_length``, ``missing_rate`` ...).
    """
    import pandas as pd
    from tqdm import tqdm

    from fusion.data.genotypes import write_plink
    from fusion.errors import InputError
    from fusion.io import save_npy, write_csv, write_json

    if size not in SIZES:
        raise ConfigError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    unknown = set(knobs) - set(CCLCohortSpec.__dataclass_fields__)
    if unknown:
        valid = sorted(k for k in CCLCohortSpec.__dataclass_fields__ if k not in ("seed", "extra", "n_subjects"))
        raise ConfigError(f"unknown cohort option(s): {sorted(unknown)}; valid options: {', '.join(valid)}")
    for key in ("edge_blocks", "snp_run_signs", "maf_range", "network_loading", "quantiles",
                "mean_within", "scattered_networks"):
        if key in knobs and knobs[key] is not None:
            value = knobs[key]
            knobs[key] = tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in value)
    spec = CCLCohortSpec(n_subjects=n_subjects or SIZES[size], seed=seed, **knobs)
    out = Path(out_dir)
    manifest = out / "manifest.csv"
    if manifest.exists() and not overwrite:
        raise InputError(f"{manifest} already exists; pass overwrite=True (--overwrite) to replace it")
    log.info("simulating %d subjects (%d ROIs, %d SNPs, seed %d)", spec.n_subjects, N_ROIS, spec.n_snps, seed)
    data = simulate_ccl_cohort(spec)
    fc_dir = out / "fc"
    fc_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for sid, mat in zip(tqdm(data["subject_ids"], desc="FC files", leave=False), data["fc"]):
        save_npy(fc_dir / f"{sid}.npy", mat)
        paths.append(f"fc/{sid}.npy")
    write_plink(out / "genotypes.bed", data["genotypes"], data["subject_ids"], data["snp_ids"],
                data["chromosome"], data["bp_position"])
    gt = dict(data["ground_truth"])
    gt["genotypes"] = "genotypes.bed"
    write_json(out / "ground_truth.json", gt)
    frame = pd.DataFrame({"subject_id": data["subject_ids"], "score": np.round(data["score"], 3), "fc_path": paths})
    write_csv(manifest, frame)
    log.info("wrote %s (%d subjects) and ground_truth.json", manifest, spec.n_subjects)
    return manifest
