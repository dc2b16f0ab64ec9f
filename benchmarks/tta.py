"""Test-time augmentation: what each kind of view adds, on the same trained weights.

``python -m benchmarks.tta --runs RUN_DIR ... --out bench-results`` (``--smoke``: leave BENCHMARKS.md alone).
Each run is a finished PyTorch run (the network rebuilds from the spec its model file carries, with other views and
the same weights). Its model is scored three ways on its run's evaluation images: no TTA, the mirror, and the
mirror with the run's shifts (one pixel when it trained without them): the evidence that decides whether a config
keeps a kind of view. Figures go to ``--out`` as ``tta.json`` and ``tta.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

from cifar10_pipeline.model.spec import ModelSpec
from cifar10_pipeline.model.torch_net import build_model, load_payload
from cifar10_pipeline.training.datasets import prepare_for_training
from cifar10_pipeline.training.run import Run
from cifar10_pipeline.training.torch_trainer import predict_logits
from harness.report import machine, write_report


def score_run(path: Path) -> dict:
    """The run's accuracy with each kind of view, its own model's (run.json) beside them."""
    run = Run.open(path)
    payload = load_payload(path / "model.pt")
    spec = ModelSpec.from_dict(payload["spec"])
    data = prepare_for_training(run.config)
    images, labels = torch.from_numpy(data.eval_images), torch.from_numpy(data.eval_labels)
    shift = spec.tta_shift or 1
    accuracy = {}
    for name, tta, tta_shift in (("none", False, 0), ("mirror", True, 0), ("mirror_shifts", True, shift)):
        model = build_model(dataclasses.replace(spec, tta=tta, tta_shift=tta_shift))
        model.load_state_dict(payload["model"])
        logits = predict_logits(model.eval(), images)
        accuracy[name] = int((logits.argmax(1) == labels).sum()) / len(labels)
    return {"run": str(path), "seed": run.config.seed, "shift": shift, "eval_split": data.eval_split,
            "images": len(labels), "accuracy": accuracy, "own_model": run.info.get(f"{data.eval_split}_accuracy"),
            "own_views": {"mirror": spec.tta, "shift": spec.tta_shift}}


def markdown(rows: list[dict], head: str) -> str:
    lines = [f"# Test-time augmentation on the same weights ({head})", "",
             "Each trained model scored with no TTA, with the mirror, and with the mirror and the shifts (the "
             "exported graph's views), on its run's evaluation images.", "",
             "| run | seed | images | none | mirror | mirror + shifts | shifts add (points) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        a = r["accuracy"]
        lines.append(f"| `{Path(r['run']).name}` | {r['seed']} | {r['images']} | {100 * a['none']:.2f}% | "
                     f"{100 * a['mirror']:.2f}% | {100 * a['mirror_shifts']:.2f}% ({r['shift']} px) | "
                     f"{100 * (a['mirror_shifts'] - a['mirror']):+.2f} |")
    mean = {k: statistics.mean(r["accuracy"][k] for r in rows) for k in ("none", "mirror", "mirror_shifts")}
    lines += ["", f"**Mean: none {100 * mean['none']:.2f}%, mirror {100 * mean['mirror']:.2f}%, mirror + shifts "
                  f"{100 * mean['mirror_shifts']:.2f}%** ({100 * (mean['mirror_shifts'] - mean['mirror']):+.2f} "
                  "points for the shifts)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tta", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", type=Path, required=True, metavar="RUN_DIR", help="finished PyTorch runs")
    p.add_argument("--out", type=Path, default=Path("bench-results"), help="output directory (default: bench-results)")
    p.add_argument("--smoke", action="store_true", help="write the figures but leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    missing = [str(r) for r in args.runs if not (r / "model.pt").is_file()]
    if missing:
        p.error(f"not finished PyTorch runs (no model.pt): {', '.join(missing)}")
    rows = [score_run(run) for run in args.runs]
    head = f"{machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}" + (", smoke" if args.smoke else "")
    write_report(args.out, "tta", {"machine": machine(), "smoke": args.smoke, "runs": rows}, markdown(rows, head),
                 record=not args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
