"""``cifar10-export``: a finished run's model -> ONNX -> parity check -> atomic write.

Picks the exporter from the run's framework, so `make train-torch export` and `make train-tf export`
both end in a file with the same contract. With ``--quantize int8`` an INT8 twin is written beside it
(``model.int8.onnx``) once it passes the accuracy gate. On a parity or gate failure nothing is written and the
exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from cifar10_pipeline.contract import ContractError
from cifar10_pipeline.model import frameworks
from cifar10_pipeline.model.frameworks import FrameworkError
from cifar10_pipeline.export.parity import ParityError, Tolerance
from cifar10_pipeline.export.quantize import (CALIBRATION_IMAGES, MAX_ACCURACY_DROP, QUANTIZE_CHOICES, QuantizationError,
                             quantized_path)
from cifar10_pipeline.training.config import ConfigError
from cifar10_pipeline.training.datasets import DataError, load_dataset
from cifar10_pipeline.training.run import Run, RunError

MIN_PARITY_IMAGES = 1000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cifar10-export", description=__doc__.split("\n\n")[0].strip("`"))
    p.add_argument("--run", metavar="RUN_DIR", help="run directory to export (default: the last run, runs/LAST.json)")
    p.add_argument("--runs-dir", default="runs", help="where the last run is looked up (default: runs)")
    p.add_argument("--out", default="models/model.onnx", type=Path, help="ONNX file to write (default: models/model.onnx)")
    p.add_argument("--max-abs-diff", type=float, default=Tolerance.max_abs_diff,
                   help=f"largest allowed |logit difference| (default: {Tolerance.max_abs_diff:g})")
    p.add_argument("--min-agreement", type=float, default=Tolerance.min_top1_agreement,
                   help=f"smallest allowed top-1 agreement, a fraction (default: {Tolerance.min_top1_agreement:g})")
    p.add_argument("--parity-images", type=int, default=0, metavar="N",
                   help=f"real test images for parity, at least {MIN_PARITY_IMAGES} (default 0: all of them)")
    q = p.add_argument_group("quantization")
    q.add_argument("--quantize", choices=QUANTIZE_CHOICES,
                   help="also write a statically quantized twin beside --out (model.onnx -> model.int8.onnx), "
                        "gated on the whole test set")
    q.add_argument("--max-accuracy-drop", type=float, default=MAX_ACCURACY_DROP, metavar="POINTS",
                   help=f"largest allowed test-accuracy loss of the quantized file, in percentage points "
                        f"(default: {MAX_ACCURACY_DROP:g}; negative demands a gain)")
    q.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES, metavar="N",
                   help=f"training images that calibrate the activation ranges (default: {CALIBRATION_IMAGES})")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.parity_images and args.parity_images < MIN_PARITY_IMAGES:
        parser.error(f"--parity-images {args.parity_images}: use at least {MIN_PARITY_IMAGES}, or 0 for all")
    if not 0 <= args.min_agreement <= 1 or args.max_abs_diff < 0:
        parser.error(f"--min-agreement {args.min_agreement} must be in [0, 1], --max-abs-diff {args.max_abs_diff} >= 0")
    if args.calibration_images < 1:
        parser.error(f"--calibration-images {args.calibration_images}: use at least 1")
    try:
        run = Run.open(args.run, args.runs_dir)
        info, config = run.info, run.config
        framework = info.get("framework")
        if framework not in frameworks.FRAMEWORKS:
            raise RunError(f"{run.path}: unknown framework {framework!r}; expected one of {list(frameworks.NAMES)}")
        other = frameworks.get(framework)
        if not other.installed() and Path(other.python()).is_file():
            # each framework lives in its own environment: export there, with the same flags
            print(f"{run.path} was trained with {other.title}: exporting with {other.python()}", file=sys.stderr)
            return subprocess.run([other.python(), "-m", "cifar10_pipeline.export",
                                   *(sys.argv[1:] if argv is None else argv)]).returncode
        # the framework is imported after the cheap checks above
        from cifar10_pipeline.export.pipeline import prove_and_stamp, quantize_and_stamp
        from cifar10_pipeline.export.writer import write_model

        print(f"exporting {run.path} ({framework}, {config.dataset})", file=sys.stderr)
        framework_runner, model, version = frameworks.get(framework).load("converter").convert(run)
        ds = load_dataset(config.dataset, config.data_dir, seed=config.seed, image_size=config.image_size)
        n = args.parity_images or len(ds.test_images)
        if len(ds.test_images) < MIN_PARITY_IMAGES:
            print(f"warning: the test set has only {len(ds.test_images)} images", file=sys.stderr)
        report = prove_and_stamp(
            framework_runner, model, framework=framework, framework_version=version, dataset=config.dataset,
            labels=info["classes"], train_config=config.to_dict(), images=ds.test_images[:n],
            image_labels=ds.test_labels[:n], tolerance=Tolerance(args.max_abs_diff, args.min_agreement),
            log=lambda line: print(line, file=sys.stderr))
        quantized = None
        if args.quantize:
            rng = np.random.default_rng(config.seed)
            count = min(args.calibration_images, len(ds.train_images))
            calibration = ds.train_images[np.sort(rng.choice(len(ds.train_images), count, replace=False))]
            quantized, quantization = quantize_and_stamp(
                model, calibration_images=calibration, images=ds.test_images, image_labels=ds.test_labels,
                max_accuracy_drop=args.max_accuracy_drop, log=lambda line: print(line, file=sys.stderr))
        report_path = write_model(model, args.out, report)
    except (ParityError, QuantizationError) as e:
        written = f"{args.out}" + (f" or {quantized_path(args.out)}" if args.quantize else "")
        print(f"error: {e}\nnothing written to {written}", file=sys.stderr)
        print(json.dumps({k: v for k, v in e.report.items() if k != "golden"}, indent=2), file=sys.stderr)
        return 1
    except (RunError, DataError, ConfigError, ContractError, FrameworkError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} (test accuracy {100 * report['test_accuracy']:.2f}%, max |diff| "
          f"{report['max_abs_diff']:.2e}, top-1 agreement {100 * report['top1_agreement']:.2f}%); report {report_path}")
    if quantized is not None:
        path = quantized_path(args.out, args.quantize)
        report_path = write_model(quantized, path, quantization, kind="quantization")
        print(f"wrote {path} (test accuracy {100 * quantization['int8_test_accuracy']:.2f}%, "
              f"{quantization['accuracy_drop_points']:.2f} points lost, top-1 agreement "
              f"{100 * quantization['top1_agreement']:.2f}%, max |diff| {quantization['max_abs_diff']:.3g}); "
              f"report {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
