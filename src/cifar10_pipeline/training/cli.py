"""``cifar10-train``: the trainers' command line, framework-neutral: flags from the config, --framework,
--resume, --dry-run, --check, and user errors mapped to exit code 2. The framework is imported only once the flags
are read.
"""

from __future__ import annotations

import argparse
import sys

from cifar10_pipeline.model import ModelFileError, frameworks
from cifar10_pipeline.model.frameworks import FrameworkError
from cifar10_pipeline.training import distributed
from cifar10_pipeline.training.config import ConfigError, TrainConfig, add_config_arguments, config_from_args
from cifar10_pipeline.training.datasets import DataError, prepare_for_training
from cifar10_pipeline.training.gpus import DeviceError
from cifar10_pipeline.training.loop import train
from cifar10_pipeline.training.run import Run, RunError

# --dry-run: one epoch on a few images, enough to prove the whole path runs
DRY_RUN = {"epochs": 1, "max_train_samples": 512, "max_test_samples": 256}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar10-train",
        description="Train the CNN with PyTorch or TensorFlow/Keras. Writes a run directory (config, metrics, plots, "
                    "checkpoint, model).",
    )
    default = frameworks.default()
    parser.add_argument("--framework", choices=frameworks.NAMES, default=default,
                        help=f"the framework that trains (default here: {default}, the one installed in this "
                             "environment)")
    add_config_arguments(parser)
    parser.add_argument("--resume", nargs="?", const="LAST", metavar="RUN_DIR",
                        help="continue an interrupted run from its last checkpoint (default: the last run)")
    parser.add_argument("--dry-run", action="store_true",
                        help="smoke test: 1 epoch on 512 training and 256 test images")
    parser.add_argument("--check", action="store_true",
                        help="check what training needs (config, data set, framework, device) and exit without "
                             "training: 0 when all of it is there, 2 and the error otherwise; make train-torch NPROC=N "
                             "runs it before torchrun, which would restart a group failing on an error of the user's")
    return parser


def check(config: TrainConfig, framework: str) -> str:
    """Build what a run of ``config`` needs before its first step, the data set and the framework's trainer (device,
    network), then drop it: a user error raises here, before any run directory exists. The line to print when all
    of it is there.

    The trainer is built as one process (replicas 1): the check runs before torchrun starts the group.
    """
    data = prepare_for_training(config)
    trainer = frameworks.get(framework).load("trainer")(TrainConfig.from_dict({"replicas": 1}, config), data)
    device = trainer.describe()["device"]
    shape = "x".join(map(str, data.image_shape))
    return f"ok: {framework} can train on {data.name} ({len(data.train_labels)} training images, {shape}) on {device}"


def main(argv: list[str] | None = None) -> int:
    """Parse flags onto the config (or reopen a run for --resume), train, and map user errors to exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    framework = args.framework
    try:
        if args.resume:
            # --runs-dir only says where runs/LAST.json is; every other setting comes from the saved config
            saved_only = ("resume", "runs_dir", "dry_run", "params", "framework", "check")
            flags = ["--" + k.replace("_", "-") for k in vars(args) if k not in saved_only]
            flags += ["--params"] * bool(args.params) + ["--dry-run"] * args.dry_run
            if flags:
                parser.error(f"--resume continues a run with its saved config; drop {' '.join(flags)}")
            run = Run.open(None if args.resume == "LAST" else args.resume, getattr(args, "runs_dir", "runs"))
            if run.info.get("framework") != framework:
                raise RunError(f"{run.path} was trained with {run.info.get('framework')!r}, not {framework!r}; "
                               "resume it with that framework's trainer")
            config = run.config
        else:
            run, config = None, config_from_args(args)
            if args.dry_run:
                config = TrainConfig.from_dict(DRY_RUN, config)
            group = distributed.topology()
            if group.launched and config.replicas == 1:  # torchrun said how many processes train
                config = TrainConfig.from_dict({"replicas": group.world_size}, config)
        if args.check:
            print(check(config, framework))
            return 0
        result = train(config, framework, resume=run)
    except (ConfigError, DataError, DeviceError, RunError, FrameworkError, ModelFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if distributed.topology().is_main:  # one line per group
        print(f"{result.run.path}: {result.split} accuracy {100 * result.accuracy:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
