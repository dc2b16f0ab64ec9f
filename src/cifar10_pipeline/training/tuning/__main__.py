"""``cifar10-tune`` (``python -m cifar10_pipeline.training.tuning``): run or resume a study, then report on it (exit
status 2: a setting or the data is wrong; 130: interrupted, finished trials kept)."""

from __future__ import annotations

import sys

from cifar10_pipeline.training.tuning import tune
from cifar10_pipeline.training.tuning.config import build_parser, tune_config_from_args
from cifar10_pipeline.training.tuning.errors import USER_ERRORS


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        tune(tune_config_from_args(args))
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished trials are saved; run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
