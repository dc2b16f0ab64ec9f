"""INT8 against float: onnxruntime throughput of an exported model and its INT8 twin, side by side.

``python -m benchmarks.quantize --run RUN_DIR --out bench-results`` (``--smoke``: a few rounds, to show that it
runs). Exports the finished run with ``cifar10-export --quantize int8`` (in the environment of the run's framework,
``model.frameworks``) into a temporary folder, then times onnxruntime on both files at batch 1 and 64 with the
service's session options (one intra-op thread, no spinning), in interleaved rounds. Throughput is counted per
second of the process's CPU time, which on one thread is the wall-clock throughput of an idle core and is not
inflated when other jobs share the CPUs; wall-clock figures stand beside it. Test accuracy of both files comes from
the export's accuracy gate (the whole test set). onnxruntime's profile of both files says where the time goes, per
operator type.
Goal: the INT8 file at >= 2x the float file's throughput at batch 1 and at batch 64.
Figures go to ``--out`` as ``quantize.json`` and ``quantize.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.training.run import Run
from harness import REPO
from harness.report import machine, write_report

BATCHES = (1, 64)
GOAL_SPEEDUP = 2.0


def export_both(run: Path, out: Path) -> tuple[Path, Path]:
    """``cifar10-export --quantize int8`` of ``run`` in its framework's environment: (float file, INT8 file)."""
    framework = frameworks.get(Run(run).info["framework"])
    cmd = [framework.python(), "-m", "cifar10_pipeline.export", "--run", str(run), "--out", str(out / "model.onnx"),
           "--quantize", "int8"]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    return out / "model.onnx", out / "model.int8.onnx"


def sessions(paths: dict[str, Path], profile_dir: Path | None = None) -> dict:
    import onnxruntime as ort

    from cifar10_pipeline.inference.runtime import session_options

    made = {}
    for name, path in paths.items():
        options = session_options(1)
        if profile_dir is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(profile_dir / name)
        made[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return made


def throughput(runs: dict, images: np.ndarray, rounds: int, seconds: float) -> dict[str, dict[str, float]]:
    """Images per CPU second and per wall second of each session on ``images`` (one batch), the median over
    ``rounds`` interleaved rounds of about ``seconds`` each in all."""
    feeds = {"image": images}
    calls = {}
    for name, session in runs.items():
        for _ in range(5):  # warm-up: first-call allocations
            session.run(None, feeds)
        t0 = time.process_time()
        for _ in range(5):
            session.run(None, feeds)
        per_call = max((time.process_time() - t0) / 5, 1e-6)
        calls[name] = max(1, int(seconds / rounds / len(runs) / per_call))
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, session in runs.items():
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(calls[name]):
                session.run(None, feeds)
            cpu[name].append(calls[name] * len(images) / max(time.process_time() - c0, 1e-9))
            wall[name].append(calls[name] * len(images) / (time.perf_counter() - w0))
    return {name: {"cpu": float(np.median(cpu[name])), "wall": float(np.median(wall[name]))} for name in runs}


def profile(paths: dict[str, Path], images: np.ndarray, calls: int) -> dict[str, dict[str, float]]:
    """Microseconds per call of each operator type (the kernels onnxruntime runs after its graph optimisations):
    per node the 10th percentile over ``calls`` calls, which leaves out the calls another process preempted."""
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as tmp:
        by_op: dict[str, dict[str, float]] = {}
        for name, session in sessions(paths, Path(tmp)).items():
            for _ in range(calls):
                session.run(None, {"image": images})
            events = json.loads(Path(session.end_profiling()).read_text())
            durations: dict[tuple[str, str], list[int]] = {}
            for event in events:
                if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                    durations.setdefault((event["args"]["op_name"], event["name"]), []).append(event["dur"])
            for (op, _), values in durations.items():
                by_op.setdefault(op, {}).setdefault(name, 0.0)
                by_op[op][name] += float(np.percentile(values, 10))
    return dict(sorted(by_op.items(), key=lambda kv: -max(kv[1].values())))


def markdown(report: dict) -> str:
    acc = report["accuracy"]
    lines = [f"# INT8 against float ({report['machine']}{', smoke counts' if report['smoke'] else ''})", "",
             f"Run `{report['run']}` ({report['framework']}, {report['dataset']}); {acc['method']}, calibrated on "
             f"{acc['calibration_images']} training images. Test accuracy on {acc['test_images']} images: float "
             f"{100 * acc['float']:.2f}%, INT8 {100 * acc['int8']:.2f}% ({acc['drop_points']:.2f} points lost, "
             f"top-1 agreement {100 * acc['top1_agreement']:.2f}%, max |logit diff| {acc['max_abs_diff']:.3g}).", "",
             "onnxruntime CPU provider, one intra-op thread (the service's default); images/s per second of CPU "
             "time (wall-clock in brackets), medians of interleaved rounds.", "",
             "| batch | float images/s | INT8 images/s | speedup | goal |", "| --- | ---: | ---: | ---: | --- |"]
    for row in report["rows"]:
        lines.append(f"| {row['batch']} | {row['float_cpu']:.0f} ({row['float_wall']:.0f}) | {row['int8_cpu']:.0f} "
                     f"({row['int8_wall']:.0f}) | {row['speedup_cpu']:.2f}x ({row['speedup_wall']:.2f}x) | "
                     f">= {GOAL_SPEEDUP:g}x: {'met' if row['goal_met'] else 'not met'} |")
    lines += ["", f"Goal: INT8 >= {GOAL_SPEEDUP:g}x the float throughput at batch 1 and at batch 64: "
              f"**{'met' if report['goal_met'] else 'not met'}**.", "",
              "Where the time goes (onnxruntime profile, microseconds per call by operator type, float / INT8):", "",
              "| operator | " + " | ".join(f"batch {b}" for b in BATCHES) + " |",
              "| --- |" + " ---: |" * len(BATCHES)]
    ops = sorted({op for b in BATCHES for op in report["profile"][str(b)]},
                 key=lambda op: -max(report["profile"][str(BATCHES[-1])].get(op, {}).values() or [0]))
    for op in ops:
        cells = []
        for b in BATCHES:
            times = report["profile"][str(b)].get(op, {})
            cells.append(" / ".join(f"{times[k]:.0f}" if k in times else "-" for k in ("float", "int8")))
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quantize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, metavar="RUN_DIR", help="a finished training run")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory for quantize.json/.md")
    parser.add_argument("--smoke", action="store_true", help="a few rounds: a check that it runs")
    args = parser.parse_args(argv)
    if not (args.run / "run.json").is_file():
        parser.error(f"--run {args.run}: not a run directory (no run.json)")
    rounds, seconds, calls = (2, 0.5, 5) if args.smoke else (20, 8.0, 200)
    with tempfile.TemporaryDirectory(prefix="bench-quantize-") as tmp:
        paths = dict(zip(("float", "int8"), export_both(args.run, Path(tmp))))
        from cifar10_pipeline.contract import golden_input
        from cifar10_pipeline.inference.runtime import load_session

        info = load_session(paths["int8"], ["CPUExecutionProvider"], 1).info  # checked as the service checks it
        quantization = info.metadata["quantization"]
        # throughput does not depend on the pixels: the golden input's bytes, of the model's shape
        images = {b: golden_input(b, *info.input_shape) for b in BATCHES}
        rows, profiles = [], {}
        for batch in BATCHES:
            ips = throughput(sessions(paths), images[batch], rounds, seconds)
            speedup_cpu = ips["int8"]["cpu"] / ips["float"]["cpu"]
            rows.append({"batch": batch, "float_cpu": ips["float"]["cpu"], "int8_cpu": ips["int8"]["cpu"],
                         "float_wall": ips["float"]["wall"], "int8_wall": ips["int8"]["wall"],
                         "speedup_cpu": speedup_cpu, "speedup_wall": ips["int8"]["wall"] / ips["float"]["wall"],
                         "goal_met": speedup_cpu >= GOAL_SPEEDUP})
            profiles[str(batch)] = profile(paths, images[batch], calls if batch == 1 else max(2, calls // 10))
    method = quantization["method"]
    report = {
        "machine": machine(), "smoke": args.smoke, "run": str(args.run), "framework": info.metadata["framework"],
        "dataset": info.metadata["dataset"],
        "accuracy": {"method": f"{method['format']}, weights {method['weights']}, activations {method['activations']}"
                               f", float: {method['float_nodes']}",
                     "calibration_images": quantization["calibration_images"],
                     "test_images": quantization["test_images"], "float": quantization["float_test_accuracy"],
                     "int8": quantization["int8_test_accuracy"], "drop_points": quantization["accuracy_drop_points"],
                     "top1_agreement": quantization["top1_agreement"], "max_abs_diff": quantization["max_abs_diff"]},
        "rows": rows, "profile": profiles,
        "goal": f"INT8 >= {GOAL_SPEEDUP:g}x the float throughput at batch 1 and 64",
        "goal_met": all(row["goal_met"] for row in rows),
    }
    write_report(args.out, "quantize", report, markdown(report), record=not args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
