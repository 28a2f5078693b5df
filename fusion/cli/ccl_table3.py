"""``fusion ccl-table3``: gCAM-CCL and the Table III baselines on the same test subjects.

1. Trains gCAM-CCL with ``catalyst-dl run --hydra --config-dir conf --config-name ccl
   logdir=<LOGDIR> [overrides]`` as a subprocess, unless LOGDIR already holds a finished run
   (``results.json`` + checkpoints; ``--retrain`` forces training);
2. rebuilds the cohort and the network from the nodes recorded in ``results.json``, and for every
   fold of ``splits.json`` fits the baselines (:mod:`fusion.evaluate.baselines`) on that fold's
   training + validation subjects and scores them on its test subjects;
3. writes ``table3.csv`` / ``table3.md`` (means over folds; one fold by default) and refreshes
   ``report.md``.

This module starts Catalyst only as a separate process; it never imports catalyst or hydra.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fusion.cli.launch import quiet_entry_point, training_command
from fusion.errors import ConfigError, InputError

if TYPE_CHECKING:
    import pandas

log = logging.getLogger(__name__)

DEFAULT_LOGDIR = "runs/ccl_table3"


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--logdir", default=DEFAULT_LOGDIR, help=f"run folder (default {DEFAULT_LOGDIR})")
    parser.add_argument("--config-dir", default=None, help="Hydra config folder (default: the shipped configs)")
    parser.add_argument("--config-name", default="ccl", help="top-level config (default ccl; ccl_paper for the paper)")
    parser.add_argument("--retrain", action="store_true", help="train gCAM-CCL even if LOGDIR holds a finished run")
    parser.add_argument("--with-maps", action="store_true",
                        help="keep the activation-map callback when training (off by default: Table III needs no maps)")
    parser.add_argument("--svm-c", type=float, default=1.0, help="C of the linear SVMs")
    parser.add_argument("--rf-trees", type=int, default=300, help="trees of the random forests")
    parser.add_argument("--mlp-hidden", type=int, default=128, help="hidden units of the MLP")
    parser.add_argument("--seed", type=int, default=42, help="random_state of the baselines")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the training run, after `--`")


def _finished(logdir: Path) -> bool:
    return (logdir / "results.json").is_file() and (logdir / "splits.json").is_file() \
        and any(logdir.glob("fold_*/checkpoints/best.pth"))


def train_ccl(logdir: Path, config_dir: str | None, config_name: str, overrides: list[str]) -> None:
    """Run the gCAM-CCL training as a subprocess (its output streams to this terminal)."""
    cmd = training_command(config_name, [f"logdir={logdir}", *overrides], config_dir)
    log.info("training gCAM-CCL: %s", " ".join(cmd))
    proc = subprocess.run(cmd, env=quiet_entry_point())
    if proc.returncode != 0:
        raise InputError(f"gCAM-CCL training failed (exit {proc.returncode}): {' '.join(cmd)}")


def table3(logdir: str | Path, settings=None) -> pandas.DataFrame:
    """Baselines and gCAM-CCL on every fold of a finished run; writes table3.csv/.md; returns the table."""
    import pandas as pd
    from tqdm import tqdm

    from fusion import io
    from fusion.data.folds import load_folds
    from fusion.evaluate import baselines as bl
    from fusion.report.ccl_report import markdown_table, write_ccl_report

    logdir = Path(logdir)
    if not _finished(logdir):
        raise InputError(
            f"{logdir} holds no finished gCAM-CCL run (results.json, splits.json, fold_*/checkpoints/best.pth)"
        )
    results = io.read_json(logdir / "results.json")
    config = results.get("config")
    if not config or not config.get("data") or not config.get("model"):
        raise InputError(f"{logdir / 'results.json'} records no data/model config (written by an older version?)")
    dataset = bl.build_from_config(config["data"])
    for key in ("n_rois", "n_snps"):  # sizes the run inferred from the data (data.n_rois/n_snps null)
        if key in config["data"] and config["data"][key] is None:
            for view in (config["model"].get("views") or {}).values():
                if isinstance(view, dict) and key in view:
                    view[key] = int(getattr(dataset.info, key))
    folds = load_folds(logdir / "splits.json", dataset.subject_ids)
    settings = settings or bl.BaselineSettings()
    per_fold = []
    # the checkpoint the run's test metrics came from (best_per_view.pth in conf/ccl.yaml)
    checkpoint = str(config.get("test_checkpoint") or "best.pth")
    for k, fold in enumerate(tqdm(folds, desc="Table III", unit="split")):
        stage = f"fold_{k:02d}"
        ckpt = logdir / stage / "checkpoints" / checkpoint
        if not ckpt.is_file():
            log.warning("skipping %s: no checkpoint", stage)
            continue
        t0 = time.time()
        dataset.fit(fold.train)  # imputation and standardisation from this split's training subjects
        fit_idx = np.concatenate([fold.train, fold.val])
        fc, snps, y = dataset.arrays(np.arange(len(dataset)))
        X = bl.concat_features(fc, snps)
        preds = bl.classical_baselines(X[fit_idx], y[fit_idx], X[fold.test], settings)
        model = bl.build_from_config(config["model"])
        state = io.load_checkpoint(ckpt)
        model.load_state_dict(state["model_state_dict"])
        Z, proba = bl.ccl_representations(model, fc, snps)
        preds.update(bl.ccl_feature_baselines(Z[fit_idx], y[fit_idx], Z[fold.test], settings))
        # gCAM-CCL's row is the run's own test predictions, so Table III and results.json agree exactly.
        run_pred = logdir / stage / "test_predictions.csv"
        if not run_pred.is_file():
            raise InputError(f"{run_pred} is missing: the run's test predictions give Table III's gCAM-CCL row")
        saved = pd.read_csv(run_pred)
        if not np.array_equal(saved["index"].to_numpy(), fold.test):
            raise InputError(f"{run_pred} lists other test subjects than {logdir / 'splits.json'} for {stage}")
        preds["gCAM-CCL"] = saved["predicted"].to_numpy()
        if not np.array_equal(preds["gCAM-CCL"], proba[fold.test].argmax(axis=1)):
            log.warning("%s: the rebuilt network predicts differently from the run's test_predictions.csv", stage)
        rows = bl.score_rows(y[fold.test], preds)
        for row in rows:
            row["fold"] = stage
        per_fold += rows
        log.info("%s: baselines done in %.0f s", stage, time.time() - t0)
    if not per_fold:
        raise InputError(f"{logdir}: no fold with a checkpoint")
    long = pd.DataFrame(per_fold)
    order = {name: i for i, name in enumerate(bl.ROWS)}
    table = (long.groupby("method", sort=False)[list(bl.METRICS)].mean().reset_index())
    grouped = long.groupby("method", sort=False)
    table.insert(2, "ACC_sd", grouped["accuracy"].std(ddof=0).fillna(0.0).round(4).to_numpy())
    table["n_splits"] = grouped["fold"].nunique().to_numpy()
    table["n_test"] = grouped["n_test"].sum().to_numpy()
    table = table.sort_values("method", key=lambda s: s.map(lambda m: order.get(m, 99))).reset_index(drop=True)
    table = table.rename(columns={"accuracy": "ACC", "sensitivity": "SEN", "specificity": "SPF", "f1": "F1"})
    for col in ("ACC", "SEN", "SPF", "F1"):
        table[col] = table[col].round(4)
    io.write_csv(logdir / "table3.csv", table)
    if len(folds) > 1:
        io.write_csv(logdir / "table3_folds.csv", long)
    md = ["Table III: classification of low vs high score on the same test subjects: means over "
          f"{int(table['n_splits'].iloc[0])} split(s) ({int(table['n_test'].iloc[0])} test predictions; "
          "ACC_sd: SD over splits; positive class: high).", "",
          markdown_table(table.to_dict("records"), list(table.columns)), ""]
    io.write_text(logdir / "table3.md", "\n".join(md))
    write_ccl_report(logdir)
    return table


def run(args: argparse.Namespace) -> int:
    from fusion.evaluate.baselines import BaselineSettings

    logdir = Path(args.logdir)
    t0 = time.time()
    if args.retrain or not _finished(logdir):
        overrides = list(args.overrides)
        if not args.with_maps and not any(o.startswith("callbacks.activation_maps") for o in overrides):
            overrides.append("callbacks.activation_maps=null")
        train_ccl(logdir, args.config_dir, args.config_name, overrides)
    elif args.overrides:
        raise ConfigError(f"{logdir} already holds a finished run; overrides {args.overrides} would not apply "
                          "(pass --retrain or another --logdir)")
    t1 = time.time()
    settings = BaselineSettings(svm_C=args.svm_c, rf_trees=args.rf_trees, mlp_hidden=args.mlp_hidden, seed=args.seed)
    table = table3(logdir, settings)
    print((logdir / "table3.md").read_text())
    print(f"training {t1 - t0:.0f} s, baselines {time.time() - t1:.0f} s -> {logdir / 'table3.csv'}")
    return 0 if len(table) else 1
