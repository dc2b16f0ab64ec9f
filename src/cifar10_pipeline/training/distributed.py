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

from cifar10_pipeline.training.config import TrainConfig
from cifar10_pipeline.training.run import Run, RunError

# https://pytorch.org/docs/stable/elastic/run.html#environment-variables
RESTART_COUNT = "TORCHELASTIC_RESTART_COUNT"


@dataclass(frozen=True)
class Topology:
    rank: int  # 0 .. world_size - 1, over every node
    world_size: int  # processes in the group
    local_rank: int  # this process's index on its node: the GPU it takes
    restarts: int  # how many times torchrun restarted the group after a failed process (--max-restarts)

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
                    local_rank=int(env.get("LOCAL_RANK", 0)), restarts=int(env.get(RESTART_COUNT, 0)))


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
    because LAST.json may point at a run that another job started on the same volume since."""
    if topology().restarts == 0:
        return None
    try:
        run = Run.open(Path(config.runs_dir) / config.run_name if config.run_name else None, config.runs_dir)
    except RunError:
        return None
    info = run.info
    if info.get("status") == "running" and info.get("framework") == framework and run.config == config:
        return run
    return None
