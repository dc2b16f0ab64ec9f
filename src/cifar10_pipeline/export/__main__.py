"""``cifar10-export``: a finished run's model -> ONNX -> parity check -> atomic write.

Picks the exporter from the run's framework, so `make train-torch export` and `make train-tf export`
both end in a file with the same contract. With ``--quantize int8`` an INT8 twin is written beside it
(``model.int8.onnx``) once it passes the accuracy gate. On a parity or gate failure nothing is written and the
exit code is 1. The pipeline itself is ``export.pipeline.export_run``; this module reads the flags and says what
happened.

MLflow (``tracking``): ``--run`` also takes an MLflow run or a registered version, whose logged run directory is
downloaded and exported; the files written are logged into the run's MLflow run (when it was tracked), and
``--register`` makes the float file a new version of a registered model with an alias. A store that fails then
costs a warning, never the files; only a registration that was asked for and failed changes the exit code (1).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from cifar10_pipeline.contract import ContractError
from cifar10_pipeline.export.gates import MAX_ACCURACY_DROP, MIN_PARITY_IMAGES, GateError, Tolerance
from cifar10_pipeline.export.pipeline import Exported, ExportOptions, export_run, run_framework
from cifar10_pipeline.export.quantize import CALIBRATION_IMAGES, QUANTIZE_CHOICES, quantized_path
from cifar10_pipeline.model import ModelFileError
from cifar10_pipeline.model.frameworks import FrameworkError
from cifar10_pipeline.tracking.settings import DEFAULT_ALIAS, TrackingError, enabled_by_env, is_reference, tracking_uri
from cifar10_pipeline.training.config import ConfigError, parse_bool
from cifar10_pipeline.training.datasets import DataError
from cifar10_pipeline.training.run import Run, RunError


def log(line: str) -> None:
    """Progress and errors go to stderr, looked up at each call (tests capture it); results go to stdout."""
    print(line, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cifar10-export", description=__doc__.split("\n\n")[0].strip("`"))
    p.add_argument("--run", metavar="RUN",
                   help="run directory to export (default: the last run, runs/LAST.json), or an MLflow run (RUN_ID, "
                        "runs:/RUN_ID) or registered version (models:/NAME@ALIAS, models:/NAME/VERSION), whose "
                        "logged run directory is downloaded to RUNS_DIR/mlflow-RUN_ID")
    p.add_argument("--runs-dir", default="runs",
                   help="where the last run is looked up, and the embedded MLflow store (default: runs)")
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
    t = p.add_argument_group("MLflow (the store at $MLFLOW_TRACKING_URI, else RUNS_DIR/mlflow.db)")
    t.add_argument("--tracking", type=parse_bool, default=None, metavar="BOOL",
                   help="log the files written into the run's MLflow run, when it has one (default: on, or "
                        "$CIFAR10_TRACKING)")
    t.add_argument("--register", nargs="?", const="", metavar="NAME",
                   help="register the float file as a new version of registered model NAME (default name: "
                        "<dataset>-classifier)")
    t.add_argument("--alias", default=DEFAULT_ALIAS,
                   help=f"alias the registered version gets (default: {DEFAULT_ALIAS})")
    return p


def options_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ExportOptions:
    """The pipeline's options from the flags; out-of-range values end the command (exit 2) with the parser's error."""
    if args.parity_images and args.parity_images < MIN_PARITY_IMAGES:
        parser.error(f"--parity-images {args.parity_images}: use at least {MIN_PARITY_IMAGES}, or 0 for all")
    if not 0 <= args.min_agreement <= 1 or args.max_abs_diff < 0:
        parser.error(f"--min-agreement {args.min_agreement} must be in [0, 1], --max-abs-diff {args.max_abs_diff} >= 0")
    if args.calibration_images < 1:
        parser.error(f"--calibration-images {args.calibration_images}: use at least 1")
    return ExportOptions(tolerance=Tolerance(args.max_abs_diff, args.min_agreement), parity_images=args.parity_images,
                         quantize=args.quantize, max_accuracy_drop=args.max_accuracy_drop,
                         calibration_images=args.calibration_images)


def resolve_run(reference: str | None, runs_dir: str) -> Run:
    """The run to export: a run directory (the last run when None), or the logged run directory of an MLflow run or
    registered version, downloaded under ``runs_dir``."""
    if reference is None or not is_reference(reference):
        return Run.open(reference, runs_dir)
    from cifar10_pipeline.tracking.models import fetch_run

    uri = tracking_uri(runs_dir)
    log(f"fetching the run directory of {reference} from MLflow")
    return Run.open(fetch_run(reference, uri, Path(runs_dir)))


def with_run(argv: list[str], run: Path) -> list[str]:
    """``argv`` with its --run value replaced by ``run`` (added when absent)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--run":
            skip = True
        elif not arg.startswith("--run="):
            out.append(arg)
    return [*out, "--run", str(run)]


def track(run: Run, args: argparse.Namespace, exported: Exported) -> int:
    """Log the written files into the run's MLflow run and register them when asked; the exit code: 1 only when a
    registration that was asked for failed (the files are written either way)."""
    ref = run.info.get("mlflow")
    if args.register is not None and (not args.tracking or ref is None):
        why = "tracking is off" if not args.tracking else f"{run.path} was trained untracked (no MLflow run)"
        log(f"error: --register: {why}; nothing registered (the files are written)")
        return 1
    if not args.tracking or ref is None:
        return 0
    from cifar10_pipeline.tracking.models import log_export
    from cifar10_pipeline.tracking.runs import warn
    from cifar10_pipeline.tracking.settings import registered_name

    name = None if args.register is None else args.register or registered_name(run.config.dataset)
    int8 = exported.quantized
    try:
        logged = log_export(ref, model=exported.model.path, report_path=exported.model.report_path,
                            int8_model=int8.path if int8 else None, int8_report_path=int8.report_path if int8 else None,
                            register=name, alias=args.alias or None)
    except Exception as e:  # noqa: BLE001 -- any store failure: the files on disk are the export's result
        warn(ref["tracking_uri"], e, "the files are written; nothing was logged" +
             (" or registered" if name else ""))
        return 1 if name else 0
    print(f"logged to MLflow run {ref['run_id']}: {logged.model_uri}" +
          (f", {logged.int8_model_uri}" if logged.int8_model_uri else ""))
    if logged.registered:
        print(f"registered {name} version {logged.version} as {logged.registered}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    options = options_from_args(parser, args)
    try:
        if args.tracking is None:
            args.tracking = enabled_by_env()
        run = resolve_run(args.run, args.runs_dir)
        framework = run_framework(run)
        if not framework.installed() and Path(framework.python()).is_file():
            # each framework lives in its own environment: export there, with the same flags
            log(f"{run.path} was trained with {framework.title}: exporting with {framework.python()}")
            return subprocess.run([framework.python(), "-m", "cifar10_pipeline.export",
                                   *with_run(sys.argv[1:] if argv is None else argv, run.path)]).returncode
        exported = export_run(run, args.out, options, log=log)
    except GateError as e:
        written = f"{args.out}" + (f" or {quantized_path(args.out, args.quantize)}" if args.quantize else "")
        log(f"error: {e}\nnothing written to {written}")
        log(json.dumps({k: v for k, v in e.report.items() if k != "golden"}, indent=2))
        return 1
    except (RunError, DataError, ConfigError, ContractError, FrameworkError, ModelFileError, TrackingError) as e:
        log(f"error: {e}")
        return 2
    float_file, report = exported.model, exported.model.report
    print(f"wrote {float_file.path} (test accuracy {100 * report['test_accuracy']:.2f}%, max |diff| "
          f"{report['max_abs_diff']:.2e}, top-1 agreement {100 * report['top1_agreement']:.2f}%); "
          f"report {float_file.report_path}")
    if exported.quantized is not None:
        int8_file, quantization = exported.quantized, exported.quantized.report
        print(f"wrote {int8_file.path} (test accuracy {100 * quantization['int8_test_accuracy']:.2f}%, "
              f"{quantization['accuracy_drop_points']:.2f} points lost, top-1 agreement "
              f"{100 * quantization['top1_agreement']:.2f}%, max |diff| {quantization['max_abs_diff']:.3g}); "
              f"report {int8_file.report_path}")
    return track(run, args, exported)


if __name__ == "__main__":
    sys.exit(main())
