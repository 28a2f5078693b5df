"""The sweep experiment configs compose with the VAE configs and define the sweeps the CLIs expect."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.mark.parametrize(
    ("config_name", "experiment", "swept", "values", "n_splits", "job_dir"),
    [
        ("vae", "vae_table1", "model.latent_dim", "8,16,32,64", 5, "latent_128"),
        ("vae", "vae_seeds", "args.seed", "42,43,44,45,46", 5, "seed_42"),
        ("vae_paper", "vae_table1_paper", "model.latent_dim", "128,256,512,1024", 10, "latent_128"),
        ("vae_paper", "vae_seeds_paper", "args.seed", "42,43,44,45,46", 10, "seed_42"),
    ],
)
def test_experiment_composes(config_name, experiment, swept, values, n_splits, job_dir):
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name=config_name, overrides=[f"+experiment={experiment}"], return_hydra_config=True)
    assert str(cfg.hydra.sweeper.params[swept]).replace(" ", "") == values
    assert cfg.folds.n_splits == n_splits
    # one job folder per swept value, named after it
    assert Path(OmegaConf.select(cfg, "logdir")).name == job_dir
    if swept == "model.latent_dim":
        assert cfg.folds.seed == 42 and cfg.args.seed == 42  # every latent size on the same folds
