"""Table I (VAE vs PCA fusion over latent sizes) and the seeds table, as Markdown and CSV.

Table I has the rows and columns of Geenjaar et al. (2021), Table I: one row per method (VAE,
early fusion PCA, late fusion PCA), one column per latent dimension, each cell the ROC-AUC averaged
over the test folds. Markdown cells add the standard deviation over folds and bold the best method
of each column, as the paper does; ``n/a`` marks a component count the training set cannot
support, ``not run`` a job whose results are missing.

Records (one per method and latent size) are dicts with keys ``method``, ``label``, ``latent_dim``,
``status`` (``"ok"``, ``"n/a"`` or ``"not run"``), ``auc`` (per-fold list or None), ``auc_mean``,
``auc_std``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fusion.errors import InputError

if TYPE_CHECKING:
    import pandas

__all__ = [
    "ROW_ORDER",
    "seeds_frame",
    "seeds_markdown",
    "table1_frame",
    "table1_long",
    "table1_markdown",
    "vae_record",
    "write_seeds",
    "write_table1",
]

NA = "n/a"
NOT_RUN = "not run"

#: method key -> row label, in the paper's row order
ROW_ORDER: dict[str, str] = {
    "vae": "VAE",
    "joint": "Early fusion PCA (joint)",
    "per_modality": "Late fusion PCA (per-modality)",
}


def vae_record(results: dict, source: str | None = None) -> dict:
    """A table record from a VAE run's ``results.json`` (``auc``, ``auc_mean``, ``auc_std``, ...)."""
    where = f" in {source}" if source else ""
    for key in ("auc", "latent_dim"):
        if key not in results:
            raise InputError(f"results{where} lack the field {key!r} (expected a VAE results.json)")
    aucs = [float(a) for a in results["auc"]]
    if not aucs:
        raise InputError(f"results{where} hold no per-fold AUC")
    return {
        "method": "vae",
        "label": ROW_ORDER["vae"],
        "latent_dim": int(results["latent_dim"]),
        "seed": results.get("seed"),
        "status": "ok",
        "auc": aucs,
        "auc_mean": float(results.get("auc_mean", np.mean(aucs))),
        "auc_std": float(results.get("auc_std", np.std(aucs))),
    }


def _dim(record: dict) -> int:
    """A record's latent dimension: ``latent_dim`` (VAE), else ``n_components`` (PCA baselines)."""
    return int(record["latent_dim"] if "latent_dim" in record else record["n_components"])


def _records_by_cell(records: Sequence[dict]) -> dict[tuple[str, int], dict]:
    cells = {}
    for r in records:
        key = (r["method"], _dim(r))
        if key in cells:
            raise InputError(f"two results for {ROW_ORDER.get(key[0], key[0])} at latent dimension {key[1]}")
        cells[key] = r
    return cells


def _methods(records: Sequence[dict]) -> list[str]:
    present = {r["method"] for r in records}
    return [m for m in ROW_ORDER if m in present] + sorted(present - set(ROW_ORDER))


def _label(method: str, records: Sequence[dict]) -> str:
    for r in records:
        if r["method"] == method and r.get("label"):
            return r["label"]
    return ROW_ORDER.get(method, method)


def table1_frame(records: Sequence[dict], latent_dims: Sequence[int]) -> pandas.DataFrame:
    """Wide Table I: a ``method`` column, then one column per latent dimension (mean AUC or text)."""
    import pandas as pd

    cells = _records_by_cell(records)
    rows = []
    for method in _methods(records):
        row: dict[str, str | float] = {"method": _label(method, records)}
        for l in latent_dims:
            r = cells.get((method, int(l)))
            if r is None:
                row[str(l)] = NOT_RUN
            elif r["status"] != "ok":
                row[str(l)] = r["status"]
            else:
                row[str(l)] = round(float(r["auc_mean"]), 4)
        rows.append(row)
    return pd.DataFrame(rows, columns=["method"] + [str(l) for l in latent_dims])


def table1_long(records: Sequence[dict]) -> pandas.DataFrame:
    """Every record with its per-fold AUCs (``;``-separated), for re-analysis."""
    import pandas as pd

    rows = []
    for r in records:
        ok = r["status"] == "ok"
        rows.append(
            {
                "method": r["method"],
                "label": r.get("label", ROW_ORDER.get(r["method"], r["method"])),
                "latent_dim": _dim(r),
                "status": r["status"],
                "auc_mean": float(r["auc_mean"]) if ok else None,
                "auc_std": float(r["auc_std"]) if ok else None,
                "n_folds": len(r["auc"]) if ok else None,
                "auc_per_fold": ";".join(f"{a:.6f}" for a in r["auc"]) if ok else "",
            }
        )
    return pd.DataFrame(rows)


def table1_markdown(records: Sequence[dict], latent_dims: Sequence[int], caption: str = "") -> str:
    """Table I as Markdown: ``mean ± std`` per cell, the best mean of each column in bold."""
    cells = _records_by_cell(records)
    best = {}
    for l in latent_dims:
        means = [(r["auc_mean"], m) for (m, ll), r in cells.items() if ll == int(l) and r["status"] == "ok"]
        if means:
            best[int(l)] = max(means)[1]
    header = "| Latent dimension | " + " | ".join(str(l) for l in latent_dims) + " |"
    lines = [header, "|---" * (len(latent_dims) + 1) + "|"]
    for method in _methods(records):
        row = [_label(method, records)]
        for l in latent_dims:
            r = cells.get((method, int(l)))
            if r is None:
                row.append(NOT_RUN)
            elif r["status"] != "ok":
                row.append(r["status"])
            else:
                text = f"{r['auc_mean']:.4f} ± {r['auc_std']:.4f}"
                row.append(f"**{text}**" if best.get(int(l)) == method else text)
        lines.append("| " + " | ".join(row) + " |")
    text = "\n".join(lines) + "\n"
    if caption:
        text = f"**Table I.** {caption}\n\n" + text
    return text


def write_table1(
    out_dir: str | os.PathLike, records: Sequence[dict], latent_dims: Sequence[int], caption: str = ""
) -> dict[str, Path]:
    """Write ``table1.md``, ``table1.csv`` (wide, the paper's layout) and ``table1_long.csv``."""
    from fusion import io

    out_dir = Path(out_dir)
    return {
        "markdown": io.write_text(out_dir / "table1.md", table1_markdown(records, latent_dims, caption)),
        "csv": io.write_csv(out_dir / "table1.csv", table1_frame(records, latent_dims)),
        "long_csv": io.write_csv(out_dir / "table1_long.csv", table1_long(records)),
    }


# --------------------------------------------------------------------------------------------
# seeds
# --------------------------------------------------------------------------------------------


def seeds_frame(records: Sequence[dict]) -> pandas.DataFrame:
    """One row per seed (AUC mean/std over folds), then a ``mean ± std over seeds`` row.

    Args:
        records: VAE records (see :func:`vae_record`) that carry a ``seed``.
    """
    import pandas as pd

    if not records:
        raise InputError("no seed runs to tabulate")
    dims = {int(r["latent_dim"]) for r in records}
    if len(dims) != 1:
        raise InputError(f"seed runs have different latent dimensions {sorted(dims)}; expected one")
    seeds = [r.get("seed") for r in records]
    if any(s is None for s in seeds) or len(set(seeds)) != len(seeds):
        raise InputError(f"every seed run needs its own seed, got {seeds}")
    ordered = sorted(records, key=lambda r: int(r["seed"]))
    rows = [
        {"seed": str(r["seed"]), "latent_dim": int(r["latent_dim"]), "n_folds": len(r["auc"]),
         "auc_mean": float(r["auc_mean"]), "auc_std": float(r["auc_std"])}
        for r in ordered
    ]
    means = np.array([row["auc_mean"] for row in rows])
    rows.append(
        {"seed": "mean over seeds", "latent_dim": rows[0]["latent_dim"], "n_folds": None,
         "auc_mean": float(means.mean()), "auc_std": float(means.std())}
    )
    return pd.DataFrame(rows)


def seeds_markdown(frame: pandas.DataFrame, caption: str = "") -> str:
    """The seeds table as Markdown; the last row's std is over seeds, the others' over folds."""
    lines = ["| Seed | Latent dimension | ROC-AUC (mean ± std over folds) |", "|---|---|---|"]
    for row in frame.iloc[:-1].itertuples():
        lines.append(f"| {row.seed} | {row.latent_dim} | {row.auc_mean:.4f} ± {row.auc_std:.4f} |")
    last = frame.iloc[-1]
    lines.append(f"| **mean ± std over {len(frame) - 1} seeds** | {last.latent_dim} | "
                 f"**{last.auc_mean:.4f} ± {last.auc_std:.4f}** |")
    text = "\n".join(lines) + "\n"
    if caption:
        text = f"**Seeds.** {caption}\n\n" + text
    return text


def write_seeds(out_dir: str | os.PathLike, records: Sequence[dict], caption: str = "") -> dict[str, Path]:
    """Write ``seeds.md`` and ``seeds.csv``."""
    from fusion import io

    frame = seeds_frame(records)
    out_dir = Path(out_dir)
    return {
        "markdown": io.write_text(out_dir / "seeds.md", seeds_markdown(frame, caption)),
        "csv": io.write_csv(out_dir / "seeds.csv", frame),
    }
