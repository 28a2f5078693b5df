"""``fusion cohort-vae``: write the embedded synthetic ICN + sMRI cohort (NIfTI files + manifest)."""

from __future__ import annotations

import argparse

from fusion.data.synthetic_volumes import make_vae_cohort
from fusion.data.vae_variants import VAE_VARIANTS, variant_settings
from fusion.data.volume_layout import DEFAULT_N_SUBJECTS, GRIDS


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--out", required=True, help="folder to write the cohort into")
    parser.add_argument("--size", choices=sorted(GRIDS), default=None,
                        help="grid: paper 53x63x52 (3 mm), neuromark 53x63x46 (3 mm), small 27x32x26 (6 mm, the "
                             "default), tiny 14x16x13 (12 mm)")
    parser.add_argument("--variant", default=None, metavar="NAME",
                        help="a cohort of the validation family (" + ", ".join(VAE_VARIANTS) + "); the other "
                             "options override its settings. Prepare it with the voxel size that "
                             "`fusion vae-validate` uses")
    parser.add_argument("--n-subjects", type=int, default=None,
                        help="number of subjects (default: "
                             + ", ".join(f"{k} {v}" for k, v in DEFAULT_N_SUBJECTS.items()) + ")")
    parser.add_argument("--no-effect", action="store_true", help="plant no patient effect (null cohort, same subjects)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    parser.add_argument("--icn-effect-sd", type=float, default=None,
                        help="patients' loss at the effect node's peak, in units of the ICN noise SD")
    parser.add_argument("--gm-reduction", type=float, default=None,
                        help="patients' fractional gray-matter loss at the centre of each effect region")
    parser.add_argument("--noise-sd", type=float, default=None,
                        help="per-voxel SD of the smooth noise in every ICN map (z units)")
    parser.add_argument("--overwrite", action="store_true", help="write into a folder that already holds a cohort")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    if args.variant:
        spec = variant_settings(args.variant)
    else:
        spec = {"size": "small", "n_subjects": None, "knobs": {}, "effect": True}
    knobs = dict(spec["knobs"])
    if args.icn_effect_sd is not None:
        knobs["icn_effect_sd"] = args.icn_effect_sd
    if args.gm_reduction is not None:
        knobs["gm_reduction"] = args.gm_reduction
    if args.noise_sd is not None:
        knobs["noise_sd"] = args.noise_sd
    size = args.size or spec["size"]
    n_subjects = args.n_subjects if args.n_subjects is not None else spec["n_subjects"]
    manifest = make_vae_cohort(args.out, size=size, n_subjects=n_subjects, effect=spec["effect"] and not args.no_effect,
                               seed=args.seed, overwrite=args.overwrite, progress=not args.no_progress, **knobs)
    print(f"wrote {manifest}")
    return 0
