"""``fusion prepare``: validate a VAE manifest and write one prepared ``(54, X, Y, Z)`` array per subject."""

from __future__ import annotations

import argparse

from fusion.data.neuromark import N_ICN
from fusion.data.prepare import DTYPES, prepare_cohort


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--manifest", required=True,
                        help="manifest, .csv or .tsv: subject_id,label,icn_path,smri_path[,covariates] "
                             "(fusion manifest --bids writes one from BIDS derivatives)")
    parser.add_argument("--out", required=True,
                        help="prepared folder to write (an earlier one is replaced only on success)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="dtype of the subject arrays")
    parser.add_argument("--n-icn", type=int, default=N_ICN, help="ICN components per subject")
    parser.add_argument("--n-splits", type=int, default=None,
                        help="also check that each class has at least this many subjects (stratified CV folds)")
    parser.add_argument("--voxel-size", type=float, default=None, metavar="MM",
                        help="resample ICNs and GM onto an isotropic grid of MM mm in the same MNI space "
                             "(e.g. 6 for the CPU recipe on the NeuroMark 3 mm grid); default: keep the ICN grid")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    index = prepare_cohort(args.manifest, args.out, dtype=args.dtype, n_icn=args.n_icn, n_splits=args.n_splits,
                           progress=not args.no_progress, voxel_size=args.voxel_size)
    print(f"wrote {index}")
    return 0
