"""Tuning benchmark: ``python -m benchmarks.tune --help``.

Within a fixed wall-clock budget on this machine, on Fashion-MNIST:
  1. the default config (TrainConfig's hyperparameters) trains with each of ``FINAL_SEEDS`` -> its mean test
     accuracy and training time;
  2. an Optuna study with the median pruner searches the default space for most of the remaining budget (its
     first trial is the default config, as for every new study), and its best params train on the whole
     training set with the same seeds -> their mean test accuracy and training time;
  3. the same study without pruning (same sampler seed, so its first trials draw the same params) runs for the
     rest -> the mean time per finished trial with and without pruning.
One run's test accuracy varies by a few tenths of a point with the seed alone, as much as tuning gains here:
the comparison is of means over seeds.
Epochs, width and the number of training images are fixed for every run (``SHAPE``): they set the training time,
so the tuned params are compared with the defaults at (about) the same training time, and the time ratio is
reported. Results: ``<out>/tune.json`` and ``<out>/tune.md``. ``--smoke`` runs a tiny version on synthetic data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.training.config import ConfigError, TrainConfig
from cifar10_pipeline.training.datasets import DataError
from cifar10_pipeline.training.run import RunError
from cifar10_pipeline.training.tuning import (HYPERPARAMETERS, Report, SearchSpace, TuneConfig, TuneError,
                                              evaluate_on_test, tune)
from harness.report import machine, write_report

# fixed for every run: 10000 of the 60000 training images, 4 epochs at width 32 take about a minute on 2 CPU cores
SHAPE = {"dataset": "fashion-mnist", "epochs": 4, "width": 32, "max_train_samples": 10000}
SMOKE_SHAPE = {"dataset": "synthetic", "epochs": 2, "width": 8, "max_train_samples": 1000, "max_test_samples": 300}
SMOKE_TRIALS = 3  # per study; the full benchmark stops its studies by time instead
PRUNED_SHARE = 2 / 3  # of the budget left after the baseline (and a reserve for the final run): pruned study
SAMPLER_SEED = 0  # both studies draw the same params for their first (random) trials
SAME_TIME_TOLERANCE = 1.2  # tuned training time / default training time counted as "the same training time"
FINAL_SEEDS = (0, 1, 2)  # default and tuned params each train once per seed on the whole training set


@dataclass(frozen=True)
class BenchConfig:
    budget_minutes: float = 30.0
    smoke: bool = False
    out: Path = Path("bench-results")
    framework: str = "torch"


def _study(bench: BenchConfig, base: TrainConfig, root: Path, pruner: str, timeout: float | None) -> Report:
    config = TuneConfig(
        base=base, space=SearchSpace.load(fixed=frozenset(SMOKE_SHAPE if bench.smoke else SHAPE)),
        framework=bench.framework, study_name=f"bench-{pruner}", studies_dir=root,
        trials=SMOKE_TRIALS if bench.smoke else 10_000, timeout=timeout, pruner=pruner, sampler_seed=SAMPLER_SEED,
        # the pruner's defaults (5 complete trials, 2 epochs of warm-up), as users get them: pruning from the
        # first epoch on pruned 70 of 78 trials, many on a first-epoch accuracy that does not rank trials
        best_path=root / f"best_params-{pruner}.json", final_test=False,
    )
    return tune(config)


def _on_test(bench: BenchConfig, config: TrainConfig, name: str) -> dict[str, Any]:
    """Train ``config`` once per seed on the whole training set; per-seed and mean test accuracy and time."""
    seeds = FINAL_SEEDS[:1] if bench.smoke else FINAL_SEEDS
    tests = [evaluate_on_test(bench.framework, TrainConfig.from_dict({"seed": seed, "run_name": f"{name}-seed{seed}"},
                                                                      config)) for seed in seeds]
    return {"seeds": list(seeds), "accuracies": [t.accuracy for t in tests],
            "accuracy": sum(t.accuracy for t in tests) / len(tests),
            "train_seconds": sum(t.train_seconds for t in tests) / len(tests), "run_dirs": [t.run_dir for t in tests]}


def run(bench: BenchConfig) -> dict[str, Any]:
    start = time.monotonic()
    shape = SMOKE_SHAPE if bench.smoke else SHAPE
    root = bench.out / "tune-studies" / time.strftime("%Y%m%d-%H%M%S")  # fresh studies: never resume an old one
    base = TrainConfig.from_dict({**shape, "val_fraction": 0.1, "runs_dir": str(root / "runs")})
    baseline = _on_test(bench, base, "default")
    baseline_seconds = time.monotonic() - start
    # the budget left for the studies: less the baseline, and less as much again for the tuned params' final runs
    left = bench.budget_minutes * 60 - 2 * baseline_seconds
    if not bench.smoke and left <= 0:
        raise TuneError(f"--budget-minutes {bench.budget_minutes} is used up by the baseline run alone")
    timeouts = (None, None) if bench.smoke else (left * PRUNED_SHARE, left * (1 - PRUNED_SHARE))
    pruned = _study(bench, base, root, "median", timeouts[0])
    unpruned = _study(bench, base, root, "none", timeouts[1])
    tuned = _on_test(bench, TrainConfig.from_dict(pruned.best_params, base), "tuned")
    time_ratio = tuned["train_seconds"] / baseline["train_seconds"]
    return {
        "budget_minutes": bench.budget_minutes,
        "smoke": bench.smoke,
        "framework": bench.framework,
        "machine": machine(),
        "shape": shape,
        "baseline": {"params": {k: getattr(TrainConfig(), k) for k in HYPERPARAMETERS if k not in shape}, **baseline},
        "tuned": {"params": {k: v for k, v in pruned.best_params.items() if k not in shape},
                  "validation_accuracy": pruned.best_value, "best_trial": pruned.best_trial,
                  "study": str(root / "bench-median"), **tuned},
        "pruning": {name: {"trials": r.counts, "mean_trial_seconds": r.mean_trial_seconds}
                    for name, r in (("median", pruned), ("none", unpruned))},
        "goals": {
            "tuned_beats_default": tuned["accuracy"] > baseline["accuracy"],
            "training_time_ratio": time_ratio,
            "same_training_time": time_ratio <= SAME_TIME_TOLERANCE,
            "time_per_trial_ratio": pruned.mean_trial_seconds / unpruned.mean_trial_seconds,
            "pruning_cuts_time_per_trial": pruned.mean_trial_seconds < unpruned.mean_trial_seconds,
        },
        "wall_seconds": round(time.monotonic() - start, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    b, t, g, p = result["baseline"], result["tuned"], result["goals"], result["pruning"]
    verdict = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    lines = [
        f"# Tuning benchmark ({'smoke, ' if result['smoke'] else ''}{result['budget_minutes']} min budget, "
        f"{result['framework']}, {result['machine']})",
        "",
        f"Fixed for every run: {json.dumps(result['shape'])}. Wall time {result['wall_seconds']} s.",
        "",
        f"Test accuracy: the mean over seeds {b['seeds']} (each seed's in brackets).",
        "",
        "| config | test accuracy | training seconds |",
        "|---|---|---|",
        f"| default | {b['accuracy']:.4f} ({', '.join(f'{a:.4f}' for a in b['accuracies'])}) "
        f"| {b['train_seconds']:.1f} |",
        f"| tuned (trial {t['best_trial']}, validation {t['validation_accuracy']:.4f}) | {t['accuracy']:.4f} "
        f"({', '.join(f'{a:.4f}' for a in t['accuracies'])}) | {t['train_seconds']:.1f} |",
        "",
        "| pruner | finished trials | pruned | mean seconds per trial |",
        "|---|---|---|---|",
        *(f"| {name} | {r['trials']['complete'] + r['trials']['pruned']} | {r['trials']['pruned']} | "
          f"{r['mean_trial_seconds']:.1f} |" for name, r in p.items()),
        "",
        f"- tuned params beat the default test accuracy: **{verdict(g['tuned_beats_default'])}** "
        f"({t['accuracy']:.4f} vs {b['accuracy']:.4f})",
        f"- at the same training time (ratio <= {SAME_TIME_TOLERANCE}): **{verdict(g['same_training_time'])}** "
        f"(ratio {g['training_time_ratio']:.2f})",
        f"- pruning cuts the time per trial: **{verdict(g['pruning_cuts_time_per_trial'])}** "
        f"(ratio {g['time_per_trial_ratio']:.2f})",
        "",
        f"Tuned params: `{json.dumps(t['params'])}`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tune", description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-minutes", type=float, default=30.0, help="wall-clock budget (default: 30)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"tiny version on synthetic data: {SMOKE_TRIALS} trials per study, no time budget")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="output directory")
    parser.add_argument("--framework", choices=frameworks.NAMES, default="torch")
    args = parser.parse_args(argv)
    try:
        result = run(BenchConfig(args.budget_minutes, args.smoke, args.out, args.framework))
    except (TuneError, ConfigError, DataError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_report(args.out, "tune", result, markdown(result), record=not args.smoke, target="make bench-tune")
    return 0


if __name__ == "__main__":
    sys.exit(main())
