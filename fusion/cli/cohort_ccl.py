"""``fusion cohort-ccl``: write the embedded synthetic FC + SNP cohort (files + manifest)."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--out", required=True,
                        help="output folder (manifest.csv, fc/, genotypes.bed, ground_truth.json)")
    parser.add_argument("--size", default="small", choices=["tiny", "small", "paper"],
                        help="tiny: 60 subjects (tests); small: 750 (300 labelled); paper: 854")
    parser.add_argument("--n-subjects", type=int, default=None, help="override the number of subjects")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strength", type=float, default=None,
                        help="planted effect strength (0 = null cohort; default 1)")
    parser.add_argument("--snp-weight", type=float, default=None,
                        help="weight of the planted SNPs' genetic score in the score (default 1.5)")
    parser.add_argument("--edge-shift", type=float, default=None,
                        help="Fisher-z shift of planted edges per SD of the brain factor")
    parser.add_argument("--variant", default=None,
                        help="a cohort of the validation family (fusion.data.ccl_variants: embedded, connectome, "
                             "scattered, single_snps, weak, n240, outside, null); other options override it")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cohort in --out")


def run(args: argparse.Namespace) -> int:
    from fusion.data.ccl_variants import variant_knobs
    from fusion.data.synthetic_ccl import make_ccl_cohort

    knobs = variant_knobs(args.variant) if args.variant else {}
    if args.n_subjects is None and "n_subjects" in knobs:
        args.n_subjects = knobs.pop("n_subjects")
    knobs.pop("n_subjects", None)
    if args.strength is not None:
        knobs["strength"] = args.strength
    if args.snp_weight is not None:
        knobs["snp_weight"] = args.snp_weight
    if args.edge_shift is not None:
        knobs["edge_shift"] = args.edge_shift
    manifest = make_ccl_cohort(args.out, size=args.size, n_subjects=args.n_subjects, seed=args.seed,
                               overwrite=args.overwrite, **knobs)
    print(manifest)
    return 0
