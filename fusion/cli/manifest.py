"""``fusion manifest --bids DERIVATIVES_DIR --out manifest.tsv``: a VAE manifest from a BIDS-derivatives
folder and its ``participants.tsv`` (see :mod:`fusion.data.bids` for the layout and patterns)."""

from __future__ import annotations

import argparse

from fusion.data.bids import ICN_PATTERN, SMRI_PATTERN, bids_manifest, write_manifest


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--bids", required=True, metavar="DERIVATIVES_DIR",
                        help="BIDS-derivatives folder holding sub-<label>/[ses-<label>/]{func,anat}/ files")
    parser.add_argument("--out", required=True, help="manifest to write (.tsv: tab-separated, else comma-separated)")
    parser.add_argument("--participants", default=None,
                        help="participants.tsv (default: in DERIVATIVES_DIR or the two folders above it)")
    parser.add_argument("--label-column", default="group",
                        help="participants.tsv column holding the group (default: group)")
    parser.add_argument("--control", action="append", default=None, metavar="VALUE",
                        help="a value of the label column meaning control (repeatable; default: 0, control)")
    parser.add_argument("--patient", action="append", default=None, metavar="VALUE",
                        help="a value of the label column meaning patient (repeatable; default: 1, patient)")
    parser.add_argument("--icn-pattern", default=ICN_PATTERN,
                        help="glob of the 4D ICN file, relative to DERIVATIVES_DIR; {subject} = the participant "
                             f"label, ** = any folders (default: {ICN_PATTERN.replace('%', '%%')})")
    parser.add_argument("--smri-pattern", default=SMRI_PATTERN,
                        help=f"glob of the gray-matter map (default: {SMRI_PATTERN.replace('%', '%%')})")
    parser.add_argument("--skip-incomplete", action="store_true",
                        help="leave out participants without exactly one file per pattern (default: error)")
    parser.add_argument("--skip-unlabelled", action="store_true",
                        help="leave out participants whose label is n/a (default: error)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing manifest")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fusion.errors import InputError

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(f"{out} already exists; pass --overwrite to replace it")
    found = bids_manifest(
        args.bids, participants=args.participants, label_column=args.label_column,
        control_values=args.control, patient_values=args.patient, icn_pattern=args.icn_pattern,
        smri_pattern=args.smri_pattern, skip_incomplete=args.skip_incomplete, skip_unlabelled=args.skip_unlabelled,
    )
    write_manifest(found, out)
    labels = found.table["label"]
    print(f"wrote {out}: {len(labels)} subjects ({int(labels.sum())} patients, {int((labels == 0).sum())} controls) "
          f"from {found.participants}" + (f"; left out {len(found.skipped)}" if found.skipped else ""))
    print(f"next: fusion prepare --manifest {out} --out {out.parent / 'prepared'}")
    return 0
