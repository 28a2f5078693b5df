"""Test-set evaluation of each gCAM-CCL stage, and the run's results.json / report at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from catalyst.core import Callback, CallbackOrder, CallbackScope

from runners.base import is_main_process

METRIC_KEYS = ("accuracy", "sensitivity", "specificity", "f1", "auc")


def predict(model: torch.nn.Module, dataset: Any, indices: np.ndarray, view_names: list[str],
            batch_size: int = 16, device: Any = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Mean-of-views probabilities ``(k, C)`` and per-view probabilities ``(k, m, C)`` of subjects."""
    from torch.utils.data import DataLoader, Subset

    loader = DataLoader(Subset(dataset, [int(i) for i in indices]), batch_size=batch_size, shuffle=False)
    model.eval()
    per_view = []
    with torch.no_grad():
        for batch in loader:
            logits = model(*[batch[name].to(device) for name in view_names])
            per_view.append(torch.softmax(logits, dim=-1).cpu())
    pv = torch.cat(per_view).numpy() if per_view else np.zeros((0, 1, 2), np.float32)
    return pv.mean(axis=1), pv


class CCLTestEvaluationCallback(Callback):
    """At the end of a stage: load the stage's best checkpoint into the model, predict the test
    subjects, write ``<stage>/result.json`` and ``<stage>/test_predictions.csv``.

    The model keeps the best weights afterwards, so callbacks that run later at stage end (e.g.
    the activation maps) explain the model that was evaluated.

    Args:
        checkpoint: file name in ``<stage>/checkpoints`` (``best.pth``); missing -> last weights.
        batch_size: prediction batch size.
    """

    def __init__(self, checkpoint: str = "best.pth", batch_size: int = 16):
        super().__init__(order=CallbackOrder.external)
        self.checkpoint = checkpoint
        self.batch_size = batch_size

    def on_stage_end(self, runner: Any) -> None:
        import pandas as pd

        from fusion import io
        from fusion.evaluate.metrics import binary_metrics, roc_auc

        if not is_main_process(runner.engine):
            return
        stage_dir = Path(runner.stage_dir())
        model = getattr(runner.model, "module", runner.model)  # unwrap DataParallel/DDP
        ckpt = stage_dir / "checkpoints" / self.checkpoint
        source = "last epoch"
        if ckpt.is_file():
            state = io.load_checkpoint(ckpt)
            model.load_state_dict(state["model_state_dict"])
            source = str(ckpt.relative_to(runner.logdir))
        dataset = runner.dataset
        split = runner.stage_indices[runner.stage_key]
        test = np.asarray(split["test"], dtype=int)
        device = next(model.parameters()).device
        proba, per_view = predict(model, dataset, test, runner.view_names(), self.batch_size, device)
        y = np.asarray(dataset.labels)[test]
        pred = proba.argmax(axis=1)
        metrics = binary_metrics(y, pred)
        metrics["auc"] = roc_auc(y, proba[:, 1])
        names = list(getattr(dataset, "class_names", ["0", "1"]))
        result = {
            **{k: float(v) for k, v in metrics.items()},
            "n_train": int(len(split["train"])),
            "n_val": int(len(split["valid"])),
            "n_test": int(len(test)),
            "stage": runner.stage_key,
            "checkpoint": source,
            "epochs": int(runner.stage_epoch_step),
            "class_names": names,
            "positive_class": names[1],
            "test_subject_ids": [dataset.subject_ids[i] for i in test],
        }
        frame = pd.DataFrame({
            "subject_id": result["test_subject_ids"],
            "index": test,
            "label": y,
            "predicted": pred,
            **{f"prob_{names[c]}": proba[:, c] for c in range(proba.shape[1])},
            **{f"prob_{names[1]}_{view}": per_view[:, v, 1] for v, view in enumerate(runner.view_names())},
        })
        io.write_json(stage_dir / "result.json", result)
        io.write_csv(stage_dir / "test_predictions.csv", frame)
        print(f"=== {runner.stage_key} test: " + ", ".join(f"{k} {result[k]:.3f}" for k in METRIC_KEYS), flush=True)


class CCLResultsCallback(Callback):
    """At the end of the experiment: ``results.json`` and ``test_predictions.csv`` at the run
    directory's root, from every ``fold_XX/result.json`` present.

    With one fold the metrics are that fold's; with K folds they are means over folds (each fold's
    values kept under ``folds``). The run's ``data`` and ``model`` config nodes are recorded so
    that ``fusion ccl-table3`` can rebuild the cohort and the network without Hydra. Runs before
    the activation-map callback (which adds ``recovery``) and the report callback.
    """

    def __init__(self) -> None:
        super().__init__(order=CallbackOrder.external, scope=CallbackScope.experiment)

    def on_experiment_end(self, runner: Any) -> None:
        if runner.exception is not None or not is_main_process(runner.engine):
            return
        config = {key: runner.select(key) for key in ("data", "model", "criterion")}
        config["seed"] = runner.seed
        write_run_results(runner.logdir, runner.all_stages, config=config)


class CCLReportCallback(Callback):
    """Writes ``report.md`` last, after the results and the activation-map analysis."""

    def __init__(self) -> None:
        super().__init__(order=CallbackOrder.external_extra + 10, scope=CallbackScope.experiment)

    def on_experiment_end(self, runner: Any) -> None:
        if runner.exception is not None or not is_main_process(runner.engine):
            return
        if (Path(runner.logdir) / "results.json").is_file():
            from fusion.report.ccl_report import write_ccl_report

            write_ccl_report(runner.logdir)


def write_run_results(logdir: str | Path, stages: list[str], config: dict | None = None) -> dict:
    """Aggregate the stages' ``result.json`` into ``logdir/results.json`` (see CCLResultsCallback).

    Args:
        logdir: the run directory.
        stages: stage names to look for (``fold_00`` ...); missing ones are skipped.
        config: extra run information stored under ``config`` (data/model nodes, seed).
    """
    import pandas as pd

    from fusion import io

    logdir = Path(logdir)
    folds = [(s, io.read_json(logdir / s / "result.json")) for s in stages if (logdir / s / "result.json").is_file()]
    if not folds:
        return {}
    results: dict[str, Any] = {}
    for key in METRIC_KEYS:
        values = [f[key] for _, f in folds]
        results[key] = float(np.mean(values))
        if len(folds) > 1:
            results[f"{key}_std"] = float(np.std(values))
    first = folds[0][1]
    results.update({
        "n_test": int(sum(f["n_test"] for _, f in folds)),
        "n_train": int(first["n_train"]),
        "n_val": int(first["n_val"]),
        "n_folds": len(folds),
        "class_names": first["class_names"],
        "positive_class": first["positive_class"],
        "folds": [{"stage": s, **{k: f[k] for k in (*METRIC_KEYS, "n_test", "epochs", "checkpoint")}} for s, f in folds],
    })
    recs = [f["recovery"] for _, f in folds if isinstance(f.get("recovery"), dict)]
    if recs:
        keys = [k for k in recs[0] if all(isinstance(r.get(k), (int, float)) for r in recs)]
        results["recovery"] = {k: float(np.mean([r[k] for r in recs])) for k in keys}
    splits = logdir / "splits.json"
    if splits.is_file():
        results["splits"] = "splits.json"
    frames = []
    for s, _ in folds:
        path = logdir / s / "test_predictions.csv"
        if path.is_file():
            frame = pd.read_csv(path)
            frame.insert(0, "stage", s)
            frames.append(frame)
    if frames:
        io.write_csv(logdir / "test_predictions.csv", pd.concat(frames, ignore_index=True))
    if config:
        results["config"] = config
    io.write_json(logdir / "results.json", results)
    return results
