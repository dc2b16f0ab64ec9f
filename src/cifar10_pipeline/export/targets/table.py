"""The agreement table: every target run on the whole test set and held to the float file on onnxruntime's CPU
provider (the reference, which the export's parity step already ties to the trained framework), and the gate.

One row per target: file size, top-1 agreement with the reference, test accuracy, max |logit difference|, batch-1
p50 and p99 latency. The gate: a float target agrees with the reference on at least ``MIN_AGREEMENT`` of the
test images; an INT8 one passes the export's accuracy gate (``gates.int8_gate_failures``) with the accuracy drop
its own file was gated with; the Triton repository's configuration matches its ONNX file. A target that cannot run
fails too. Every engine is a ``Runner``; one that runs in another environment times itself (``latencies``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME
from cifar10_pipeline.export.converter import Runner
from cifar10_pipeline.export.gates import accuracy, infer_chunked, int8_gate_failures
from cifar10_pipeline.export.targets.latency import batch1_latencies

MIN_AGREEMENT = 0.999  # top-1 agreement a float target must reach with the reference, a fraction of the test set
LATENCY_RUNS = 200  # timed batch-1 calls per target


class Kind:
    """How a row is gated."""

    REFERENCE = "reference"
    FLOAT = "float"  # must agree with the reference
    INT8 = "int8"  # must pass the INT8 accuracy gate
    CONFIG = "config"  # checked, not run


@dataclass
class Row:
    target: str  # for people: "OpenVINO", ".ort", ...
    kind: str  # one of Kind's
    file: str
    size_bytes: int
    engine: str  # the runner's name, or what checked the file
    top1_agreement: float | None = None  # with the reference, on the whole test set
    test_accuracy: float | None = None
    max_abs_diff: float | None = None  # largest |logit difference| with the reference
    p50_ms: float | None = None  # batch-1 latency
    p99_ms: float | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class EngineTarget:
    """A target that runs: ``open`` gives its runner (a context manager, so workers and browsers are stopped)."""

    target: str
    kind: str
    file: Path
    open: Callable[[], AbstractContextManager[Runner]]  # may make the file first (the .ort conversion)
    check: Callable[[Runner], list[str]] = lambda runner: []  # what else must hold of the runner (its provider)
    max_accuracy_drop: float | None = None  # INT8: the points its own gate allowed


@dataclass(frozen=True)
class EvalSet:
    images: np.ndarray  # uint8 [N, H, W, C]
    labels: np.ndarray  # int [N]


class _Counted:
    """``runner`` moving a progress bar by the images it infers."""

    def __init__(self, runner: Runner, bar: tqdm):
        self.name, self.runner, self.bar = runner.name, runner, bar

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.runner.infer(feeds)
        self.bar.update(len(feeds[INPUT_NAME]))
        return outputs


def latencies(runner: Runner, images: np.ndarray, runs: int) -> np.ndarray:
    """Seconds of ``runs`` batch-1 calls: timed by the runner itself when it runs elsewhere (``latencies``),
    else around its ``infer``."""
    timed = getattr(runner, "latencies", None)
    return timed(images, runs) if timed is not None else batch1_latencies(runner, images, runs)


def engine_row(spec: EngineTarget, data: EvalSet, reference: np.ndarray | None, runs: int = LATENCY_RUNS
               ) -> tuple[Row, np.ndarray | None]:
    """Run ``spec``'s target on the whole test set and time it: its row and its logits [N, classes] (None when it
    could not run). ``reference``: the reference's logits, None for the reference itself."""
    row = Row(spec.target, spec.kind, str(spec.file), 0, "")
    try:
        with spec.open() as runner, tqdm(total=len(data.images), unit="image", desc=spec.target, leave=False,
                                         disable=None) as bar:
            row.size_bytes, row.engine = spec.file.stat().st_size, runner.name
            row.failures += spec.check(runner)
            logits = infer_chunked(_Counted(runner, bar), data.images)[OUTPUT_NAME]
            seconds = latencies(runner, data.images, runs)
    except Exception as e:  # a target that cannot run fails its row, whatever its engine raised
        row.failures.append(f"did not run: {type(e).__name__}: {e}")
        return row, None
    reference = logits if reference is None else reference
    if logits.shape != reference.shape:
        row.failures.append(f"logits of shape {logits.shape}, the reference's are {reference.shape}")
        return row, None
    row.top1_agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
    row.test_accuracy = accuracy(logits, data.labels)
    row.max_abs_diff = float(np.abs(logits.astype(np.float64) - reference).max())
    row.p50_ms, row.p99_ms = (float(1000 * np.percentile(seconds, q)) for q in (50, 99))
    return row, logits


def gate(row: Row, logits: np.ndarray | None, reference_accuracy: float, data: EvalSet,
         max_accuracy_drop: float | None) -> None:
    """Add the row's gate failures to it: agreement for a float target, the accuracy gate for an INT8 one."""
    if logits is None:
        return
    if row.kind == Kind.FLOAT and row.top1_agreement is not None and row.top1_agreement < MIN_AGREEMENT:
        row.failures.append(f"top-1 agreement {100 * row.top1_agreement:.2f}% with the reference < "
                            f"{100 * MIN_AGREEMENT:g}%")
    if row.kind == Kind.INT8:
        assert max_accuracy_drop is not None
        row.failures += int8_gate_failures(reference_accuracy, logits, data.labels, max_accuracy_drop)


def rows_of(engines: list[EngineTarget], checked: list[Row], data: EvalSet, runs: int = LATENCY_RUNS) -> list[Row]:
    """Every row: ``engines`` run (the first is the reference) and gated, then the ``checked`` rows, made by
    their own checks."""
    (reference, *others) = engines
    assert reference.kind == Kind.REFERENCE
    first, reference_logits = engine_row(reference, data, None, runs)
    if reference_logits is None:
        raise RuntimeError(f"the reference did not run: {'; '.join(first.failures)}")
    rows = [first]
    for spec in tqdm(others, unit="target", desc="targets", leave=False, disable=None):
        row, logits = engine_row(spec, data, reference_logits, runs)
        gate(row, logits, first.test_accuracy or 0.0, data, spec.max_accuracy_drop)
        rows.append(row)
    return rows + checked


def report(rows: list[Row], model: Path, dataset: str, data: EvalSet) -> dict[str, Any]:
    """The table as JSON: the model, its test set, the gate and every row."""
    return {
        "model": str(model),
        "dataset": dataset,
        "test_images": len(data.images),
        "min_top1_agreement": MIN_AGREEMENT,
        "cpus": len(os.sched_getaffinity(0)),
        "rows": [{**asdict(row), "passed": row.passed} for row in rows],
        "passed": all(row.passed for row in rows),
    }


def _cell(value: float | None, fmt: str, unit: str = "", scale: float = 1.0) -> str:
    return "-" if value is None else f"{format(scale * value, fmt)}{unit}"


def markdown(table: dict[str, Any]) -> str:
    """The table for people (BENCHMARKS.md takes it as it is)."""
    lines = [
        f"{table['dataset']}, {table['test_images']} test images, against `{Path(table['model']).name}` on "
        f"onnxruntime's CPU provider; a float target must agree on at least {100 * table['min_top1_agreement']:g}%.",
        "",
        "| target | file | size | top-1 agreement | test accuracy | max \\|logit diff\\| | batch-1 p50 | batch-1 p99 "
        "| engine | verdict |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in table["rows"]:
        verdict = "pass" if row["passed"] else "FAIL: " + "; ".join(row["failures"]).replace("|", "\\|")
        cells = [row["target"], f"`{Path(row['file']).name}`", _cell(row["size_bytes"], ".1f", " KiB", 1 / 1024),
                 _cell(row["top1_agreement"], ".2f", "%", 100), _cell(row["test_accuracy"], ".2f", "%", 100),
                 _cell(row["max_abs_diff"], ".2e"), _cell(row["p50_ms"], ".3f", " ms"),
                 _cell(row["p99_ms"], ".3f", " ms"), row["engine"], verdict]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"
