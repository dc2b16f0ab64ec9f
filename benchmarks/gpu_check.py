"""GPU check: proves the CUDA half on a machine with an NVIDIA GPU in about 10 minutes, and stops with exit 1 at
the first step that ran on the CPU instead (or failed).

``make gpu-check`` (``python -m benchmarks.gpu_check --help``). Every step is a command users run, checked:

1. each trainer on the GPU (``--device cuda``: PyTorch with bfloat16 autocast and channels_last, TensorFlow with
   mixed bfloat16), a few epochs of the CIFAR-10 GPU config on synthetic 32x32x3 data, then ``cifar10-export``
   with its parity step; ``run.json`` must name the GPU and bfloat16;
2. three Optuna trials on CUDA (``cifar10-tune``); every trial's ``run.json`` must name the GPU;
3. the service on onnxruntime's CUDA provider, in the environment with onnxruntime-gpu (``make install-serve-gpu``):
   ready (its golden self-test passed under CUDA), CUDA the active provider, ``/predict``, ``/v2`` binary, a hot
   swap to the TensorFlow file, and the INT8 file served or refused with its reason;
4. figures: training images/s per framework on the GPU and on the CPU, onnxruntime's batch-1 latency and batch-256
   images/s on CUDA and on the CPU, time to the first epoch, and the CIFAR-10 GPU config's time per 50,000-image epoch.

The figures go to ``--out`` as ``gpu-check.json`` and ``.md`` and to the section ``gpu-check`` of BENCHMARKS.md.
Without a GPU it exits 2 with one line (``--preflight`` asks only that). ``--rehearse-on-cpu`` runs every step on
the CPU with each expectation turned to the CPU and small sizes, without recording: the test suite runs it, so that
the script works the day a GPU is there.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cifar10_pipeline.files import atomic_path
from cifar10_pipeline.model import frameworks
from cifar10_pipeline.training.gpus import visible_gpus
from harness import REPO
from harness.report import machine, write_report
from harness.server import SERVE_GPU_PYTHON, Server, call

CONFIG = REPO / "benchmarks" / "configs" / "cifar10-gpu.json"
CIFAR10_TRAIN_IMAGES = 50_000
SWAP_TIMEOUT_S = 60.0  # a model file copied in is swapped in (or refused) within a few reload polls


class CheckFailed(Exception):
    """A step ran on the CPU instead of the GPU, or failed: the message says which and what was seen."""


@dataclass(frozen=True)
class Target:
    """What every step must find: the device the trainers name, their precision, onnxruntime's provider, and the
    sizes of the runs."""

    device: str  # the trainers' --device
    torch_device: str  # how run.json names it (PyTorch); TensorFlow's is tf_device
    tf_device: str
    precision: str
    provider: str  # onnxruntime's, active in the service
    serve_python: str
    config: tuple[str, ...]  # the trainers' config flags
    train_images: int  # per training run; the last epoch's images/s is the figure
    epochs: int
    cpu_images: int  # the CPU comparison run
    tune_images: int
    ort_runs: int  # timed calls per batch size

    @classmethod
    def gpu(cls) -> Target:
        return cls("cuda", "cuda", "/GPU:0", "bfloat16", "CUDAExecutionProvider",
                   str(SERVE_GPU_PYTHON), config=("--params", str(CONFIG)), train_images=20_480,
                   epochs=3, cpu_images=2_048, tune_images=8_192, ort_runs=50)

    @classmethod
    def cpu_rehearsal(cls) -> Target:
        # the GPU config's few steps on so few images leave logits too large for parity's absolute tolerance: a
        # narrow network, small batches
        return cls("cpu", "cpu", "/CPU:0", "float32", "CPUExecutionProvider", frameworks.get("torch").python(),
                   config=("--width", "16", "--batch-size", "128"), train_images=2_048, epochs=2, cpu_images=512,
                   tune_images=512, ort_runs=3)


def run(cmd: list[str], what: str) -> float:
    """Run ``cmd`` in the repository; its wall time (s). A failure is a CheckFailed with the command's last lines."""
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise CheckFailed(f"{what}: exit {done.returncode}\n{tail}")
    return time.perf_counter() - t0


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def train_step(framework: str, target: Target, out: Path, name: str, images: int, device: str,
               precision: str) -> dict:
    """Train ``images`` with the target's config on ``device``; checks run.json; the run's figures."""
    fw = frameworks.get(framework)
    wall = run([fw.python(), "-m", "cifar10_pipeline.training", "--framework", framework, *target.config,
                "--dataset", "synthetic", "--epochs", str(target.epochs), "--max-train-samples", str(images),
                "--max-test-samples", "1000", "--device", device, "--precision", precision,
                "--runs-dir", str(out / "runs"), "--run-name", name], f"{fw.title} training on {device}")
    run_dir = out / "runs" / name
    # by hand, not through training.run.Run: this module runs under a bare Python too (--preflight, before
    # make installs anything), so it imports nothing of the project that needs a dependency
    info = json.loads((run_dir / "run.json").read_text())
    named = target.torch_device if framework == "torch" else target.tf_device
    wanted = named if device == target.device else ("cpu" if framework == "torch" else "/CPU:0")
    expect(str(info.get("device", "")).startswith(wanted),
           f"{fw.title} trained on {info.get('device')!r}, not {wanted!r} ({run_dir / 'run.json'})")
    expect(info.get("precision") == precision, f"{fw.title} trained in {info.get('precision')}, not {precision}")
    rows = read_rows(run_dir)
    return {"run": str(run_dir), "device": info["device"], "precision": info["precision"], "wall_s": round(wall, 1),
            "first_epoch_s": rows[0]["seconds"], "images_per_second": rows[-1]["images_per_second"]}


def export_command(framework: str, run_dir: Path, onnx_file: Path, *flags: str) -> list[str]:
    return [frameworks.get(framework).python(), "-m", "cifar10_pipeline.export", "--run", str(run_dir),
            "--out", str(onnx_file), *flags]


def export_step(framework: str, run_dir: Path, onnx_file: Path) -> dict:
    """``cifar10-export`` with parity; the parity report's figures."""
    run(export_command(framework, run_dir, onnx_file), f"export of {run_dir}")
    parity = json.loads(onnx_file.with_name(onnx_file.stem + ".parity.json").read_text())
    return {"onnx": str(onnx_file), "max_abs_diff": parity["max_abs_diff"], "top1_agreement": parity["top1_agreement"]}


def int8_step(run_dir: Path, out: Path) -> tuple[Path | None, str]:
    """``cifar10-export --quantize int8`` of the PyTorch run: the INT8 file, or None and why its accuracy gate refused
    it (exit 1: a verdict on the model, which a few epochs may earn, not a failure of the GPU)."""
    float_file = out / "int8" / "model.onnx"
    cmd = export_command("torch", run_dir, float_file, "--quantize", "int8")
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode == 1:
        return None, next((line for line in done.stderr.splitlines() if line.startswith("error: ")), done.stderr[-300:])
    if done.returncode != 0:
        raise CheckFailed(f"INT8 export of {run_dir}: exit {done.returncode}\n{done.stderr[-1500:]}")
    return float_file.with_name("model.int8.onnx"), ""


def tune_step(target: Target, out: Path) -> dict:
    """Three Optuna trials of one epoch on ``target.device``; every trial run must name the device."""
    studies = out / "studies"
    run([frameworks.get("torch").python(), "-m", "cifar10_pipeline.training.tuning", "--framework", "torch",
         *target.config, "--dataset", "synthetic", "--epochs", "1", "--max-train-samples", str(target.tune_images),
         "--max-test-samples", "500", "--trials", "3", "--workers", "1", "--no-final-test", "--device", target.device,
         "--studies-dir", str(studies), "--best", str(out / "best_params.json")], "3 Optuna trials")
    devices = [json.loads(p.read_text()).get("device", "") for p in sorted(studies.rglob("run.json"))]
    expect(len(devices) >= 3, f"3 trials asked for, {len(devices)} trial runs found under {studies}")
    expect(all(d.startswith(target.torch_device) for d in devices), f"trials ran on {devices}, not {target.device}")
    return {"trials": len(devices), "devices": sorted(set(devices))}


def get_json(port: int, path: str) -> dict:
    status, body = call(port, "GET", path)
    expect(status == 200, f"GET {path}: {status} {body[:300]!r}")
    return json.loads(body)


def png(height: int, width: int, channels: int) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (height, width, channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def swap_in(port: int, model_path: Path, new_file: Path) -> tuple[bool, str]:
    """Copy ``new_file`` over the served file (atomically) and wait: (served, the refusal's reason if refused)."""
    model_id = hashlib.sha256(new_file.read_bytes()).hexdigest()
    with atomic_path(model_path) as tmp:
        shutil.copyfile(new_file, tmp)
    deadline = time.monotonic() + SWAP_TIMEOUT_S
    while time.monotonic() < deadline:
        info = get_json(port, "/info")
        if info["model_id"] == model_id:
            return True, ""
        if info.get("last_refused") and str(model_path) in info["last_refused"]:
            return False, info["last_refused"]
        time.sleep(0.2)
    raise CheckFailed(f"{new_file} was neither served nor refused within {SWAP_TIMEOUT_S:g} s")


def serve_step(target: Target, out: Path, torch_onnx: Path, tf_onnx: Path, int8: tuple[Path | None, str]) -> dict:
    """The service on ``target.provider``: ready, active provider, /predict, /v2 binary, a hot swap, INT8."""
    expect(Path(target.serve_python).is_file(), f"{target.serve_python} is missing: make install-serve-gpu")
    model_path = out / "serving" / "model.onnx"
    model_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(torch_onnx, model_path)
    settings = {"INFERENCE_MODEL_PATH": str(model_path), "INFERENCE_RELOAD_POLL_S": "0.2",
                "INFERENCE_PROVIDERS": f"{target.provider},CPUExecutionProvider"
                if target.provider != "CPUExecutionProvider" else target.provider}
    result: dict = {}
    with Server(settings, out / "serving" / "server.log",
                command=(target.serve_python, "-m", "cifar10_pipeline.inference.server")) as server:
        result["start_to_ready_s"] = round(server.start_to_ready_s, 2)
        info = get_json(server.port, "/info")
        active = info["providers"]["active"]
        expect(active[:1] == [target.provider], f"the service runs on {active}, not {target.provider} first "
                                                f"(log: {server.log})")
        # a file is served only once its golden self-test passed; this one must have compared with the parity logits
        test = info["self_test"]
        expect(test["compared_to_parity"] and test["max_abs_diff"] <= test["atol"],
               f"golden self-test under {target.provider}: {test}")
        result["self_test_max_abs_diff"] = test["max_abs_diff"]
        height, width, channels = (info["input"][k] for k in ("height", "width", "channels"))
        status, body = call(server.port, "POST", "/predict", png(height, width, channels),
                            {"Content-Type": "image/png"})
        expect(status == 200, f"/predict: {status} {body[:300]!r}")
        label = json.loads(body)["predictions"][0]["label"]
        expect(label in info["labels"], f"/predict answered {label!r}, not one of {info['labels']}")
        pixels = bytes(height * width * channels)
        header = json.dumps({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, height, width, channels],
                                         "parameters": {"binary_data_size": len(pixels)}}]}).encode()
        # binary tensors in, JSON out: no binary output is asked for
        status, body = call(server.port, "POST", f"/v2/models/{info['model_name']}/infer", header + pixels,
                            {"Content-Type": "application/octet-stream",
                             "Inference-Header-Content-Length": str(len(header))})
        expect(status == 200, f"/v2 binary infer: {status} {body[:300]!r}")
        answer = json.loads(body)
        expect(answer["outputs"][0]["shape"] == [1, len(info["labels"])], f"/v2 logits shape: {answer['outputs']}")
        served, reason = swap_in(server.port, model_path, tf_onnx)
        expect(served, f"the hot swap to {tf_onnx} was refused: {reason}")
        active = get_json(server.port, "/info")["providers"]["active"]
        expect(active[:1] == [target.provider], f"after the swap the service runs on {active}")
        int8_file, refusal = int8
        served, reason = swap_in(server.port, model_path, int8_file) if int8_file else (False, "")
        result.update(swap="served", int8="served" if served else f"refused by the service: {reason}" if int8_file
                      else f"refused at export: {refusal}",
                      int8_providers=get_json(server.port, "/info")["providers"]["active"] if served else [])
    return result


def ort_throughput(python: str, model: Path, provider: str, runs: int) -> dict:
    """onnxruntime's batch-1 latency and batch-256 images/s on ``provider`` (``harness.engines.time_forward``),
    measured in ``python``'s environment (this module's --measure-ort mode), which must really run on that
    provider."""
    done = subprocess.run([python, "-m", "benchmarks.gpu_check", "--measure-ort", str(model), provider, str(runs)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CheckFailed(f"onnxruntime on {provider}: {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout)


def measure_ort(model: Path, provider: str, runs: int) -> dict:
    # imported here, not at the top: harness.engines needs numpy, and --preflight runs on the system Python
    from harness.engines import onnx_forward, time_forward

    return time_forward(*onnx_forward(model, provider), latency_runs=runs, throughput_runs=runs)


def check(target: Target, out: Path, log=print) -> dict:
    """Every step, in order; a CheckFailed at the first that fails."""
    report: dict = {"machine": machine(), "gpus": [str(gpu) for gpu in visible_gpus()], "train": {}, "cpu_train": {},
                    "export": {}}
    for framework in frameworks.NAMES:
        log(f"== {frameworks.get(framework).title} on {target.device}")
        trained = train_step(framework, target, out, f"{framework}-{target.device}", target.train_images,
                             target.device, target.precision)
        report["train"][framework] = trained
        onnx_file = out / f"{framework}.onnx"
        report["export"][framework] = export_step(framework, Path(trained["run"]), onnx_file)
        # the CPU's figure, beside the GPU's (a rehearsal, on the CPU already, has it)
        report["cpu_train"][framework] = trained if target.device == "cpu" else train_step(
            framework, target, out, f"{framework}-on-cpu", target.cpu_images, "cpu", "float32")
    log(f"== 3 Optuna trials on {target.device}")
    report["tune"] = tune_step(target, out)
    log("== the INT8 twin of the PyTorch run")
    int8 = int8_step(Path(report["train"]["torch"]["run"]), out)
    log(f"== the service on {target.provider}")
    report["serve"] = serve_step(target, out, out / "torch.onnx", out / "tensorflow.onnx", int8)
    log("== onnxruntime throughput")
    report["onnxruntime"] = {
        target.provider: ort_throughput(target.serve_python, out / "torch.onnx", target.provider, target.ort_runs),
        "CPUExecutionProvider": ort_throughput(frameworks.get("torch").python(), out / "torch.onnx",
                                               "CPUExecutionProvider", target.ort_runs)}
    return report


def markdown(report: dict, target: Target, head: str) -> str:
    gpus = ", ".join(report["gpus"]) or "none (CPU rehearsal)"
    lines = [f"# GPU check ({head})", "", f"GPUs: {gpus}. Every step passed: each trainer on {target.device} "
             f"({target.precision}), export with parity, 3 Optuna trials on {target.device}, the service on "
             f"{target.provider} (ready, /predict, /v2 binary, hot swap; INT8 file: {report['serve']['int8']}).", "",
             "| framework | images/s on " + target.device + " | images/s on the CPU | first epoch s (warm-up included) "
             "| s per CIFAR-10 epoch (50,000 images) |", "| --- | ---: | ---: | ---: | ---: |"]
    for framework, row in report["train"].items():
        ips = row["images_per_second"]
        lines.append(f"| {framework} | {ips} | {report['cpu_train'][framework]['images_per_second']} | "
                     f"{row['first_epoch_s']} | {CIFAR10_TRAIN_IMAGES / ips:.1f} |")
    lines += ["", "| onnxruntime provider | batch 1 p50 ms | batch 256 images/s |", "| --- | ---: | ---: |"]
    for provider, row in report["onnxruntime"].items():
        lines.append(f"| {provider} | {row['batch1_p50_ms']:.2f} | {row['batch256_images_per_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("bench-results/gpu-check"),
                   help="runs, ONNX files and figures (default: bench-results/gpu-check)")
    p.add_argument("--rehearse-on-cpu", action="store_true",
                   help="every step on the CPU, small, expectations turned to the CPU; nothing recorded")
    p.add_argument("--preflight", action="store_true",
                   help="only say whether a GPU is here (exit 2 and one line when not): make gpu-check asks this "
                        "before it installs anything; the standard library and src/ are all it needs")
    p.add_argument("--measure-ort", nargs=3, metavar=("MODEL", "PROVIDER", "RUNS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        if args.measure_ort:
            model, provider, runs = args.measure_ort
            print(json.dumps(measure_ort(Path(model), provider, int(runs))))
            return 0
        if not args.rehearse_on_cpu and not visible_gpus():
            print("gpu-check: no NVIDIA GPU here (nvidia-smi -L lists none): nothing to check", file=sys.stderr)
            return 2
        if args.preflight:
            return 0
        target = Target.cpu_rehearsal() if args.rehearse_on_cpu else Target.gpu()
        out = args.out.resolve()
        shutil.rmtree(out, ignore_errors=True)
        report = check(target, out, log=lambda line: print(line, file=sys.stderr, flush=True))
    except CheckFailed as e:
        print(f"gpu-check FAILED: {e}", file=sys.stderr)
        return 1
    head = f"{machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    write_report(out, "gpu-check", report, markdown(report, target, head), record=not args.rehearse_on_cpu,
                 module="gpu_check", target="make gpu-check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
