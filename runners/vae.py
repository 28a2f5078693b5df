"""Catalyst runner of the multimodal VAE (Geenjaar et al. 2021)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fusion.errors import ConfigError
from fusion.losses.vae_elbo import elbo, kl_warmup
from fusion_runners.base import ConfigRunner


class VAERunner(ConfigRunner):
    """Trains one VAE per fold on every modality volume of the training subjects.

    A batch holds the 54 volumes of ``k`` subjects, ``(k, 54, X, Y, Z)``; every volume is one
    sample of the shared encoder-decoder, so the model sees ``(k * 54, 1, X, Y, Z)``. The loss is
    the negative ELBO (``loss.beta`` weighs the KL term); ``loss``, ``recon`` and ``kl`` go to
    ``batch_metrics`` (``OptimizerCallback(metric_key="loss")`` steps on ``loss``).

    Config keys besides the base runner's: ``loss`` (``beta``, ``kl_warmup_epochs``), ``svm`` and
    ``latents`` (read by the callbacks through interpolation). ``model.in_shape: null`` takes the
    prepared data's grid.
    """

    config_keys = ConfigRunner.config_keys | {"loss", "svm", "latents", "confounds", "statistics"}
    _dataset: Any  # set to None by ConfigRunner; the prepared cohort once :attr:`dataset` built it

    @property
    def beta(self) -> float:
        """Weight of the KL term (``loss.beta``, default 1)."""
        return float(self.select("loss.beta", 1.0))

    def kl_weight(self) -> float:
        """KL weight of the current batch: ``loss.beta`` after a linear warm-up over the first
        ``loss.kl_warmup_epochs`` epochs of the fold's training loader; validation uses ``beta``.

        The step is derived from the epoch and the batch index, so a resumed fold continues the ramp.
        """
        warmup_epochs = float(self.select("loss.kl_warmup_epochs", 0.0) or 0.0)
        if warmup_epochs < 0:
            raise ConfigError(f"loss.kl_warmup_epochs must be >= 0, got {warmup_epochs}")
        if not self.is_train_loader or warmup_epochs == 0:
            return self.beta
        n_batches = max(1, int(self.loader_batch_len))
        # loader_batch_step counts the batches of every rank; loader_batch_len is per rank
        step = (self.stage_epoch_step - 1) * n_batches + self.loader_batch_step // max(1, self.engine.world_size) - 1
        return kl_warmup(step, max(1, round(warmup_epochs * n_batches)), self.beta)

    @property
    def dataset(self) -> Any:
        """The prepared cohort from ``data``; ``data.voxel_size`` (mm, optional) is not a dataset
        argument but a check: the prepared folder must have been resampled to it by
        ``fusion prepare --voxel-size`` (null: any grid)."""
        if self._dataset is None:
            node = OmegaConf.select(self.cfg, "data", default=None)
            expected = None
            if node is not None and "voxel_size" in node:
                expected = node.voxel_size
                settings = OmegaConf.to_container(node, resolve=True)
                if not isinstance(settings, dict):
                    raise ConfigError(f"config key 'data' must be a mapping, got {settings!r}")
                node = OmegaConf.create({k: v for k, v in settings.items() if k != "voxel_size"})
            if node is None:
                raise ConfigError("config key 'data' (the dataset node with a _target_) is required")
            dataset = instantiate(node)
            found = (getattr(dataset, "meta", None) or {}).get("voxel_size")
            if expected is not None and (found is None or abs(float(found) - float(expected)) > 1e-6):
                prepared_at = "its input grid (no --voxel-size)" if found is None else f"{found} mm"
                raise ConfigError(
                    f"data.voxel_size is {expected} mm but the prepared folder "
                    f"{getattr(dataset, 'prepared_dir', '?')} was prepared at {prepared_at}; rerun "
                    f"`fusion prepare --voxel-size {expected}` or set "
                    f"data.voxel_size={found if found is not None else 'null'}")
            self._dataset = dataset
        return self._dataset

    def build_model(self) -> torch.nn.Module:
        """The VAE from ``model``, on the grid of the prepared volumes unless ``in_shape`` is set."""
        node = OmegaConf.select(self.cfg, "model", default=None)
        if node is None or "_target_" not in node:
            raise ConfigError("config key 'model' needs a _target_ (e.g. fusion.models.vae.MultimodalVAE)")
        grid = tuple(int(s) for s in tuple(self.dataset.shape)[-3:])
        in_shape = self.select("model.in_shape")
        if in_shape is None:
            return instantiate(node, in_shape=grid)
        if tuple(int(s) for s in in_shape) != grid:
            raise ConfigError(
                f"model.in_shape {tuple(in_shape)} differs from the prepared volumes' grid {grid} "
                f"(data: {self.select('data.prepared_dir', '?')}); set model.in_shape=null to follow the data"
            )
        return instantiate(node)

    def handle_batch(self, batch: Mapping[str, Any]) -> None:
        """Reshape ``(k, 54, X, Y, Z)`` to ``(k * 54, 1, X, Y, Z)``, reconstruct, score the ELBO."""
        volumes = batch["volumes"]
        x = volumes.reshape(-1, 1, *volumes.shape[2:])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        recon, mu, logvar = self.model(x)
        weight = self.kl_weight()
        self.batch_metrics.update(elbo(recon, x, mu, logvar, beta=weight))
        self.batch_metrics["beta"] = torch.tensor(weight)


__all__ = ["VAERunner"]
