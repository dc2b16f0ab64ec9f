"""PyTorch's adapter to the training loop (``training.loop``): ``cifar10-train --framework torch``.

The whole data set lives on the training device as uint8 and is batched by index, and augmentation runs on
whole batches there (shift, flip, rotation as one gather or one affine resampling per batch), so no Python
per-sample work sits in the loop. Convolutions run channels_last; CUDA when present, CPU otherwise; training
steps in bfloat16 autocast where that is native (``precision``), evaluation always in float32. Every epoch
writes a checkpoint with the RNG state, so ``--resume`` continues bit-for-bit (on CPU) where the run stopped.

Under torchrun (``training.distributed``) each process joins the group (NCCL on CUDA, one GPU per process by
LOCAL_RANK; gloo on the CPU) and trains the body wrapped in DistributedDataParallel on its shard of every global
batch; see ``TorchTrainer``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.model.spec import reflected
from cifar10_pipeline.model.torch_net import Net, build_model, load_payload, save_atomic, save_model_file
from cifar10_pipeline.training import distributed, gpus
from cifar10_pipeline.training.config import ConfigError, TrainConfig, ema_decay
from cifar10_pipeline.training.datasets import TrainingData

FRAMEWORK = frameworks.get("torch")
# eval batch: small enough for its activations to stay in the CPU's cache
EVAL_BATCH = 256


def resolve_device(name: str) -> torch.device:
    """The training device for ``config.device``; where PyTorch cannot use a GPU the driver shows, auto warns
    and cuda is refused (``gpus.use_gpu``)."""
    return torch.device("cuda" if gpus.use_gpu(name, FRAMEWORK.title, torch.cuda.is_available(), why_no_gpu)
                        else "cpu")


def why_no_gpu() -> tuple[str, str]:
    """(cause, fix) of a PyTorch that finds no CUDA device where the NVIDIA driver shows one."""
    if torch.version.cuda is None:
        pip = f"{sys.executable} -m pip"
        return (f"this PyTorch ({torch.__version__}) is a CPU-only build",
                f"replace it with a CUDA build (PyPI's Linux x86_64 wheel is one): {pip} uninstall -y torch && "
                f"{pip} install 'torch=={torch.__version__.split('+')[0]}' --index-url https://pypi.org/simple")
    cause = gpus.driver_problem(torch.version.cuda)
    if cause is None:  # the driver starts CUDA: PyTorch's own words say what else stops it
        try:
            torch.cuda.init()
            cause = f"PyTorch (CUDA {torch.version.cuda}) lists no CUDA device"
        except (RuntimeError, AssertionError) as e:
            cause = f"PyTorch cannot start CUDA {torch.version.cuda}: {str(e).splitlines()[0]}"
    return cause, gpus.driver_fix(torch.version.cuda)


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The dtype of the training steps for ``config.precision``: bfloat16 (autocast) or float32 (no autocast).

    auto is bfloat16 on CUDA and on CPUs whose oneDNN runs bfloat16 natively (AVX512-BF16 or AMX), where its
    steps are faster than float32's (BENCHMARKS.md). Elsewhere it is emulated and slower, so auto stays float32.
    """
    if name == "auto":
        native = device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported()
        return torch.bfloat16 if native else torch.float32
    return torch.bfloat16 if name == "bfloat16" else torch.float32


def augment(x: torch.Tensor, config: TrainConfig, gen: torch.Generator, part: slice = slice(None),
            batch: int | None = None) -> torch.Tensor:
    """Random shift (reflection padding), horizontal flip and rotation of a float batch [B, C, H, W].

    Parameters are drawn on the CPU generator so runs match across devices. Without rotation the batch is
    gathered pixel for pixel (lossless, and cheaper than resampling: one read per pixel, no interpolation weights);
    with rotation one affine grid per image is resampled bilinearly, and integer shifts still land exactly on
    pixel centres. ``x`` may be the shard ``part`` of a global batch of ``batch`` images: the parameters of the
    whole batch are drawn (a few numbers per image) and the shard's applied, so each image is augmented as one
    process would augment it.
    """
    if not (config.crop_padding or config.flip or config.rotation):
        return x
    b = len(x) if batch is None else batch
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(config.rotation)
    shift = torch.randint(-config.crop_padding, config.crop_padding + 1, (b, 2), generator=gen)
    sign = torch.where(torch.rand(b, generator=gen) < 0.5, -1, 1) if config.flip else torch.ones(b, dtype=torch.long)
    angle, shift, sign = angle[part], shift[part], sign[part]
    if config.rotation:
        return rotate_shift_flip(x, angle, shift, sign)
    return shift_flip(x, shift, sign)


def rotate_shift_flip(x: torch.Tensor, angle: torch.Tensor, shift: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of [B, C, H, W] by per-image angle (radians), (dx, dy) shift (pixels), flip sign."""
    _, _, h, w = x.shape
    cos, sin, sign, shift = torch.cos(angle), torch.sin(angle), sign.float(), shift.float()
    # theta maps output to input coordinates in [-1, 1]: rotation @ flip, plus a shift of 2/size per pixel
    theta = torch.stack([
        torch.stack([sign * cos, -sin, 2 * shift[:, 0] / w], dim=1),
        torch.stack([sign * sin, cos, 2 * shift[:, 1] / h], dim=1),
    ], dim=1).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def shift_flip(x: torch.Tensor, shift: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """The same map as ``rotate_shift_flip`` at angle 0, as a gather: output pixel (i, j) reads input pixel
    (i + dy, j' + dx), j' = j or W-1-j when flipped, reflected at the edges like grid_sample (-1 -> 0, H -> H-1)."""
    b, c, h, w = x.shape
    j = torch.arange(w)
    cols = reflected(torch.where(sign[:, None] > 0, j, w - 1 - j) + shift[:, :1], w)  # [B, W]
    rows = reflected(torch.arange(h) + shift[:, 1:], h)  # [B, H]
    index = (rows[:, :, None] * w + cols[:, None, :]).view(b, 1, h * w).to(x.device)
    return x.flatten(2).gather(2, index.expand(b, c, h * w)).view(b, c, h, w)


def to_layout(x: torch.Tensor) -> torch.Tensor:
    """Float [B, C, H, W] in channels_last memory order: oneDNN and cuDNN convolutions run faster on it, on the
    CPU too."""
    return x.contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def predict_logits(model: Net, images: torch.Tensor) -> torch.Tensor:
    """Eval-mode logits float32 [N, classes] for uint8 [N, H, W, C] images, in batches of EVAL_BATCH.

    Always float32, whatever the training precision: the accuracy reported is that of the exported graph.
    """
    model.eval()
    return torch.cat([model.classify(to_layout(model.preprocess(images[i:i + EVAL_BATCH])))
                      for i in range(0, len(images), EVAL_BATCH)])


def make_optimizer(model: Net, config: TrainConfig) -> torch.optim.SGD:
    # decay conv and linear weights only: decaying BatchNorm scales and biases only hurts
    trained = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trained if p.ndim > 1]
    rest = [p for p in trained if p.ndim <= 1]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0,
    )


def join_group(device: torch.device, group: distributed.Topology) -> torch.device:
    """Join torchrun's process group and return this process's device: on CUDA the node's ``LOCAL_RANK``-th GPU and
    NCCL, on the CPU gloo. More processes on a node than it has GPUs is a ConfigError: NCCL cannot put two ranks on
    one GPU."""
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if group.local_rank >= count:
            raise ConfigError(f"torchrun started a process with LOCAL_RANK={group.local_rank} but PyTorch sees {count} "
                              f"GPU(s) on this node: start one process per GPU (torchrun --nproc-per-node {count}, "
                              f"make train-torch NPROC={count}), or train on the CPU (--device cpu)")
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    prefix = distributed.attempt_prefix(group)
    store, rank, world_size = next(dist.rendezvous("env://"))
    store = dist.PrefixStore(prefix, store) if prefix else store
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=rank,
                            world_size=world_size)
    return device


class TorchTrainer:
    """``training.loop.Trainer`` for PyTorch: the network, SGD, the training data on the device.

    Under torchrun with N processes, each step's global batch of B images is split into N contiguous shards
    (``distributed.shard``); each process augments and trains its shard, summing its losses divided by B and
    multiplied by N, so that DistributedDataParallel's average of the gradients is exactly the gradient of the mean
    loss over the whole batch: the step of one process on B images, with the same learning rate.

    BatchNorm is not synchronised (no SyncBatchNorm): each process normalises its shard with the shard's own batch
    statistics, and the running statistics saved are rank 0's (from its shards). Because PyTorch's SyncBatchNorm
    runs on CUDA only, so on the CPU (gloo) there is nothing to choose; because it costs an all-reduce per
    BatchNorm layer in every forward pass, latency on the step's critical path; because shards of 64 images or
    more (batch 256 on 4 GPUs) give statistics as good as the whole batch's; and because TensorFlow's
    MirroredStrategy normalises per replica too, so both frameworks train the same way. The price: N processes
    do not give one process's model bit for bit, but that of one process normalising each of the N shards of a
    batch apart (tests/training/test_distributed.py checks exactly that). Dropout draws its masks from a stream per
    (epoch, rank), so a resumed group continues bit for bit.
    """

    framework = FRAMEWORK.name
    model_file = FRAMEWORK.model_file
    checkpoint_file = FRAMEWORK.checkpoint_file

    def __init__(self, config: TrainConfig, data: TrainingData):
        self.config = config
        self.group = distributed.topology()
        self.is_main = self.group.is_main
        if config.replicas != self.group.world_size:
            raise ConfigError(f"replicas={config.replicas} but {self.group.world_size} process(es) run: start PyTorch "
                              f"with torchrun and as many processes in all (torchrun --nproc-per-node "
                              f"{config.replicas}, times --nnodes), or set replicas to the processes there are")
        self.device = resolve_device(config.device)
        if self.group.launched:
            self.device = join_group(self.device, self.group)
        self.step_dtype = resolve_precision(config.precision, self.device)
        torch.manual_seed(config.seed)
        spec = config.model_spec(data.image_shape, data.num_classes, data.mean, data.std)
        self.model = build_model(spec).to(self.device)
        self.model.body.to(memory_format=torch.channels_last)
        # BatchNorm's running statistics are averaged too (use_buffers): they describe the averaged weights'
        # activations better than the live weights' latest ones do
        self.averaged = (AveragedModel(self.model, multi_avg_fn=self._ema_update, use_buffers=True)
                         if config.ema else None)
        self.updates = 0  # of the average
        # rank 0's running statistics are the ones saved: broadcasting them every step would change nothing saved
        self.body = (DistributedDataParallel(self.model.body, forward_sync_buffers=False) if self.group.launched
                     else self.model.body)
        torch.backends.cudnn.benchmark = True
        self.optimizer = make_optimizer(self.model, config)
        self.train_x = torch.from_numpy(data.train_images).to(self.device)
        self.train_y = torch.from_numpy(data.train_labels).to(self.device)
        self.generator = torch.Generator()  # augmentation parameters: drawn on the CPU, so runs match across devices

    def _ema_update(self, averaged: list[torch.Tensor], live: list[torch.Tensor], _: torch.Tensor) -> None:
        """AveragedModel's update of one group of tensors of one dtype. Its count of updates is on the device: the
        host keeps its own (``self.updates``), which reading would make the host wait for the device every step."""
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, live, 1 - ema_decay(self.config, self.updates))
        else:  # BatchNorm's num_batches_tracked counts steps: no average of it means anything
            torch._foreach_copy_(averaged, live)

    def describe(self) -> dict[str, Any]:
        group = {"backend": dist.get_backend()} if self.group.launched else {}
        return {"framework_version": torch.__version__, "device": str(self.device),
                "precision": str(self.step_dtype).removeprefix("torch."),
                "num_parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad), **group}

    def share(self, value: Any) -> Any:
        if not self.group.launched:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def begin_epoch(self, seed: int) -> None:
        self.model.train()
        self.generator.manual_seed(seed)
        if self.group.launched:  # dropout: a stream of its own per (epoch, rank), independent of the checkpoint
            torch.manual_seed(seed * self.group.world_size + self.group.rank)

    def step(self, idx: np.ndarray, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        part = distributed.shard(len(idx), self.group.rank, self.group.world_size)
        index = torch.from_numpy(idx[part]).to(self.device)
        labels = self.train_y[index]
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x = to_layout(augment(self.model.preprocess(self.train_x[index]), self.config, self.generator, part,
                              len(idx)))
        with torch.autocast(self.device.type, dtype=self.step_dtype, enabled=self.step_dtype != torch.float32):
            logits = self.body(x).float()
        correct = (logits.argmax(1) == labels).sum()
        if not self.group.launched:
            loss = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
        else:  # the shard's share of the batch's mean, times N: DDP divides the summed gradients by N
            loss = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing, reduction="sum")
            loss = loss * (self.group.world_size / len(idx))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)
            self.updates += 1
        if not self.group.launched:
            return loss.detach(), correct
        # the whole batch's mean loss and correct count, for the metrics: one small all-reduce per step
        totals = torch.stack([loss.detach() / self.group.world_size, correct.float()])
        dist.all_reduce(totals)
        return totals[0], totals[1].long()

    def close(self) -> None:
        if self.group.launched:  # once every process is done with the group: gloo's threads end with their peers
            dist.barrier()
            dist.destroy_process_group()

    @property
    def final(self) -> Net:
        """The model evaluated and saved: the weights' moving average with ``ema``, else the live weights."""
        return self.model if self.averaged is None else self.averaged.module

    def predict(self, images: np.ndarray, live: bool = False) -> np.ndarray:
        model = self.model if live else self.final
        return predict_logits(model, torch.from_numpy(images).to(self.device)).cpu().numpy()

    def save_checkpoint(self, path: Path, epoch: int) -> None:
        averaged = {} if self.averaged is None else {"averaged": self.averaged.state_dict()}
        save_atomic({"epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "torch_rng": torch.get_rng_state(), **averaged}, path)

    def load_checkpoint(self, path: Path) -> int:
        # the main process reads the file and hands it to the others, which need not see the run directory
        ckpt = self.share(load_payload(path, map_location="cpu") if self.is_main else None)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["torch_rng"])
        if self.averaged is not None:  # a resumed run trains its own config: its checkpoints hold the average
            self.averaged.load_state_dict(ckpt["averaged"])
            self.updates = int(self.averaged.n_averaged)
        return ckpt["epoch"]

    def save_model(self, path: Path) -> None:
        save_model_file(self.final, path, config=self.config.to_dict())

