"""Where this node sits in a multi-node job, read from the environment (torchrun-style or SLURM).

Catalyst's DDP engine starts one process per GPU on each node itself; a multi-node job therefore
runs one launcher per node (SLURM: ``--ntasks-per-node=1``), and each launcher needs the address
and port of the first node, the total number of processes, and the global rank of its own first
process. :func:`node_layout` reads them from

- explicit variables: ``MASTER_ADDR``, ``MASTER_PORT``, ``NNODES``, ``NODE_RANK``,
  ``LOCAL_WORLD_SIZE`` (processes on this node);
- SLURM: ``SLURM_JOB_NODELIST`` (first host = address), ``SLURM_NNODES``, ``SLURM_NODEID``,
  ``SLURM_GPUS_ON_NODE``, and a port derived from ``SLURM_JOB_ID`` (jobs sharing a node do not
  collide);

explicit variables winning over SLURM's, and one node on ``127.0.0.1`` when neither is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from fusion.errors import ConfigError

__all__ = ["NodeLayout", "first_host", "node_layout"]

#: Port used when neither ``MASTER_PORT`` nor a SLURM job id is set.
DEFAULT_PORT = 2112
#: Ports derived from a SLURM job id lie in ``[_PORT_BASE, _PORT_BASE + _PORT_SPAN)``.
_PORT_BASE, _PORT_SPAN = 20000, 20000


@dataclass(frozen=True)
class NodeLayout:
    """This node's part of a distributed job.

    Attributes:
        address: host name or IP of the first node (rank 0).
        port: TCP port of the rendezvous on ``address``.
        num_nodes: nodes in the job.
        node_rank: this node's index, ``0 .. num_nodes - 1``.
        workers_per_node: processes (GPUs) per node.
    """

    address: str
    port: int
    num_nodes: int
    node_rank: int
    workers_per_node: int

    @property
    def world_size(self) -> int:
        """Processes in the whole job."""
        return self.num_nodes * self.workers_per_node

    @property
    def first_rank(self) -> int:
        """Global rank of this node's first process (Catalyst's ``workers_dist_rank``)."""
        return self.node_rank * self.workers_per_node


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list, e.g. ``"gpu[07-09,12],cpu1"`` -> ``"gpu07"``.

    Raises:
        ConfigError: for an empty or malformed list.
    """
    match = re.match(r"\s*([^,\[\s]+)(?:\[([^\]]*)\])?([^,\s]*)", nodelist or "")
    if match is None:
        raise ConfigError(f"SLURM_JOB_NODELIST {nodelist!r} names no host")
    prefix, ranges, suffix = match.groups()
    if ranges is None:
        return prefix + suffix
    first = ranges.split(",")[0].split("-")[0].strip()
    if not first.isdigit():
        raise ConfigError(f"SLURM_JOB_NODELIST {nodelist!r}: cannot read the first host's number from [{ranges}]")
    return f"{prefix}{first}{suffix}"


def _int(env: Mapping[str, str], key: str, minimum: int) -> int | None:
    raw = env.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(str(raw).split("(")[0])  # SLURM may write counts as "4(x2)"
    except ValueError:
        raise ConfigError(f"environment variable {key}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"environment variable {key}={raw!r} must be >= {minimum}")
    return value


def node_layout(
    workers_per_node: int | None = None,
    env: Mapping[str, str] | None = None,
    default_workers: int = 1,
) -> NodeLayout:
    """This node's :class:`NodeLayout` from the environment.

    Args:
        workers_per_node: processes on this node; None reads ``LOCAL_WORLD_SIZE``, then
            ``SLURM_GPUS_ON_NODE``, else ``default_workers``.
        env: the variables to read (default ``os.environ``).
        default_workers: processes per node when nothing says (e.g. the visible GPU count).

    Raises:
        ConfigError: a variable that is not a valid number, or a node rank outside the job.
    """
    env = os.environ if env is None else env
    if workers_per_node is None:
        workers_per_node = _int(env, "LOCAL_WORLD_SIZE", 1) or _int(env, "SLURM_GPUS_ON_NODE", 1) or default_workers
    if isinstance(workers_per_node, bool) or not isinstance(workers_per_node, int) or workers_per_node < 1:
        raise ConfigError(f"workers per node must be a positive integer, got {workers_per_node!r}")

    num_nodes = _int(env, "NNODES", 1) or _int(env, "SLURM_NNODES", 1) or 1
    node_rank = _int(env, "NODE_RANK", 0)
    if node_rank is None:
        node_rank = _int(env, "SLURM_NODEID", 0) or 0
    if node_rank >= num_nodes:
        raise ConfigError(f"node rank {node_rank} is outside a job of {num_nodes} node(s) (NODE_RANK/SLURM_NODEID "
                          "vs NNODES/SLURM_NNODES)")

    address = env.get("MASTER_ADDR") or (first_host(env["SLURM_JOB_NODELIST"]) if env.get("SLURM_JOB_NODELIST")
                                         else "127.0.0.1")
    port = _int(env, "MASTER_PORT", 1)
    if port is None:
        job_id = _int(env, "SLURM_JOB_ID", 0)
        port = DEFAULT_PORT if job_id is None else _PORT_BASE + job_id % _PORT_SPAN
    if port > 65535:
        raise ConfigError(f"MASTER_PORT {port} is not a TCP port")
    return NodeLayout(address=address, port=port, num_nodes=num_nodes, node_rank=node_rank,
                      workers_per_node=workers_per_node)
