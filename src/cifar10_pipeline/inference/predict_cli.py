"""The ``cifar10-predict`` command: offline classification, no server (``cifar10-predict --model models/model.onnx
FILES_OR_DIRS...``).

The same model loading (contract check and golden self-test), decoding and ranking as the service, in batches;
one JSON line (or CSV row) per image on stdout or ``--out``. A file that cannot be decoded is reported on
stderr and skipped, and the exit status is then 1; a model that cannot be loaded, or no image given, is 2.
Imports only what the service imports.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from tqdm import tqdm

from cifar10_pipeline.contract import ContractError
from cifar10_pipeline.contract.images import SUFFIXES
from cifar10_pipeline.inference.config import ServiceConfig
from cifar10_pipeline.inference.errors import ApiError
from cifar10_pipeline.inference.images import decode_image, limit_pixels
from cifar10_pipeline.inference.postprocess import rank
from cifar10_pipeline.inference.providers import resolve_providers
from cifar10_pipeline.inference.runtime import LoadedModel, load_session

CSV_FIELDS = ("file", "label", "probability", "top_k")


def image_files(paths: list[Path]) -> Iterator[Path]:
    """Each path that is a file (tried whatever its suffix), and every file with one of the decoder's ``SUFFIXES``
    below each path that is a folder (recursively), in sorted order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            yield path


def progress_bar(total: int, stream: IO[str] = sys.stderr) -> tqdm:
    """A one-line bar of ``total`` images on ``stream``, redrawn at most ten times a second; silent when the stream
    is no terminal (a pipe or a file gets only the predictions and the summary)."""
    return tqdm(total=total, file=stream, disable=None, mininterval=0.1, unit="image", ascii=".#",
                bar_format="[{bar:30}] {n_fmt}/{total_fmt} images, {rate_noinv_fmt}")


class Writer:
    """JSON lines or CSV rows of predictions."""

    def __init__(self, out: IO[str], fmt: str):
        self.out, self.fmt = out, fmt
        self.csv = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n") if fmt == "csv" else None
        if self.csv:
            self.csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self.csv:
            top_k = " ".join(f"{t['label']}:{t['probability']:.6f}" for t in row["top_k"])
            self.csv.writerow({**row, "probability": f"{row['probability']:.6f}", "top_k": top_k})
        else:
            self.out.write(json.dumps(row) + "\n")


def classify(model: LoadedModel, files: list[Path], writer: Writer, *, top_k: int, batch_size: int,
             max_pixels: int, progress: tqdm) -> list[str]:
    """Decode, run and write ``files`` in batches of ``batch_size``; returns a message per file that failed."""
    failures = []
    for start in range(0, len(files), batch_size):
        names, images = [], []
        for path in files[start:start + batch_size]:
            try:
                images.append(decode_image(path.read_bytes(), str(path), model.info.input_shape, max_pixels))
                names.append(str(path))
            except ApiError as e:
                failures.append(e.message)
            except OSError as e:
                failures.append(f"{str(path)!r} cannot be read: {e.strerror or e}")
        if images:
            for name, ranked in zip(names, rank(model.run(np.stack(images)), model.info.labels, top_k)):
                writer.write({"file": name, **ranked})
        progress.update(len(files[start:start + batch_size]))
    return failures


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cifar10-predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE_OR_DIR",
                        help=f"images, or folders searched recursively for {', '.join(SUFFIXES)}")
    parser.add_argument("--model", type=Path, default=ServiceConfig.model_path, help="ONNX model file "
                        f"(default: {ServiceConfig.model_path})")
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="output format (default: jsonl)")
    parser.add_argument("--out", type=Path, help="write the predictions to this file (default: stdout)")
    parser.add_argument("--top-k", type=int, default=3, help="best labels listed per image (default: 3)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per onnxruntime call (default: 64)")
    parser.add_argument("--max-pixels", type=int, default=ServiceConfig.max_pixels,
                        help=f"largest image (width * height) decoded (default: {ServiceConfig.max_pixels})")
    parser.add_argument("--providers", default="", help="onnxruntime execution providers, comma-separated, "
                        "by name or short name (cpu, cuda, openvino) "
                        "(default: CUDA when available, then CPU)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        parser.error(f"--top-k ({args.top_k}) and --batch-size ({args.batch_size}) must be >= 1")
    if args.max_pixels < 1:
        parser.error(f"--max-pixels must be >= 1, got {args.max_pixels}")
    limit_pixels(args.max_pixels)
    try:
        providers = resolve_providers(tuple(p.strip() for p in args.providers.split(",") if p.strip()))
        model = load_session(args.model, providers, intra_op_threads=0)  # 0: onnxruntime's default, every core
    except (ContractError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    files = list(image_files(args.paths))
    if not files:
        print(f"error: no image found in {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    top_k = min(args.top_k, model.info.num_classes)
    out = args.out.open("w", newline="") if args.out else sys.stdout
    try:
        with progress_bar(len(files)) as progress:
            failures = classify(model, files, Writer(out, args.format), top_k=top_k, batch_size=args.batch_size,
                                max_pixels=args.max_pixels, progress=progress)
    finally:
        out.flush()
        if args.out:
            out.close()
    for message in failures:
        print(f"error: {message}", file=sys.stderr)
    print(f"{len(files) - len(failures)} of {len(files)} images classified with {args.model} "
          f"({model.info.metadata.get('framework')}, id {model.model_id[:12]})", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
