"""Training benchmark: accuracy within a budget of work on real data, and training throughput.

``python -m benchmarks.train --help``. Each goal is a config in ``benchmarks/configs/`` trained on Fashion-MNIST
(real images from Debian's ``dataset-fashion-mnist``) once per seed, with the command ``make train-torch`` (or
``train-tf``) runs, each framework in its own environment (``model.frameworks``). A goal's budget is epochs of the
training images: a run's accuracy is that of the exported ONNX file on the 10,000 test images (``cifar10-export``,
whose parity step runs onnxruntime over all of them), and a goal is met when the mean over the seeds reaches it
within the budget. Beside it, what the work took here: the trainer's wall time from process start to exit (data
loading and the evaluations of ``eval_every`` included) and the mean training step, and what serving the exported
file costs (onnxruntime, batch 1 and batch 256: a wider network or more test-time views is slower to serve). Then
the CIFAR-10 GPU config's network and batch are timed on data of CIFAR-10's shape (32x32x3) on this machine.
Figures go to ``--out`` as ``train-<case>.json`` and ``.md``; the runs stay in ``--out``/runs (``make bench``
quantizes one of them).

``--set KEY=VALUE`` measures a candidate recipe against a goal without editing its shipped config: the goal's config
with those keys changed is written to ``--out`` and trained instead, and its figures stay out of BENCHMARKS.md,
which reports the shipped configs only."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.training.config import ConfigError, TrainConfig
from cifar10_pipeline.training.run import Run
from harness import REPO
from harness.engines import onnx_forward, time_forward
from harness.report import machine, write_report

CONFIGS = Path(__file__).resolve().parent / "configs"
CIFAR10_GPU_CONFIG = "cifar10-gpu.json"
CIFAR10_TRAIN_IMAGES = 50_000
FASHION_MNIST_TRAIN_IMAGES = 60_000
SERVING_RUNS, SMOKE_SERVING_RUNS = (200, 10), (5, 1)  # (batch-1, batch-256) calls timed on each exported file


@dataclass(frozen=True)
class Goal:
    """A mean test accuracy within a budget of work: epochs of the 60,000 Fashion-MNIST training images, at the
    config's width. Work, not seconds: the same run takes 1.3x longer on one of these machines than on another."""

    name: str
    framework: str
    config: str  # file name in benchmarks/configs/
    accuracy: float  # mean test accuracy of the exported ONNX files over the seeds
    epochs: int  # the budget

    @property
    def text(self) -> str:
        return f">= {100 * self.accuracy:.1f}% in {self.epochs} epochs"


GOALS = {goal.name: goal for goal in (
    Goal("torch-5min", "torch", "fashion-mnist-torch-5min.json", 0.940, 12),
    Goal("torch-15min", "torch", "fashion-mnist-torch-15min.json", 0.950, 16),
    Goal("tf-6min", "tensorflow", "fashion-mnist-tf-6min.json", 0.940, 10),
    # the stretch goal: either framework; the PyTorch trainer's steps are the faster on these CPUs
    Goal("torch-8-epochs", "torch", "fashion-mnist-torch-8-epochs.json", 0.940, 8),
)}
CASES = (*GOALS, "throughput")


def run_command(cmd: list[str]) -> float:
    """Run ``cmd`` in the repository; its wall time in seconds."""
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def train_and_export(framework: str, runs_dir: Path, name: str, args: list[str], parity_images: int,
                     train_images: int, serving_runs: tuple[int, int]) -> dict:
    """Train, timed, then export the run; the run's figures (the mean step's time over ``train_images`` per epoch),
    the ONNX file's test accuracy and what serving it costs here (``harness.engines``: ``serving_runs`` batch-1 and
    batch-256 calls timed)."""
    python = frameworks.get(framework).python()
    wall = run_command([python, "-m", "cifar10_pipeline.training", "--framework", framework,
                        "--runs-dir", str(runs_dir), "--run-name", name, *args])
    run = Run(runs_dir / name)
    onnx_file = run.path / "model.onnx"
    run_command([python, "-m", "cifar10_pipeline.export", "--run", str(run.path), "--out", str(onnx_file),
                 *(["--parity-images", str(parity_images)] if parity_images else [])])
    rows = run.metrics()
    parity = json.loads(onnx_file.with_name("model.parity.json").read_text())
    info, config = run.info, run.config
    train_seconds = sum(r["train_seconds"] for r in rows)
    steps = len(rows) * math.ceil(train_images / config.batch_size)
    serving = time_forward(*onnx_forward(onnx_file), *serving_runs)
    return {"run": str(run.path), "wall_seconds": round(wall, 1), "epochs": len(rows), "width": config.width,
            "batch_size": config.batch_size, "train_seconds": round(train_seconds, 1),
            "ms_per_step": round(1000 * train_seconds / steps, 1),
            "trainer_accuracy": info["test_accuracy"], "onnx_accuracy": parity["test_accuracy"],
            # with ema: the weights being trained, scored by the trainer at the last epoch, beside their average
            "live_accuracy": rows[-1].get("eval_acc_live"),
            "onnx_batch1_p50_ms": round(serving["batch1_p50_ms"], 2),
            "onnx_batch256_images_per_s": round(serving["batch256_images_per_s"]),
            "framework_version": info.get("framework_version"), "device": info.get("device"),
            "precision": info.get("precision")}


def candidate_config(goal: Goal, overrides: dict, out: Path) -> Path:
    """The goal's config with ``overrides``, checked as the trainer checks it (a ConfigError names a bad key or
    value) and written to ``out``; the goal's own file when there are none."""
    if not overrides:
        return CONFIGS / goal.config
    values = {**json.loads((CONFIGS / goal.config).read_text()), **overrides}
    TrainConfig.from_dict(values)
    path = out / f"train-{goal.name}.params.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2) + "\n")
    return path


def goal_case(goal: Goal, seeds: list[int], runs_dir: Path, smoke: bool, params: Path, overrides: dict) -> dict:
    args = ["--dataset", "fashion-mnist", "--params", str(params)]
    train_images = FASHION_MNIST_TRAIN_IMAGES
    if smoke:
        train_images = 2000
        args += ["--epochs", "1", "--max-train-samples", str(train_images), "--max-test-samples", "1000"]
    runs = [{"seed": seed, **train_and_export(goal.framework, runs_dir, f"{goal.name}-seed{seed}",
                                              [*args, "--seed", str(seed)], 1000 if smoke else 0, train_images,
                                              SMOKE_SERVING_RUNS if smoke else SERVING_RUNS)}
            for seed in seeds]
    accuracy = statistics.mean(r["onnx_accuracy"] for r in runs)
    seconds = statistics.mean(r["wall_seconds"] for r in runs)
    live = [r["live_accuracy"] for r in runs]
    return {"goal": goal.name, "framework": goal.framework, "config": f"benchmarks/configs/{goal.config}",
            "overrides": overrides, "params": str(params), "seeds": seeds, "runs": runs, "mean_accuracy": accuracy,
            "mean_live_accuracy": None if None in live else statistics.mean(live),
            "mean_seconds": round(seconds, 1),
            "max_seconds": max(r["wall_seconds"] for r in runs),
            "mean_ms_per_step": round(statistics.mean(r["ms_per_step"] for r in runs), 1),
            "mean_onnx_batch1_p50_ms": round(statistics.mean(r["onnx_batch1_p50_ms"] for r in runs), 2),
            "mean_onnx_batch256_images_per_s": round(statistics.mean(r["onnx_batch256_images_per_s"] for r in runs)),
            "target": goal.text,
            "met": accuracy >= goal.accuracy and all(r["epochs"] <= goal.epochs for r in runs)}


def throughput_case(runs_dir: Path, smoke: bool) -> dict:
    """Images per second of the CIFAR-10 GPU config's network and batch on this machine, per framework, from the
    second of two epochs on synthetic data of CIFAR-10's shape (the first includes warm-up)."""
    config = json.loads((CONFIGS / CIFAR10_GPU_CONFIG).read_text())
    n = 2 * config["batch_size"] if smoke else 8 * config["batch_size"]
    rows = []
    for framework in frameworks.NAMES:
        args = ["--dataset", "synthetic", "--params", str(CONFIGS / CIFAR10_GPU_CONFIG), "--epochs", "2",
                "--max-train-samples", str(n), "--max-test-samples", "512"]
        name = f"{framework}-cifar-shape"
        run_command([frameworks.get(framework).python(), "-m", "cifar10_pipeline.training", "--framework", framework,
                     "--runs-dir", str(runs_dir), "--run-name", name, *args])
        ips = Run(runs_dir / name).metrics()[-1]["images_per_second"]
        rows.append({"framework": framework, "images": n, "images_per_second": ips,
                     "seconds_per_cifar10_epoch": round(CIFAR10_TRAIN_IMAGES / ips, 1)})
    return {"config": f"benchmarks/configs/{CIFAR10_GPU_CONFIG}", "width": config["width"],
            "batch_size": config["batch_size"], "rows": rows}


def goal_markdown(case: dict, head: str) -> str:
    changed = ", ".join(f"{k}={json.dumps(v)}" for k, v in case["overrides"].items())
    lines = [f"# Training goal {case['goal']}: {case['target']} ({head})", "",
             *([f"Candidate: `{case['config']}` with {changed} (`{case['params']}`).", ""] if changed else []),
             f"`make train-{'torch' if case['framework'] == 'torch' else 'tf'} export DATASET=fashion-mnist "
             f"PARAMS={case['params'] if changed else case['config']}`, seeds {', '.join(map(str, case['seeds']))}; "
             "the budget is work (epochs of the training images at the config's width), so the times say what it "
             "took on this machine; wall: the trainer command's (data loading and evaluation included); "
             "step: the mean training step (augmentation, forward, backward, update); accuracy: the exported ONNX "
             "file on the test images.", "",
             "| seed | epochs | width | batch | ONNX test accuracy | wall s | of which training steps s | ms per step "
             "| precision |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in case["runs"]:
        lines.append(f"| {r['seed']} | {r['epochs']} | {r['width']} | {r['batch_size']} | "
                     f"{100 * r['onnx_accuracy']:.2f}% | {r['wall_seconds']} | {r['train_seconds']} | "
                     f"{r['ms_per_step']} | {r['precision']} |")
    live = (", ".join(f"{100 * r['live_accuracy']:.2f}%" for r in case["runs"])
            if case["mean_live_accuracy"] is not None else "")
    lines += ["", f"**Mean: {100 * case['mean_accuracy']:.2f}%**, in {case['mean_seconds']} s of wall time (slowest "
                  f"run {case['max_seconds']} s) at {case['mean_ms_per_step']} ms per step. Goal {case['target']}: "
                  f"**{'met' if case['met'] else 'not met'}**.", "",
              *([f"Without the moving average of the weights (ema): the same runs' live weights, scored by the "
                 f"trainer, {live}: mean **{100 * case['mean_live_accuracy']:.2f}%**.", ""] if live else []),
              f"Serving the exported file (onnxruntime on this CPU, test-time views included): batch-1 p50 "
              f"{case['mean_onnx_batch1_p50_ms']} ms, {case['mean_onnx_batch256_images_per_s']} images/s in batches "
              "of 256 (means over the seeds)."]
    return "\n".join(lines) + "\n"


def throughput_markdown(case: dict, head: str) -> str:
    lines = [f"# CIFAR-10 GPU config on this CPU ({head})", "",
             f"`{case['config']}` (width {case['width']}, batch {case['batch_size']}) on synthetic 32x32x3 data; the "
             "config is sized for one GPU, and its time to 94% on CIFAR-10 is unmeasured (no GPU, no CIFAR-10 here).",
             "", "| framework | images timed | images/s | s per CIFAR-10 epoch (50,000 images) |",
             "| --- | ---: | ---: | ---: |"]
    for r in case["rows"]:
        lines.append(f"| {r['framework']} | {r['images']} | {r['images_per_second']} | "
                     f"{r['seconds_per_cifar10_epoch']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", metavar="CASE", choices=CASES, default=list(CASES),
                   help=f"cases to run (default: all of {', '.join(CASES)})")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds per goal (default: 0,1,2)")
    p.add_argument("--out", type=Path, default=Path("bench-results"), help="output directory (default: bench-results)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="measure a candidate: train the goals with this config key changed (VALUE as JSON: "
                        "dropout=0, flip=false); repeatable; the figures are not recorded in BENCHMARKS.md")
    p.add_argument("--smoke", action="store_true", help="one tiny epoch per run: check that the benchmark runs")
    p.add_argument("--list", action="store_true", help="print each goal as JSON (name, framework, config, target, "
                                                        "epochs) and exit")
    args = p.parse_args(argv)
    if args.list:
        for goal in GOALS.values():
            print(json.dumps({"name": goal.name, "framework": goal.framework, "config": f"benchmarks/configs/"
                              f"{goal.config}", "target": goal.text, "accuracy": goal.accuracy, "epochs": goal.epochs}))
        return 0
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        p.error(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. 0,1,2")
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--set {item!r}: expected KEY=VALUE, e.g. dropout=0")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value  # a bare word: a string value
    if overrides and "throughput" in args.only:
        p.error("--set changes the goals' configs: name the goals with --only (throughput has no goal)")
    goals = [GOALS[name] for name in args.only if name in GOALS]
    try:
        params = {goal.name: candidate_config(goal, overrides, args.out) for goal in goals}
    except ConfigError as e:
        p.error(f"--set: {e}")
    runs_dir = args.out / "runs"
    head = f"{machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}" + (", smoke" if args.smoke else "")
    for name in args.only:
        if name == "throughput":
            case = throughput_case(runs_dir, args.smoke)
            text = throughput_markdown(case, head)
        else:
            case = goal_case(GOALS[name], seeds, runs_dir, args.smoke, params[name], overrides)
            text = goal_markdown(case, head)
        write_report(args.out, f"train-{name}", {"machine": machine(), "smoke": args.smoke, **case}, text,
                     record=not (args.smoke or overrides), module="train")
    return 0


if __name__ == "__main__":
    sys.exit(main())
