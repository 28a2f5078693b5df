"""``fusion ccl-validate``: gCAM-CCL with the defaults on the validation family of cohorts.

For every variant of :mod:`fusion.data.ccl_variants` and every cohort seed:

1. builds the cohort (``OUT/cohorts/<variant>_s<seed>``) unless it exists;
2. trains and explains gCAM-CCL with the chosen config (``catalyst-dl run --hydra``, a subprocess:
   this module never imports catalyst or hydra) into ``OUT/runs/<variant>_s<seed>``: results with
   CIs, p-values, the linear baselines on the same splits and the verdict; consensus recovery;
3. fits the Table III baselines on the same splits (``fusion ccl-table3``'s code);
4. runs the mass-univariate reference (edge- and SNP-wise t-tests, BH-FDR) on the same subjects.

Writes ``OUT/validation.json`` and ``OUT/validation.md`` (per run and per variant: the mean over
seeds and the pass/fail of each target) and prints its runtime. A killed validation resumes: built
cohorts, finished runs and Table III files are reused, and an interrupted training continues
from its last epoch (the run's autoresume).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from fusion.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_OUT = "runs/ccl_validate"
#: Overrides of ``--quick``: a tiny cohort and a short training, to exercise every step in a test.
QUICK_COHORT = {"n_subjects": 100}
QUICK_OVERRIDES = ["stage.num_epochs=1", "split.repetitions=2", "callbacks.results.n_perm=200",
                   "callbacks.results.n_boot=500", "callbacks.activation_maps.ig_steps=4",
                   "callbacks.activation_maps.figures=false"]
TARGETS: dict[str, Any] = {"accuracy_margin": 0.03, "null_range": (0.40, 0.60), "recovery": 0.7, "univariate": 0.9}


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    from fusion.data.ccl_variants import variant_names

    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--variants", default=",".join(variant_names()),
                        help=f"comma-separated variants (default: all of {', '.join(variant_names())})")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated cohort seeds (default 0,1,2)")
    parser.add_argument("--config-dir", default=None, help="Hydra config folder (default: the shipped configs)")
    parser.add_argument("--config-name", default="ccl", help="top-level config (default ccl: the defaults)")
    parser.add_argument("--no-table3", action="store_true", help="skip the Table III baselines (RF, DT, MLP, CCL+*)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny cohorts (100 subjects), 1 epoch, 2 splits: checks the machinery, not the science")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of every training run, after `--`")


def _parse_list(text: str, kind: type, what: str) -> list:
    try:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ConfigError(f"--{what}: expected a comma-separated list, got {text!r}") from err
    if not values:
        raise ConfigError(f"--{what}: empty list")
    return values


def build_cohort(out: Path, variant: str, seed: int, quick: bool = False) -> Path:
    """The variant's cohort in ``out/cohorts/<variant>_s<seed>`` (built once); its manifest."""
    from fusion.data.ccl_variants import variant_knobs
    from fusion.data.synthetic_ccl import make_ccl_cohort

    folder = out / "cohorts" / f"{variant}_s{seed}"
    manifest = folder / "manifest.csv"
    if manifest.is_file():  # written last by make_ccl_cohort: its presence means a complete cohort
        return manifest
    knobs = variant_knobs(variant)
    if quick:
        knobs.update(QUICK_COHORT)
    return make_ccl_cohort(folder, seed=seed, overwrite=True, **knobs)


def univariate_reference(manifest: Path, results: dict) -> dict[str, Any]:
    """The t-test/FDR reference on every labelled subject of the run's cohort, with its recovery."""
    from fusion.data.ccl_dataset import CCLDataset
    from fusion.interpret.recovery import load_ground_truth
    from fusion.interpret.univariate import univariate_features, univariate_recovery

    data = dict((results.get("config") or {}).get("data") or {})
    dataset = CCLDataset(manifest, genotypes=data.get("genotypes"), imputation=data.get("imputation", "mode"))
    dataset.fit(np.arange(len(dataset)))  # imputation only (no standardisation: t is scale-free)
    fc, snps, y = dataset.arrays()
    found = univariate_features(fc, snps, y)
    truth = load_ground_truth(manifest.parent / "ground_truth.json")
    return univariate_recovery(found, truth)


def run_one(out: Path, variant: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Cohort, training, Table III and reference of one variant and seed; the table row."""
    from fusion import io
    from fusion.cli.ccl_table3 import _finished, table3, train_ccl
    from fusion.evaluate.baselines import BaselineSettings

    manifest = build_cohort(out, variant, seed, args.quick)
    logdir = out / "runs" / f"{variant}_s{seed}"
    if not (_finished(logdir) and (logdir / "significant_features.json").is_file()):
        overrides = [f"data.manifest={manifest}", *(QUICK_OVERRIDES if args.quick else []), *args.overrides]
        train_ccl(logdir, args.config_dir, args.config_name, overrides)
    results = io.read_json(logdir / "results.json")
    row: dict[str, Any] = {"variant": variant, "seed": seed, "logdir": str(logdir),
                           "gcam_ccl": results["accuracy"], "gcam_ccl_ci": results.get("accuracy_ci"),
                           "gcam_ccl_p": results.get("accuracy_p"), "auc": results.get("auc"),
                           "interpretable": (results.get("verdict") or {}).get("interpretable"),
                           "n_splits": results.get("n_folds")}
    verdict = results.get("verdict") or {}
    for view, own in (verdict.get("views") or {}).items():
        row[f"view_{view}"] = own.get("accuracy")
    for feature, own in (verdict.get("features") or {}).items():
        row[f"{feature}_interpretable"] = own.get("interpretable")
    for feature, agreement in (results.get("univariate_agreement") or {}).items():
        row[f"{feature}_corroborated"] = agreement.get("share_corroborated")
    base = results.get("baselines") or {}
    row.update({f"{name.lower()}": b["accuracy"] for name, b in base.items()})
    row["svm_p"] = (base.get("SVM") or {}).get("accuracy_p")
    if not args.no_table3:
        if not (logdir / "table3.csv").is_file():
            settings = BaselineSettings(rf_trees=20, mlp_max_iter=20) if args.quick else None
            table3(logdir, settings)
        import pandas as pd

        for rec in pd.read_csv(logdir / "table3.csv").to_dict("records"):
            row[f"t3_{rec['method']}"] = float(rec["ACC"])
    linear = [row[k] for k in ("svm", "logist") if k in row]
    row["best_linear"] = max(linear) if linear else None
    rec = results.get("recovery") or {}
    row.update({k: rec.get(k) for k in ("edge_precision", "edge_recall", "snp_precision", "snp_recall")})
    uni = univariate_reference(manifest, results)
    row.update({f"uni_{k}": v for k, v in uni.items() if k.endswith(("precision", "recall"))})
    return row


def _mean_of(group: list[dict[str, Any]], key: str) -> float | None:
    """Mean of the numeric values of ``key`` over ``group`` (None when there is none)."""
    vals = [r[key] for r in group if isinstance(r.get(key), (int, float))]
    return float(np.mean(vals)) if vals else None


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant: means over seeds and whether each target of the validation is met."""
    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows):
        group = [r for r in rows if r["variant"] == variant]
        s: dict[str, Any] = {"variant": variant, "n_seeds": len(group)}
        for key in ("gcam_ccl", "best_linear", "svm", "logist", "edge_precision", "edge_recall", "snp_precision",
                    "snp_recall", "uni_edge_precision", "uni_edge_recall", "uni_snp_precision", "uni_snp_recall"):
            s[key] = _mean_of(group, key)
        s["interpretable"] = sum(bool(r.get("interpretable")) for r in group)
        for key in ("view_fc", "view_snp"):
            s[key] = _mean_of(group, key)
        for feature in ("edges", "snps"):
            known = [r for r in group if f"{feature}_interpretable" in r]  # runs before the per-view verdict lack it
            s[f"{feature}_interpretable"] = sum(bool(r[f"{feature}_interpretable"]) for r in known) if known else None
            s[f"{feature}_corroborated"] = _mean_of(group, f"{feature}_corroborated")
        if variant == "null":
            lo, hi = TARGETS["null_range"]
            s["pass_accuracy"] = s["gcam_ccl"] is not None and lo <= s["gcam_ccl"] <= hi and all(
                (r.get("gcam_ccl_p") or 0) > 0.05 for r in group)
        else:
            s["pass_accuracy"] = None if s["best_linear"] is None or s["gcam_ccl"] is None else \
                bool(s["gcam_ccl"] >= s["best_linear"] - TARGETS["accuracy_margin"])
        for view in ("edge", "snp"):
            uni_ok = all((s[f"uni_{view}_{m}"] or 0) >= TARGETS["univariate"] for m in ("precision", "recall"))
            got = [s[f"{view}_{m}"] for m in ("precision", "recall")]
            s[f"pass_{view}s"] = (None if not uni_ok or variant == "null" or None in got
                                  else all(g >= TARGETS["recovery"] for g in got))
        out.append(s)
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def markdown(summary: list[dict[str, Any]], rows: list[dict[str, Any]], seconds: float) -> str:
    """The validation table (per variant) and the per-run rows."""
    cols = [("variant", "variant"), ("n_seeds", "seeds"), ("gcam_ccl", "gCAM-CCL ACC"),
            ("best_linear", "best linear ACC"), ("pass_accuracy", "ACC target"),
            ("interpretable", "runs interpretable"), ("view_fc", "FC view ACC"), ("view_snp", "SNP view ACC"),
            ("edges_interpretable", "runs: edges readable"), ("snps_interpretable", "runs: SNPs readable"),
            ("edges_corroborated", "edges in t-test"), ("snps_corroborated", "SNPs in t-test"),
            ("edge_precision", "edge P"), ("edge_recall", "edge R"),
            ("uni_edge_precision", "t-test edge P"), ("uni_edge_recall", "t-test edge R"),
            ("snp_precision", "SNP P"), ("snp_recall", "SNP R"),
            ("uni_snp_precision", "t-test SNP P"), ("uni_snp_recall", "t-test SNP R"),
            ("pass_edges", "edge target"), ("pass_snps", "SNP target")]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(s.get(k)) for k, _ in cols) + " |" for s in summary]
    run_cols = ["variant", "seed", "gcam_ccl", "gcam_ccl_p", "svm", "logist", "interpretable", "view_fc", "view_snp",
                "edge_precision", "edge_recall", "snp_precision", "snp_recall"]
    run_lines = ["| " + " | ".join(run_cols) + " |", "|" + "---|" * len(run_cols)]
    run_lines += ["| " + " | ".join(_fmt(r.get(k)) for k in run_cols) + " |" for r in rows]
    return "\n".join([
        "# gCAM-CCL validation family", "",
        f"Targets: ACC >= best linear baseline - {TARGETS['accuracy_margin']} (mean over seeds); null ACC in "
        f"{list(TARGETS['null_range'])} with p > 0.05; edge/SNP precision and recall >= {TARGETS['recovery']} where "
        f"the t-test/FDR reference reaches >= {TARGETS['univariate']} ('-': not applicable).", "",
        *lines, "", "## Runs", "", *run_lines, "", f"Runtime: {seconds:.0f} s.", ""])


def run(args: argparse.Namespace) -> int:
    from fusion import io
    from fusion.data.ccl_variants import variant_knobs

    variants = _parse_list(args.variants, str, "variants")
    for name in variants:
        variant_knobs(name)  # unknown names fail before any work, listing the valid ones
    seeds = _parse_list(args.seeds, int, "seeds")
    out = Path(args.out)
    t0 = time.time()
    rows = []
    for variant in variants:
        for seed in seeds:
            log.info("validation: %s, cohort seed %d", variant, seed)
            rows.append(run_one(out, variant, seed, args))
            io.write_json(out / "validation.json", {"rows": rows, "summary": summarise(rows), "partial": True})
    seconds = time.time() - t0
    summary = summarise(rows)
    io.write_json(out / "validation.json", {"rows": rows, "summary": summary, "targets": TARGETS,
                                            "config_name": args.config_name, "overrides": args.overrides,
                                            "quick": bool(args.quick), "runtime_s": seconds})
    text = markdown(summary, rows, seconds)
    io.write_text(out / "validation.md", text)
    print(text)
    print(f"ccl-validate: {len(rows)} run(s) in {seconds:.0f} s -> {out / 'validation.md'}")
    return 0
