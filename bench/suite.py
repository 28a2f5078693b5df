"""Run every benchmark, print one table, write ``results.json``."""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from bench.common import Sizes, check_target, make_cohort

#: Keys of ``results.json``, in table order.
KEYS = ("runner_overhead", "prepared_vs_niigz", "loader_vs_train", "mfu", "pca_peak_gib", "ddp2_vs_1")


def run_all(out: Path, quick: bool = False, threads: int = 1, log=print) -> dict[str, Any]:
    """Measure every benchmark; write ``out/results.json`` and return its content.

    Args:
        out: output folder (created).
        quick: shrink every size so the whole suite runs in well under a minute.
        threads: intra-op threads of every process (torch and OpenMP). 1 by default: on a shared,
            oversubscribed machine OpenMP teams of 2+ threads stall on descheduled threads and
            time several times slower, which would distort every ratio.
        log: where progress lines go.
    """
    import torch

    from bench.data_path import loader_vs_train, prepared_vs_niigz
    from bench.ddp import ddp2_vs_1
    from bench.mfu import mfu
    from bench.pca_memory import pca_peak
    from bench.timed_runner import compose_config
    from bench.training import runner_overhead
    from fusion.io import write_json

    logging.getLogger("catalyst").setLevel(logging.WARNING)
    torch.set_num_threads(threads)
    sizes = Sizes.quick() if quick else Sizes()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    seconds: dict[str, float] = {}

    def measure(key: str, fn) -> None:
        log(f"bench: {key}")
        start = time.perf_counter()
        results[key] = fn()
        seconds[key] = time.perf_counter() - start
        log(f"  ({seconds[key]:.0f} s)")

    with tempfile.TemporaryDirectory(prefix="fusion_bench_") as tmp:
        tmp = Path(tmp)
        log(f"bench: building the synthetic cohorts ({sizes.data_size} x {sizes.data_subjects}, "
            f"{sizes.train_size} x {sizes.train_subjects})")
        manifest, prepared = make_cohort(tmp / "data", sizes.data_size, sizes.data_subjects)
        if (sizes.train_size, sizes.train_subjects) == (sizes.data_size, sizes.data_subjects):
            train_prepared = prepared
        else:
            train_prepared = make_cohort(tmp / "train", sizes.train_size, sizes.train_subjects)[1]
        reduced = compose_config(tmp / "cfg", prepared, 1, sizes.batch_size)
        seconds["cohorts"] = time.perf_counter() - started

        grid = tuple(int(s) for s in OmegaConf.load(prepared / "meta.json")["shape"])
        measure("runner_overhead", lambda: runner_overhead(tmp / "runs", train_prepared, sizes, log=log))
        measure("prepared_vs_niigz", lambda: prepared_vs_niigz(manifest, prepared, sizes, log=log))
        measure("loader_vs_train", lambda: loader_vs_train(reduced, prepared, sizes, log=log))
        measure("mfu", lambda: mfu(OmegaConf.to_container(reduced.model), grid, sizes.paper_volumes,
                                   sizes.paper_steps, reduced_volumes=54 * sizes.batch_size,
                                   paper_grid=sizes.paper_grid, threads=threads, log=log))
        measure("pca_peak_gib", lambda: pca_peak(sizes.pca_subjects, sizes.pca_dtype, threads=threads, log=log))
        measure("ddp2_vs_1", lambda: ddp2_vs_1(tmp / "ddp", train_prepared, sizes, threads=threads, log=log))
    results["meta"] = {"quick": quick, "seconds": time.perf_counter() - started, "seconds_per_benchmark": seconds,
                       "threads": threads, "load_average": list(os.getloadavg()), "cpus": os.cpu_count(),
                       "sizes": sizes.__dict__,
                       "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    write_json(out / "results.json", results)
    return results


def _fmt(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1e6 or magnitude < 1e-3:
        return f"{value:.3g}"
    return f"{value:.4g}"


def format_table(results: dict[str, Any]) -> str:
    """One row per benchmark: numerator, denominator, ratio, target, met."""
    rows = [("benchmark", "numerator", "denominator", "ratio", "target", "met")]
    for key in KEYS:
        entry = results[key]
        met = "report" if entry["met"] is None else ("yes" if entry["met"] else "NO")
        rows.append((key, f"{_fmt(entry['numerator'])} {entry['numerator_label']}",
                     f"{_fmt(entry['denominator'])} {entry['denominator_label']}",
                     f"{entry['ratio']:.3f}", entry["target"] or "-", met))
        if key == "runner_overhead":
            d = entry["details"]
            sp, ci = d["ratio_spread"], d["median_ratio_ci95"]
            rows.append(("runner_overhead (median)", f"{sp['n']} batch pairs, IQR {sp['q1']:.3f}-{sp['q3']:.3f}",
                         f"range {sp['min']:.3f}-{sp['max']:.3f}, 95% CI {ci[0]:.3f}-{ci[1]:.3f}",
                         f"{d['median_ratio']:.3f}", entry["target"],
                         "yes" if check_target(d["median_ratio"], entry["target"]) else "NO"))
        if key == "mfu":
            red = entry["details"]["reduced"]
            rows.append(("mfu (reduced)", f"{_fmt(red['numerator'])} reduced step FLOP/s",
                         f"{_fmt(red['denominator'])} {entry['denominator_label']}", f"{red['ratio']:.3f}", "-",
                         "report"))
        if key == "ddp2_vs_1" and "same_threads" in entry["details"]:
            same = entry["details"]["same_threads"]
            rows.append(("ddp2_vs_1 (same threads)", f"{_fmt(same['numerator'])} {entry['numerator_label']}",
                         f"{_fmt(same['denominator'])} 1 proc x {same['threads']} thr subj/s",
                         f"{same['ratio']:.3f}", "-", "report"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"mfu peak: {results['mfu']['details']['peak_source']}")
    return "\n".join(lines)
