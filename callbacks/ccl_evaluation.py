"""Test-set evaluation of each gCAM-CCL stage, and the run's results.json / report at the end.

Thin adapters: the aggregation and statistics live in :mod:`fusion.evaluate.ccl_results`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from catalyst.core import Callback, CallbackOrder, CallbackScope

from fusion.devices import unwrap_model
from fusion.evaluate.ccl_predict import predict
from fusion.evaluate.ccl_results import METRIC_KEYS
from fusion_runners.base import is_main_process


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
        model = unwrap_model(runner.model)
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
    directory's root (:func:`fusion.evaluate.ccl_results.write_run_results`), from every
    ``fold_XX/result.json`` present: means and SDs over splits, bootstrap CIs and permutation
    p-values, the linear baselines on the same splits, and the verdict on the maps.

    The run's ``data``, ``model`` and ``criterion`` nodes and the test checkpoint's name are
    recorded so that ``fusion ccl-table3`` can rebuild the cohort and the network without Hydra.
    Runs before the activation-map callback (which adds ``recovery``) and the report callback.

    Args:
        baselines: fit the linear baselines (SVM, Logist) on every split for the verdict.
        n_boot: bootstrap resamples of the CIs.
        n_perm: label permutations of the p-values (and SVM refits per split).
        svm_C, logistic_C: regularisation of the baselines.
    """

    def __init__(self, baselines: bool = True, n_boot: int = 2000, n_perm: int = 1000,
                 svm_C: float = 1.0, logistic_C: float = 1.0) -> None:
        super().__init__(order=CallbackOrder.external, scope=CallbackScope.experiment)
        self.baselines, self.n_boot, self.n_perm = bool(baselines), int(n_boot), int(n_perm)
        self.svm_C, self.logistic_C = float(svm_C), float(logistic_C)

    def on_experiment_end(self, runner: Any) -> None:
        from fusion.evaluate.ccl_results import linear_baselines, write_run_results

        if runner.exception is not None or not is_main_process(runner.engine):
            return
        config = {key: runner.select(key) for key in ("data", "model", "criterion")}
        config["seed"] = runner.seed
        config["test_checkpoint"] = runner.select("callbacks.test.checkpoint", "best.pth")
        stages = [s for s in runner.all_stages if (Path(runner.logdir) / s / "result.json").is_file()]
        base = None
        if self.baselines and stages and all(s in runner.stage_indices for s in stages):
            base = linear_baselines(runner.dataset, [runner.stage_indices[s] for s in stages],
                                    self.svm_C, self.logistic_C, self.n_perm, runner.seed)
        results = write_run_results(runner.logdir, stages, config=config, baselines=base,
                                    n_boot=self.n_boot, n_perm=self.n_perm, seed=runner.seed)
        verdict = results.get("verdict") or {}
        for reason in verdict.get("reasons", []):
            print(f"WARNING: {reason}: the edge and SNP maps are not interpretable", flush=True)
        if verdict.get("interpretable"):
            for feature, own in (verdict.get("features") or {}).items():
                for reason in own.get("reasons", []):
                    print(f"WARNING: {reason}: its {feature} are not interpretable", flush=True)


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
