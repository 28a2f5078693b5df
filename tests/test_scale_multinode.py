"""Multi-node layout from the environment (fusion.distributed) and the ``engine=ddp_env`` config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from fusion.distributed import DEFAULT_PORT, NodeLayout, first_host, node_layout
from fusion.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"
#: What SLURM sets on the third of 4 nodes of job 123456 with 8 GPUs per node.
SLURM = {"SLURM_JOB_NODELIST": "gpu[07-09,12]", "SLURM_NNODES": "4", "SLURM_NODEID": "2",
         "SLURM_GPUS_ON_NODE": "8", "SLURM_JOB_ID": "123456"}


@pytest.mark.parametrize(
    "nodelist, host",
    [("gpu[07-09,12]", "gpu07"), ("node1", "node1"), ("a[3],b[1-2]", "a3"), ("n[010-011]-ib", "n010-ib"),
     ("cpu1,cpu2", "cpu1")],
)
def test_first_host_of_a_slurm_nodelist(nodelist, host):
    assert first_host(nodelist) == host


def test_slurm_layout():
    layout = node_layout(env=SLURM)
    assert layout == NodeLayout(address="gpu07", port=20000 + 123456 % 20000, num_nodes=4, node_rank=2,
                                workers_per_node=8)
    assert layout.world_size == 32 and layout.first_rank == 16


def test_explicit_variables_win_over_slurm():
    env = {**SLURM, "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29500", "NNODES": "2", "NODE_RANK": "1",
           "LOCAL_WORLD_SIZE": "4"}
    layout = node_layout(env=env)
    assert (layout.address, layout.port, layout.num_nodes, layout.node_rank) == ("10.0.0.5", 29500, 2, 1)
    assert (layout.world_size, layout.first_rank) == (8, 4)
    assert node_layout(workers_per_node=2, env=env).first_rank == 2  # the argument wins over the environment


def test_no_environment_is_one_local_node():
    layout = node_layout(env={}, default_workers=3)
    assert layout == NodeLayout("127.0.0.1", DEFAULT_PORT, 1, 0, 3)
    assert layout.first_rank == 0 and layout.world_size == 3


@pytest.mark.parametrize(
    "env, match",
    [({"NNODES": "2", "NODE_RANK": "2"}, "outside a job of 2"),
     ({"SLURM_NNODES": "x"}, "SLURM_NNODES='x' is not an integer"),
     ({"MASTER_PORT": "70000"}, "not a TCP port"),
     ({"SLURM_JOB_NODELIST": "gpu[a-b]"}, "first host")],
)
def test_bad_environment_is_named(env, match):
    with pytest.raises(ConfigError, match=match):
        node_layout(env=env)


def test_ddp_env_engine_config(monkeypatch):
    for key in ("MASTER_ADDR", "MASTER_PORT", "NNODES", "NODE_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in SLURM.items():
        monkeypatch.setenv(key, value)
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="vae", overrides=["engine=ddp_env", "engine.backend=gloo"])
    engine = instantiate(cfg.engine)
    assert type(engine).__name__ == "DistributedDataParallelEngine" and engine.is_ddp
    assert (engine.address, engine.port) == ("gpu07", 20000 + 123456 % 20000)
    assert (engine.world_size, engine.workers_global_rank, engine.num_local_workers) == (32, 16, 8)
    assert engine.process_group_kwargs == {"backend": "gloo", "world_size": 32}

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="vae", overrides=["engine=ddp_env", "engine.dtype=bfloat16"])
    engine = instantiate(cfg.engine)
    assert type(engine).__name__ == "DistributedDataParallelAutocastEngine"
    assert str(engine.amp_dtype) == "torch.bfloat16" and engine.world_size == 32
