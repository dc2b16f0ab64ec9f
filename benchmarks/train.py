"""Training benchmark: accuracy within a time budget on real data, and training throughput.

``python -m benchmarks.train --help``. Each framework's trainer runs as its own command in its own
environment (PyTorch from this interpreter, TensorFlow from ``$TF_PYTHON``, default ``.venv-tf/bin/python``),
on Fashion-MNIST (real images from Debian's ``dataset-fashion-mnist``) with the CPU config in
``benchmarks/configs/``, then on data of CIFAR-10's shape (32x32x3) to measure seconds per epoch.
Figures go to ``--out`` as ``train.json`` and ``train.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import machine, write_report

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = Path(__file__).resolve().parent / "configs"
CIFAR10_TRAIN_IMAGES = 50_000

# framework -> (trainer module, interpreter, accuracy goal on Fashion-MNIST, time budget in seconds, config):
# each config's epochs fill its framework's budget on 2 cores
FRAMEWORKS = {
    "torch": ("training.train_torch", sys.executable, 0.940, 600, "fashion-mnist-cpu.json"),
    "tensorflow": ("training.train_tf", os.environ.get("TF_PYTHON", str(ROOT / ".venv-tf/bin/python")), 0.935, 900,
                   "fashion-mnist-cpu-15min.json"),
}


def run_trainer(framework: str, runs_dir: Path, name: str, args: list[str]) -> dict:
    """Train in a subprocess; return the run's metrics rows and run.json."""
    module, python = FRAMEWORKS[framework][:2]
    cmd = [python, "-m", module, "--runs-dir", str(runs_dir), "--run-name", name, *args]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    run = runs_dir / name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"rows": rows, "info": json.loads((run / "run.json").read_text()), "wall_seconds": wall}


def accuracy_case(framework: str, runs_dir: Path, smoke: bool) -> dict:
    _, _, goal, budget, config = FRAMEWORKS[framework]
    args = ["--dataset", "fashion-mnist", "--params", str(CONFIGS / config)]
    if smoke:
        args += ["--epochs", "1", "--max-train-samples", "2000", "--max-test-samples", "1000"]
    result = run_trainer(framework, runs_dir, f"{framework}-fashion", args)
    rows = result["rows"]
    train_seconds = sum(r["train_seconds"] for r in rows)
    accuracy = result["info"]["eval_accuracy"]  # eval split "test": no validation split here
    return {
        "framework": framework,
        "config": f"benchmarks/configs/{config}",
        "framework_version": result["info"].get("framework_version"),
        "device": result["info"].get("device"),
        "epochs": len(rows),
        "test_accuracy": accuracy,
        "train_seconds": round(train_seconds, 1),  # optimisation steps only
        "total_seconds": round(sum(r["seconds"] for r in rows), 1),  # plus per-epoch evaluation
        "seconds_per_epoch": round(train_seconds / len(rows), 2),
        "images_per_second": round(sum(r["images_per_second"] for r in rows) / len(rows), 1),
        "goal": f">= {100 * goal:.1f}% in <= {budget // 60} min",
        "goal_met": accuracy >= goal and sum(r["seconds"] for r in rows) <= budget,
    }


def throughput_case(framework: str, runs_dir: Path, smoke: bool) -> dict:
    """Seconds per CIFAR-10 epoch (50,000 images of 32x32x3) for the GPU-sized network (width 64, batch 512),
    from a timed partial epoch on synthetic data of the same shape; the first epoch includes warm-up."""
    n = 1024 if smoke else 8192
    args = ["--dataset", "synthetic", "--epochs", "2", "--width", "64", "--batch-size", "512",
            "--max-train-samples", str(n), "--max-test-samples", "512"]
    rows = run_trainer(framework, runs_dir, f"{framework}-cifar-shape", args)["rows"]
    ips = rows[-1]["images_per_second"]  # the second epoch: steady state
    return {"framework": framework, "images": n, "images_per_second": ips,
            "seconds_per_cifar10_epoch": round(CIFAR10_TRAIN_IMAGES / ips, 1)}


def markdown(report: dict) -> str:
    lines = [f"# Training benchmark ({report['machine']}, {report['date']})", "",
             "## Fashion-MNIST (real data)", "",
             "| framework | config | epochs | test accuracy | train s | total s | s/epoch | images/s | goal | met |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in report["accuracy"]:
        lines.append(f"| {c['framework']} {c['framework_version']} ({c['device']}) | `{c['config']}` | {c['epochs']} | "
                     f"{100 * c['test_accuracy']:.2f}% | {c['train_seconds']} | {c['total_seconds']} | "
                     f"{c['seconds_per_epoch']} | {c['images_per_second']} | {c['goal']} | {c['goal_met']} |")
    lines += ["", "## Data of CIFAR-10's shape (32x32x3), width 64, batch 512", "",
              "| framework | images timed | images/s | s per CIFAR-10 epoch (50,000 images) |", "| --- | --- | --- | --- |"]
    for c in report["throughput"]:
        lines.append(f"| {c['framework']} | {c['images']} | {c['images_per_second']} | {c['seconds_per_cifar10_epoch']} |")
    if report["smoke"]:
        lines += ["", "**Smoke mode**: tiny budgets, the figures only show that the benchmark runs."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--frameworks", default="torch,tensorflow", help="comma-separated (default: torch,tensorflow)")
    p.add_argument("--out", type=Path, default=Path("bench-results"), help="output directory (default: bench-results)")
    p.add_argument("--smoke", action="store_true", help="tiny budgets: check that the benchmark runs")
    args = p.parse_args(argv)
    frameworks = args.frameworks.split(",")
    unknown = sorted(set(frameworks) - set(FRAMEWORKS))
    if unknown:
        p.error(f"unknown frameworks {unknown}; choose from {sorted(FRAMEWORKS)}")
    with tempfile.TemporaryDirectory() as tmp:
        report = {
            "machine": machine(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "smoke": args.smoke,
            "accuracy": [accuracy_case(f, Path(tmp), args.smoke) for f in frameworks],
            "throughput": [throughput_case(f, Path(tmp), args.smoke) for f in frameworks],
        }
    write_report(args.out, "train", report, markdown(report), record=not args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
