"""``fusion sample`` and ``fusion interpolate``: decode new volumes with a trained VAE.

Examples::

    fusion sample --logdir runs/demo/vae --n 4 --out runs/demo/vae/samples
    fusion interpolate --logdir runs/demo/vae --from sub-0001 --to sub-0002 --modality 5 --out DIR
    fusion interpolate --logdir runs/demo/vae --from 5 --to 53 --subject sub-0001 --out DIR
    fusion interpolate --logdir runs/demo/vae --from sub-0001:ICN06 --to sub-0002:sMRI --out DIR

An endpoint is ``SUBJECT:MODALITY``, or ``SUBJECT`` together with ``--modality``, or ``MODALITY``
together with ``--subject``; a modality is an index (0-based) or a name (``"ICN06 (SC)"``, ``ICN06``,
``sMRI``). Latents are the fold's posterior means from ``fold_XX/latents.npz``.

Outputs in ``--out``: ``samples.nii.gz`` / ``interpolation.nii.gz`` (4D, volumes along the 4th axis,
input grid and affine), the latents (``.npz``), a slice-strip PNG and a JSON description.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from fusion import io
from fusion.errors import InputError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--logdir", required=True, type=Path, help="finished VAE run directory")
    parser.add_argument("--fold", type=int, default=0, help="fold whose model to decode with (default 0)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--prepared", type=Path, default=None,
                        help="prepared data folder, for the affine (default: from the run config)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    if command == "sample":
        parser.add_argument("--n", type=int, default=4, help="volumes to draw (default 4)")
        parser.add_argument("--seed", type=int, default=0, help="seed of the prior draws (default 0)")
    else:
        parser.add_argument("--from", dest="start", required=True, help="SUBJECT[:MODALITY] or MODALITY")
        parser.add_argument("--to", dest="end", required=True, help="SUBJECT[:MODALITY] or MODALITY")
        parser.add_argument("--modality", default=None, help="modality of both endpoints (subject endpoints)")
        parser.add_argument("--subject", default=None, help="subject of both endpoints (modality endpoints)")
        parser.add_argument("--steps", type=int, default=8, help="points on the path, endpoints included (default 8)")
        parser.add_argument("--method", choices=("linear", "slerp"), default="linear")


def _prepared_meta(logdir: Path, prepared: Path | None) -> tuple[np.ndarray, dict | None, str | None]:
    """``(affine, meta.json or None, note)`` of the run's prepared data."""
    from fusion.rundir import find_prepared_dir

    folder = prepared if prepared is not None else find_prepared_dir(logdir)
    if folder is None:
        return np.eye(4), None, "no prepared data folder found: the NIfTI carries an identity affine (pass --prepared)"
    meta_path = Path(folder) / "meta.json"
    if not meta_path.is_file():
        raise InputError(f"{meta_path} does not exist (is {folder} a prepared data folder?)")
    meta = io.read_json(meta_path)
    affine = np.asarray(meta.get("affine", []), dtype=float)
    if affine.shape != (4, 4):
        raise InputError(f"{meta_path}: 'affine' must be a 4x4 matrix, got shape {affine.shape}")
    return affine, meta, None


def resolve_modality(value: str, names: list[str]) -> int:
    """A modality index from an index or a (case-insensitive, prefix) name."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        idx = int(text)
        if not 0 <= idx < len(names):
            raise InputError(f"modality {idx} is out of range 0..{len(names) - 1}")
        return idx
    lowered = [n.lower() for n in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    hits = [i for i, n in enumerate(lowered) if n.startswith(text.lower())]
    if len(hits) == 1:
        return hits[0]
    raise InputError(
        f"modality {value!r} matches {len(hits)} of the modality names (e.g. {names[0]!r}, {names[-1]!r}); "
        "give an index 0..{} or a full name".format(len(names) - 1)
    )


def resolve_subject(value: str, subject_ids: list[str]) -> int:
    """Row of a subject id in the latents."""
    if value in subject_ids:
        return subject_ids.index(value)
    raise InputError(
        f"subject {value!r} is not in the fold's latents ({len(subject_ids)} subjects, e.g. {subject_ids[:3]})"
    )


def resolve_endpoint(spec: str, subject: str | None, modality: str | None, subject_ids: list[str],
                     names: list[str]) -> tuple[int, int]:
    """``(subject row, modality index)`` of an endpoint (see the module docstring)."""
    if ":" in spec:
        subj, mod = spec.rsplit(":", 1)
        return resolve_subject(subj, subject_ids), resolve_modality(mod, names)
    if modality is not None and subject is None:
        return resolve_subject(spec, subject_ids), resolve_modality(modality, names)
    if subject is not None and modality is None:
        return resolve_subject(subject, subject_ids), resolve_modality(spec, names)
    raise InputError(
        f"endpoint {spec!r}: give SUBJECT:MODALITY, or subjects with --modality, or modalities with --subject "
        "(not both options)"
    )


def run(args: argparse.Namespace) -> int:
    from fusion.data.neuromark import modality_labels
    from fusion.devices import default_device
    from fusion.interpret.generation import decode_interpolation, sample_prior
    from fusion.models.from_run import load_fold_model
    from fusion.report.vae_figures import plot_volume_strip
    from fusion.rundir import load_fold_latents

    device = args.device or default_device()
    affine, meta, note = _prepared_meta(args.logdir, args.prepared)
    model = load_fold_model(args.logdir, args.fold, device=device, in_shape=(meta or {}).get("shape"))
    if note:
        log.warning(note)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"logdir": str(args.logdir), "fold": args.fold, "affine_note": note}

    if args.command == "sample":
        volumes, z = sample_prior(model, args.n, seed=args.seed, device=device)
        io.save_nifti(out / "samples.nii.gz", np.moveaxis(volumes, 0, -1), affine)
        io.save_npz(out / "samples_latents.npz", z=z)
        plot_volume_strip(volumes, out / "samples.png", titles=[f"sample {i}" for i in range(len(volumes))],
                          title=f"decoded draws from the prior N(0, I), seed {args.seed}")
        info.update(n=args.n, seed=args.seed, files=["samples.nii.gz", "samples_latents.npz", "samples.png"])
        io.write_json(out / "samples.json", info)
        print(f"wrote {args.n} samples to {out / 'samples.nii.gz'}")
        return 0

    latents = load_fold_latents(args.logdir, args.fold)
    mu = latents["mu"]
    if "subject_ids" not in latents:
        raise InputError(f"{args.logdir}/fold_{args.fold:02d}/latents.npz has no subject_ids")
    subject_ids = [str(s) for s in latents["subject_ids"]]
    names, _ = modality_labels(mu.shape[1], meta)
    s0, m0 = resolve_endpoint(args.start, args.subject, args.modality, subject_ids, names)
    s1, m1 = resolve_endpoint(args.end, args.subject, args.modality, subject_ids, names)
    volumes, path = decode_interpolation(model, mu[s0, m0], mu[s1, m1], steps=args.steps, method=args.method)
    io.save_nifti(out / "interpolation.nii.gz", np.moveaxis(volumes, 0, -1), affine)
    io.save_npz(out / "interpolation_latents.npz", z=path.astype(np.float32))
    start_name = f"{subject_ids[s0]} {names[m0]}"
    end_name = f"{subject_ids[s1]} {names[m1]}"
    titles = [f"{t:.2f}" for t in np.linspace(0, 1, args.steps)]
    titles[0], titles[-1] = start_name, end_name
    plot_volume_strip(volumes, out / "interpolation.png", titles=titles,
                      title=f"{args.method} interpolation: {start_name} -> {end_name}")
    info.update(
        start={"subject": subject_ids[s0], "modality": m0, "modality_name": names[m0]},
        end={"subject": subject_ids[s1], "modality": m1, "modality_name": names[m1]},
        steps=args.steps, method=args.method,
        files=["interpolation.nii.gz", "interpolation_latents.npz", "interpolation.png"],
    )
    io.write_json(out / "interpolation.json", info)
    print(f"wrote a {args.steps}-step interpolation {start_name} -> {end_name} to {out / 'interpolation.nii.gz'}")
    return 0
