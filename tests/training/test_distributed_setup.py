"""How a data-parallel PyTorch run is laid out before any process trains: each process's shard of a batch, its
augmentation as the whole batch's, the refusals of a group that cannot train (more processes on a node than
GPUs, a batch smaller than the replicas), and ``make train-torch NPROC=N``'s torchrun line after one check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cifar10_pipeline.training import distributed
from cifar10_pipeline.training.config import ConfigError, TrainConfig
from cifar10_pipeline.training.torch_trainer import augment, join_group
from tests.support.make import dry_run


@pytest.mark.parametrize("size,world", [(128, 2), (127, 2), (10, 3), (3, 3), (1000, 7)])
def test_shards_cover_the_batch_in_order(size, world):
    parts = [distributed.shard(size, rank, world) for rank in range(world)]
    assert list(np.concatenate([np.arange(size)[p] for p in parts])) == list(range(size))
    lengths = [p.stop - p.start for p in parts]
    assert max(lengths) - min(lengths) <= 1 and lengths[0] == max(lengths) >= 1


def test_augmenting_a_shard_augments_it_as_the_whole_batch_would():
    config = TrainConfig(rotation=5.0, crop_padding=2, flip=True)
    x = torch.rand(10, 3, 16, 16)
    whole = augment(x, config, torch.Generator().manual_seed(7))
    part = distributed.shard(10, 1, 2)
    shard = augment(x[part], config, torch.Generator().manual_seed(7), part, 10)
    torch.testing.assert_close(shard, whole[part])


def test_more_processes_on_a_node_than_its_gpus_are_refused_before_joining(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    third = distributed.Topology(rank=2, world_size=3, local_rank=2, restarts=0)
    with pytest.raises(ConfigError, match=r"LOCAL_RANK=2 but PyTorch sees 2 GPU\(s\).*--nproc-per-node 2"):
        join_group(torch.device("cuda"), third)  # no rendezvous: the environment has no MASTER_ADDR


def group(**overrides) -> distributed.Topology:
    return distributed.Topology(**{"rank": 0, "world_size": 8, "local_rank": 0, "restarts": 2, "nodes": 2,
                                   "max_restarts": 3, "shared_store": True, **overrides})


def test_each_attempt_on_one_node_has_its_own_keys_in_torchruns_shared_store():
    assert distributed.attempt_prefix(group(nodes=1)) == "attempt-2/"
    assert distributed.attempt_prefix(group(nodes=1, restarts=0)) == "attempt-0/"


def test_a_store_for_each_attempt_needs_no_prefix():
    # nodes count their attempts apart: a prefix from the count would part the group's processes
    assert distributed.attempt_prefix(group(shared_store=False)) == ""


def test_a_shared_store_on_several_nodes_that_may_restart_is_refused_before_joining():
    with pytest.raises(ConfigError, match=f"2 nodes with --max-restarts 3.*{distributed.SHARED_STORE_OFF}=1"):
        distributed.attempt_prefix(group())
    assert distributed.attempt_prefix(group(max_restarts=0)) == "attempt-2/"  # never restarted: nothing to part


def test_torchruns_variables_describe_the_group(monkeypatch):
    for name, value in {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", distributed.RESTART_COUNT: "2",
                        "GROUP_WORLD_SIZE": "2", "TORCHELASTIC_MAX_RESTARTS": "3",
                        "TORCHELASTIC_USE_AGENT_STORE": "False"}.items():
        monkeypatch.setenv(name, value)
    assert distributed.topology() == group(rank=5, local_rank=1, shared_store=False)


def test_a_batch_smaller_than_the_replicas_is_refused():
    with pytest.raises(ConfigError, match="batch_size=2 must be >= replicas=4"):
        TrainConfig(batch_size=2, replicas=4)


def test_make_train_torch_starts_torchrun_for_more_than_one_process_after_checking_once():
    # torchrun restarts a group whose processes exit 2 on a user error: the error is found once, before the group
    *_, check, group = dry_run("train-torch", "NPROC=2", "DATASET=synthetic")
    assert check == ".venv/bin/cifar10-train --framework torch --dataset synthetic --check"
    assert group.startswith(".venv/bin/torchrun --standalone --nproc-per-node 2 --max-restarts 3 --no-python "
                            ".venv/bin/cifar10-train --framework torch --dataset synthetic")
    single = dry_run("train-torch", "DATASET=synthetic")
    assert single[-1].startswith(".venv/bin/cifar10-train --framework torch")  # as before
    assert not any("--check" in line for line in single)
    assert dry_run("train-tf", "NPROC=2")[-1].endswith("--replicas 2")
