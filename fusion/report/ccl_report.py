"""``report.md`` of a gCAM-CCL run: test metrics, Table III, recovery of planted effects, figures.

Reads only files of the run directory (``results.json``, ``table3.csv``, ``splits.json``, the
PNGs written by the interpretation step) and writes ``report.md`` beside them; figures are linked
with paths relative to the run directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fusion import io

_FIGURE_TITLES = (
    ("mean_maps_fc", "Averaged Grad-CAM and guided Grad-CAM FC maps per class (Figs. 2-3)"),
    ("mean_maps_snp", "Averaged SNP maps per class"),
    ("contrast_snp", "Class contrast of the SNP attributions (the SNP significance rule)"),
    ("activation_histograms", "Histograms of the FC activation maps per class (Fig. 4)"),
    ("connectome", "Significant FC edges on the Power-264 coordinates (Figs. 5-6)"),
    ("hub_degrees", "ROI hub degrees of the significant edges"),
)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    """A GitHub markdown table of ``rows`` (dicts) over ``columns``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


_FEATURE_NAMES = {"edges": ("FC", "edges"), "snps": ("SNP", "SNPs")}


def verdict_lines(verdict: dict) -> list[str]:
    """The report's opening lines: whether the maps may be read as findings, and why not."""
    if verdict.get("interpretable"):
        best = verdict.get("best_baseline")
        extra = f" and is not below the best linear baseline ({best})" if best else ""
        lines = [f"**Verdict:** gCAM-CCL beats chance (permutation p <= 0.05){extra}."]
        views = verdict.get("views") or {}
        blocked = [key for key, v in (verdict.get("features") or {}).items() if not v.get("interpretable", True)]
        for key in blocked:
            view, noun = _FEATURE_NAMES.get(key, (key, key))
            own = views.get(view.lower(), {})
            lines += ["", f"> **WARNING: the {noun} are NOT INTERPRETABLE on this run.** The {view} view alone "
                      f"is at chance (accuracy {own.get('accuracy', float('nan')):.3f}, permutation p = "
                      f"{own.get('accuracy_p', float('nan')):.3g}): the fused model's accuracy comes from the "
                      f"other view, and the {view} maps come from a view that shows no evidence of learning."]
        readable = [_FEATURE_NAMES.get(k, (k, k))[1] for k, v in (verdict.get("features") or {}).items()
                    if v.get("interpretable", True)]
        if readable:
            lines += ["", f"Its {' and '.join(readable)} may be read as findings, within the limits stated below."]
        elif "features" not in verdict:  # results.json written before the per-view verdict
            lines += ["", "Its maps may be read as findings, within the limits stated below."]
        if views:
            lines += ["", "Each view on its own (the collaborative layer's per-view softmax, same test subjects): "
                      + "; ".join(f"{view} accuracy {v.get('accuracy', float('nan')):.3f} "
                                  f"(p = {v.get('accuracy_p', float('nan')):.3g})" for view, v in views.items())
                      + "."]
        return [*lines, ""]
    return ["> **WARNING: gCAM-CCL's maps are NOT INTERPRETABLE on this run.**", ">",
            *[f"> - {reason}" for reason in verdict.get("reasons", [])], ">",
            "> Its significant edges and SNPs are not findings; prefer the linear baseline's "
            "result, or more subjects.", ""]


def agreement_lines(agreement: dict, top: bool) -> list[str]:
    """The t-test/FDR reference beside the maps' lists: a warning for the top of the report
    (``top``: only the lists that are not corroborated) or the full table."""
    if top:
        return [f"> **WARNING: the significant {_FEATURE_NAMES.get(k, (k, k))[1]} are not corroborated** by "
                f"the mass-univariate reference: {a['n_common']} of {a['n_selected']} are among the "
                f"{a['n_univariate']} the t-test/FDR finds on the same subjects. Read them beside that "
                "reference, not as findings on their own." for k, a in agreement.items()
                if a.get("corroborated") is False] + ([""] if any(
                    a.get("corroborated") is False for a in agreement.values()) else [])
    rows = [{"features": _FEATURE_NAMES.get(k, (k, k))[1], "network": a["n_selected"],
             "t-test/FDR": a["n_univariate"], "in both": a["n_common"],
             "share of the network's": a["share_corroborated"], "share of the t-test's": a["share_found"],
             "corroborated": a["corroborated"]} for k, a in agreement.items()]
    return ["## Agreement with the mass-univariate reference", "",
            "A two-sided t-test per edge and per SNP between the classes on every subject of the run's cohort, "
            "Benjamini-Hochberg FDR 0.05 per view (`fusion.interpret.univariate`). A list is corroborated when "
            "at least half of it is among the t-test's features. A network may find effects a t-test cannot "
            "(interactions), but a list that shares little with it needs another reason to be believed.", "",
            markdown_table(rows, list(rows[0])) if rows else "", ""]


def statistics_lines(results: dict) -> list[str]:
    """Mean accuracy/AUC over splits with 95% CIs and p-values, beside the linear baselines."""
    if "accuracy_ci" not in results:
        return []
    rows = [{"method": "gCAM-CCL", **{k: results.get(k) for k in ("accuracy", "accuracy_std", "auc")},
             "accuracy 95% CI": _ci(results.get("accuracy_ci")), "accuracy p": results.get("accuracy_p"),
             "AUC 95% CI": _ci(results.get("auc_ci"))}]
    for name, b in (results.get("baselines") or {}).items():
        rows.append({"method": name, "accuracy": b.get("accuracy"),
                     "accuracy_std": float(np.std(b.get("accuracy_folds", [0.0]))), "auc": b.get("auc"),
                     "accuracy 95% CI": _ci(b.get("accuracy_ci")), "accuracy p": b.get("accuracy_p"),
                     "AUC 95% CI": _ci(b.get("auc_ci"))})
    cols = ["method", "accuracy", "accuracy_std", "accuracy 95% CI", "accuracy p", "auc", "AUC 95% CI"]
    return ["## Accuracy with its uncertainty, beside the linear baselines (same splits)", "",
            f"Mean over {results.get('n_folds', 1)} split(s); CI: stratified bootstrap of the test subjects; "
            "p: label permutation (gCAM-CCL and Logist: of the fixed test predictions; SVM: refitted on "
            "permuted training labels).", "", markdown_table(rows, cols), ""]


def _ci(ci: object) -> str:
    return f"{ci[0]:.3f}-{ci[1]:.3f}" if isinstance(ci, (list, tuple)) and len(ci) == 2 else ""


def write_ccl_report(logdir: str | os.PathLike) -> Path:
    """Assemble ``logdir/report.md`` from the run's result files; returns its path."""
    import pandas as pd

    logdir = Path(logdir)
    parts = [f"# gCAM-CCL run `{logdir}`", ""]
    results = io.read_json(logdir / "results.json") if (logdir / "results.json").is_file() else None
    verdict = (results or {}).get("verdict") or {}
    if verdict:
        parts += verdict_lines(verdict)
    agreement = (results or {}).get("univariate_agreement") or {}
    if agreement and verdict.get("interpretable"):
        parts += agreement_lines(agreement, top=True)
    if results:
        names = results.get("class_names", ["low", "high"])
        parts += statistics_lines(results)
        parts += [
            "## Test-set classification",
            "",
            f"Classes: {names[0]} (0) vs {names[1]} (1, positive: sensitivity = recall of "
            f"'{results.get('positive_class', names[1])}'). Prediction = mean of the views' softmax.",
            f"Subjects: {results.get('n_train')} train, {results.get('n_val')} validation, "
            f"{results.get('n_test')} test over {results.get('n_folds', 1)} fold(s).",
            "",
            markdown_table([results], ["accuracy", "sensitivity", "specificity", "f1", "auc", "n_test"]),
            "",
        ]
        if results.get("n_folds", 1) > 1:
            parts += ["Per fold:", "", markdown_table(results["folds"], ["stage", "accuracy", "sensitivity",
                                                                       "specificity", "f1", "auc", "n_test"]), ""]
        rec = results.get("recovery")
        if isinstance(rec, dict):
            settings = ""
            summaries = sorted(logdir.glob("fold_*/interpretation/summary.json"))
            if summaries:
                summary = io.read_json(summaries[0])
                sig = summary.get("significance") or summary.get("settings", {}).get("significance_maps")
                if sig:
                    settings = " Significance settings per view: " + "; ".join(
                        f"{view}: `{spec}`" for view, spec in sig.items()) + "."
            if verdict.get("interpretable") is False:
                parts += ["**Not interpretable:** the edges and SNPs below come from a model that "
                          "does not beat chance or the linear baseline (see the top of this report); "
                          "they are listed for diagnosis, not as findings.", ""]
            else:
                for key, v in (verdict.get("features") or {}).items():
                    if not v.get("interpretable", True):
                        noun = _FEATURE_NAMES.get(key, (key, key))[1]
                        parts += [f"**Not interpretable:** the {noun} below come from a view at chance on its "
                                  "own (see the top of this report); listed for diagnosis, not as findings.", ""]
            parts += ["## Recovery of the planted effects", "",
                      "Significant features against the cohort's `ground_truth.json`, union over classes. "
                      "Frequency rule (the paper's): kept above a fraction of each subject's map maximum "
                      "in more than a share of a class's subjects (paper: 0.05 and 70%). Contrast rule: "
                      "the class's mean map minus the other subjects' mean map of that class, above a "
                      "robust z-score z (median and MAD over features) or, without z, a fraction of its "
                      "maximum." + settings, "",
                      markdown_table([rec], [k for k in ("edge_precision", "edge_recall", "snp_precision",
                                                         "snp_recall") if k in rec]), ""]
    if agreement:
        parts += agreement_lines(agreement, top=False)
    table3 = logdir / "table3.csv"
    if table3.is_file():
        frame = pd.read_csv(table3)
        parts += ["## Table III: gCAM-CCL and baselines on the same test subjects", "",
                  markdown_table(frame.to_dict("records"), list(frame.columns)), ""]
    figures = sorted(p for p in logdir.rglob("*.png") if not any(q.startswith(".") for q in p.parts))
    if figures:
        parts += ["## Figures", ""]
        used: set[Path] = set()
        for stem, title in _FIGURE_TITLES:
            group = [p for p in figures if p.name.startswith(stem) and p not in used]
            if not group:
                continue
            parts += [f"### {title}", ""]
            for p in group:
                used.add(p)
                parts += [f"![{p.stem}]({p.relative_to(logdir).as_posix()})", ""]
        rest = [p for p in figures if p not in used]
        if rest:
            parts += ["### Other figures", ""]
            parts += [f"![{p.stem}]({p.relative_to(logdir).as_posix()})\n" for p in rest]
    files = [name for name in ("results.json", "splits.json", "test_predictions.csv", "table3.csv", "table3.md")
             if (logdir / name).is_file()]
    if files:
        parts += ["## Files", "", *[f"- `{name}`" for name in files], ""]
    return io.write_text(logdir / "report.md", "\n".join(parts))
