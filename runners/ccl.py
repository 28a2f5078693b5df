"""CCLRunner: gCAM-CCL training on the config-driven base runner.

What happens to a batch: the views' tensors (``batch[name]`` for each view of the model, in the
model's order: ``fc`` then ``snp``) go through the collaborative network; the collaborative
cross-entropy (the ``criterion`` node) of the per-view logits ``(B, m, C)`` is the loss; the
accuracy of the mean-of-views prediction and, when the criterion has a ``terms`` method, the
loss's terms (``label_loss``, ``pair_loss``) and each view's own cross-entropy
(``label_loss_fc``, ``label_loss_snp``) are logged beside it, so that checkpoint selection and
early stopping can monitor the classification term alone, or each view on its own
(``callbacks.per_view_checkpoint``).

Differences from :class:`fusion_runners.base.ConfigRunner`:

- without a ``folds`` node there is one stage per repetition of the stratified 70/15/15 split
  (``split.repetitions``, stages ``fold_00`` ...; repetition k uses seed ``split.seed + k``), so a
  run directory has the same layout with repeated splits or K-fold;
- before a stage's loaders are built, missing genotype calls are imputed from that stage's
  training subjects only, and so is the per-edge / per-SNP standardisation (``CCLDataset.fit``).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from fusion.errors import ConfigError
from fusion.losses.collaborative import view_label_losses
from fusion.models.ccl import mean_of_views
from fusion_runners.base import ConfigRunner, fold_stage_name


def split_repetitions(value: Any) -> int:
    """``split.repetitions`` checked: a positive integer."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"split.repetitions must be a positive integer, got {value!r}")
    return value


class CCLRunner(ConfigRunner):
    """Catalyst runner of the collaborative network (see the module docstring).

    Extra top-level config keys: ``split`` (holdout fractions and seed, read by the split
    callback through interpolation), ``interpret`` (activation maps), ``table3`` (baselines).
    """

    config_keys = ConfigRunner.config_keys | frozenset({"split", "interpret", "table3"})

    @property
    def all_stages(self) -> list[str]:
        """One stage per fold; the default holdout split is the single stage ``fold_00``."""
        n_splits = self.select("folds.n_splits")
        if n_splits is None:
            return [fold_stage_name(i) for i in range(split_repetitions(self.select("split.repetitions", 1)))]
        return [fold_stage_name(i) for i in range(n_splits)]

    @property
    def stages(self) -> list[str]:
        if self.select("folds.n_splits") is None:
            return self.all_stages
        return super().stages

    def get_datasets(self, stage: str) -> OrderedDict[str, Any]:
        """Fit imputation and standardisation on this stage's training subjects, then the base
        runner's subsets."""
        split = self.stage_indices.get(stage)
        if split is not None and hasattr(self.dataset, "fit"):
            self.dataset.fit(np.asarray(split["train"], dtype=int))
        return super().get_datasets(stage)

    def _check_callbacks(self) -> None:
        """Catalyst's callback checks, without the criterion one: :meth:`handle_batch` computes
        the loss itself (the criterion is a config node, not a ``CriterionCallback``), so Catalyst's
        "No ICriterionCallback/CriterionCallback" warning would fire on every stage of a normal run."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"No ``ICriterionCallback/CriterionCallback``",
                                    category=UserWarning)
            super()._check_callbacks()

    def build_model(self) -> torch.nn.Module:
        """The ``model`` node, each view sized from the data where the data node infers the size
        (``data.n_rois`` / ``data.n_snps`` null): views with an ``n_rois`` key get the cohort's
        atlas size, views with ``n_snps`` its SNP count. Explicit sizes are left as configured."""
        from omegaconf import OmegaConf

        node = OmegaConf.select(self.cfg, "model", default=None)
        inferred = [key for key in ("n_rois", "n_snps")
                    if OmegaConf.select(self.cfg, f"data.{key}", default="absent") is None]
        info = getattr(self.dataset, "info", None) if inferred else None
        if info is None or node is None or OmegaConf.select(node, "views", default=None) is None:
            return super().build_model()
        node = node.copy()
        for view in node.views.values():
            for key in inferred:
                if view is not None and key in view and getattr(info, key, None):
                    view[key] = int(getattr(info, key))
        from hydra.utils import instantiate

        return instantiate(node)

    def view_names(self) -> list[str]:
        """Batch keys of the model's inputs, in order (``["fc", "snp"]`` by default)."""
        names = getattr(self.model, "view_names", None)
        return list(names) if names is not None else ["fc", "snp"]

    def handle_batch(self, batch: dict[str, Any]) -> None:
        """Forward the views, collaborative loss (and its terms), mean-of-views accuracy."""
        inputs = [batch[name] for name in self.view_names()]
        target = batch["label"]
        logits = self.model(*inputs)  # (B, m, C)
        loss = self.criterion(logits, target)
        with torch.no_grad():
            proba = mean_of_views(logits)
            accuracy = (proba.argmax(dim=1) == target).float().mean()
        self.batch = {**batch, "logits": logits, "proba": proba}
        metrics = {"loss": loss, "accuracy": accuracy}
        terms = getattr(self.criterion, "terms", None)
        if callable(terms):
            with torch.no_grad():
                metrics.update(terms(logits, target))
        with torch.no_grad():
            per_view = view_label_losses(logits, target)
        metrics.update({f"label_loss_{name}": value for name, value in zip(self.view_names(), per_view)})
        self.batch_metrics.update(metrics)


__all__ = ["CCLRunner"]
