"""Test-time augmentation: what each kind of view adds, on the same trained weights.

``python -m benchmarks.tta --runs RUN_DIR ... --out bench-results`` (``--smoke``: leave BENCHMARKS.md alone), run
with the interpreter of the runs' framework (``.venv`` for PyTorch, ``.venv-tf`` for TensorFlow). Each run is a
finished run of that framework: its network is built again from its config with other views, and gets the trained
weights of its body. Its model is then scored three ways on its run's evaluation images: no TTA, the mirror, and the
mirror with the run's shifts (one pixel when it trained without them): the evidence that decides whether a config
keeps a kind of view. Figures go to ``--out`` as ``tta-<framework>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from cifar10_pipeline.model import frameworks
from cifar10_pipeline.model.spec import ModelSpec
from cifar10_pipeline.training.datasets import TrainingData, prepare_for_training
from cifar10_pipeline.training.run import Run
from harness.report import machine, write_report

# (name, mirror, shift in pixels or None for the run's own shift)
VIEWS = (("none", False, 0), ("mirror", True, 0), ("mirror_shifts", True, None))

# a scorer: (run directory, the specs to score) -> each spec's logits float32 [N, classes] on the evaluation images
Scorer = Callable[[Path, list[ModelSpec], TrainingData], list[np.ndarray]]


def torch_logits(path: Path, specs: list[ModelSpec], data: TrainingData) -> list[np.ndarray]:
    import torch

    from cifar10_pipeline.model.torch_net import build_model, load_payload
    from cifar10_pipeline.training.torch_trainer import predict_logits

    weights = load_payload(path / frameworks.get("torch").model_file)["model"]
    images = torch.from_numpy(data.eval_images)
    logits = []
    for spec in specs:
        model = build_model(spec)
        model.load_state_dict(weights)
        logits.append(predict_logits(model.eval(), images).numpy())
    return logits


def keras_logits(path: Path, specs: list[ModelSpec], data: TrainingData) -> list[np.ndarray]:
    from cifar10_pipeline.model.keras_net import BODY, build_model, load_model_file

    weights = load_model_file(path / frameworks.get("tensorflow").model_file).get_layer(BODY).get_weights()
    logits = []
    for spec in specs:
        model = build_model(spec)
        model.get_layer(BODY).set_weights(weights)
        logits.append(np.asarray(model.predict(data.eval_images, batch_size=256, verbose=0)))
    return logits


SCORERS: dict[str, Scorer] = {"torch": torch_logits, "tensorflow": keras_logits}


def score_run(path: Path, framework: str) -> dict:
    """The run's accuracy with each kind of view, its own model's (run.json) beside them."""
    run = Run.open(path)
    data = prepare_for_training(run.config)
    own = run.config.model_spec(data.image_shape, data.num_classes, data.mean, data.std)
    shift = own.tta_shift or 1
    specs = [dataclasses.replace(own, tta=mirror, tta_shift=shift if s is None else s) for _, mirror, s in VIEWS]
    logits = SCORERS[framework](path, specs, data)
    accuracy = {name: float((out.argmax(1) == data.eval_labels).mean()) for (name, _, _), out in zip(VIEWS, logits)}
    return {"run": str(path), "seed": run.config.seed, "shift": shift, "shift_axes": own.tta_shift_axes,
            "eval_split": data.eval_split,
            "images": len(data.eval_labels), "accuracy": accuracy,
            "own_model": run.info.get(f"{data.eval_split}_accuracy"),
            "own_views": {"mirror": own.tta, "shift": own.tta_shift, "shift_axes": own.tta_shift_axes}}


def markdown(rows: list[dict], title: str, head: str) -> str:
    lines = [f"# Test-time augmentation on the same weights, {title} ({head})", "",
             "Each trained model scored with no TTA, with the mirror, and with the mirror and the shifts (the "
             "exported graph's views), on its run's evaluation images.", "",
             "| run | seed | images | none | mirror | mirror + shifts | shifts add (points) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        a = r["accuracy"]
        lines.append(f"| `{Path(r['run']).name}` | {r['seed']} | {r['images']} | {100 * a['none']:.2f}% | "
                     f"{100 * a['mirror']:.2f}% | {100 * a['mirror_shifts']:.2f}% ({r['shift']} px "
                     f"{'along the axes' if r['shift_axes'] else 'diagonally'}) | "
                     f"{100 * (a['mirror_shifts'] - a['mirror']):+.2f} |")
    mean = {k: statistics.mean(r["accuracy"][k] for r in rows) for k, _, _ in VIEWS}
    lines += ["", f"**Mean: none {100 * mean['none']:.2f}%, mirror {100 * mean['mirror']:.2f}%, mirror + shifts "
                  f"{100 * mean['mirror_shifts']:.2f}%** ({100 * (mean['mirror_shifts'] - mean['mirror']):+.2f} "
                  "points for the shifts)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tta", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", type=Path, required=True, metavar="RUN_DIR",
                   help="finished runs of one framework, the one installed here")
    p.add_argument("--out", type=Path, default=Path("bench-results"), help="output directory (default: bench-results)")
    p.add_argument("--smoke", action="store_true", help="write the figures but leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    found = {}
    for run in args.runs:
        try:
            found[run] = Run(run).info["framework"]
        except (OSError, ValueError, KeyError):
            p.error(f"{run}: not a run directory (no readable run.json naming its framework)")
    kinds = sorted(set(found.values()))
    if len(kinds) > 1:
        p.error(f"the runs are of several frameworks ({', '.join(kinds)}): score each framework's runs apart")
    framework = frameworks.get(kinds[0])
    if not framework.installed():
        p.error(f"the runs are {framework.title} runs, and {framework.package} is not installed here: run this "
                f"with {framework.python()}")
    missing = [str(r) for r in args.runs if not (r / framework.model_file).is_file()]
    if missing:
        p.error(f"not finished runs (no {framework.model_file}): {', '.join(missing)}")
    rows = [score_run(run, framework.name) for run in args.runs]
    head = f"{machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}" + (", smoke" if args.smoke else "")
    write_report(args.out, f"tta-{framework.name}", {"machine": machine(), "smoke": args.smoke,
                                                     "framework": framework.name, "runs": rows},
                 markdown(rows, framework.title, head), record=not args.smoke, module="tta")
    return 0


if __name__ == "__main__":
    sys.exit(main())
