"""Data-parallel training: where this process stands in a torchrun group, framework-neutral (standard library only).

``torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT]`` starts N x M processes of ``cifar10-train``
and tells each its place through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); the PyTorch trainer
joins the group with DistributedDataParallel. TensorFlow's MirroredStrategy runs its replicas inside one process,
so under it every process is alone (rank 0 of 1).

The rules both frameworks follow:

- ``batch_size`` is the global batch, whatever the number of replicas: each step's batch of the epoch's seeded
  order (the same order as one process) is split into ``replicas`` contiguous shards, one per replica, and the
  gradients are averaged so that a step is the step of one process on the whole batch. The learning rate, its
  schedule and the step count therefore do not change with the number of devices.
- BatchNorm is not synchronised: each replica normalises its shard with its own batch statistics, and the running
  statistics saved are rank 0's. See ``TorchTrainer`` for why.
- Only rank 0 writes: the run directory, checkpoints, the final model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cifar10_pipeline.training.config import ConfigError, TrainConfig
from cifar10_pipeline.training.run import Run, RunError

# https://pytorch.org/docs/stable/elastic/run.html#environment-variables
RESTART_COUNT = "TORCHELASTIC_RESTART_COUNT"
# torchrun's own environment: set to 1, every attempt of the group gets a key-value store of its own (hosted by its
# rank 0) instead of one store that the node of the first attempt's rank 0 serves to every attempt
SHARED_STORE_OFF = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"


@dataclass(frozen=True)
class Topology:
    rank: int  # 0 .. world_size - 1, over every node
    world_size: int  # processes in the group
    local_rank: int  # this process's index on its node: the GPU it takes
    restarts: int  # how many times this node's torchrun restarted its processes (--max-restarts)
    nodes: int = 1  # torchrun agents in the group: one per node
    max_restarts: int = 0  # torchrun's --max-restarts
    shared_store: bool = False  # whether the group's key-value store is the one torchrun keeps for every attempt

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run directory (rank 0)."""
        return self.rank == 0

    @property
    def launched(self) -> bool:
        """Whether torchrun (or another launcher with its variables) started this process."""
        return self.world_size > 1


def topology() -> Topology:
    """This process's place in its torchrun group; alone (rank 0 of 1) without torchrun's variables."""
    env = os.environ
    return Topology(rank=int(env.get("RANK", 0)), world_size=int(env.get("WORLD_SIZE", 1)),
                    local_rank=int(env.get("LOCAL_RANK", 0)), restarts=int(env.get(RESTART_COUNT, 0)),
                    nodes=int(env.get("GROUP_WORLD_SIZE", 1)),
                    max_restarts=int(env.get("TORCHELASTIC_MAX_RESTARTS", 0)),
                    shared_store=env.get("TORCHELASTIC_USE_AGENT_STORE") == "True")


def attempt_prefix(group: Topology) -> str:
    """The prefix of this attempt's keys in the key-value store that torchrun hands the group's processes.

    By default torchrun serves one store to every attempt of the group, so each attempt's keys need a prefix of their
    own, or a restarted process could read the address of a process killed in the attempt before. On one node the
    restart count is that prefix: one agent counts every attempt. Agents on several nodes count apart (one that
    restarts its processes to let a restarted node join does not count it, and the node serving the store can change
    between attempts), so a restarted group on several nodes would wait for ever: refused, unless torchrun gives every
    attempt a store of its own (SHARED_STORE_OFF), where no prefix is needed, or never restarts. Upstream:
    pytorch/pytorch#135712 (the shared store and restarts), #108158 (the count differs between nodes).
    """
    if not group.shared_store:
        return ""
    if group.nodes > 1 and group.max_restarts > 0:
        raise ConfigError(f"torchrun runs this group on {group.nodes} nodes with --max-restarts {group.max_restarts} "
                          "and one key-value store for every attempt (its default): a restarted group would hang, "
                          f"its nodes counting attempts apart. Start torchrun with {SHARED_STORE_OFF}=1 in its "
                          "environment (a store for each attempt), or with --max-restarts 0")
    return f"attempt-{group.restarts}/"


def shard(size: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous part of a batch of ``size`` images split over ``world_size`` replicas: sizes differ
    by at most one image (the first ``size % world_size`` shards take one more)."""
    base, extra = divmod(size, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def restarted_run(config: TrainConfig, framework: str) -> Run | None:
    """The run this torchrun group's first attempt started, when torchrun restarted the group after a failed process
    (``--max-restarts``): the run the config names (``run_name``), else the last run under ``config.runs_dir``
    (runs/LAST.json), if it is still running, with this framework and this very config. None without a restart, or
    when no such run is there (the first attempt failed before making it). A named run is looked up by its name
    because LAST.json may point at a run that another job started on the same volume since. On several nodes a
    node's restart count misses the restarts its torchrun made to let a restarted node join, so there the run the
    config names is taken up whatever the count."""
    group = topology()
    if group.restarts == 0 and not (group.nodes > 1 and config.run_name):
        return None
    try:
        run = Run.open(Path(config.runs_dir) / config.run_name if config.run_name else None, config.runs_dir)
    except RunError:
        return None
    info = run.info
    if info.get("status") == "running" and info.get("framework") == framework and run.config == config:
        return run
    return None
