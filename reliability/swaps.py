"""Swaps: 50 replacements of the served model file under load, 10 of them broken (``model_files.CORRUPT``:
truncated, half written in place, random bytes, empty, not ONNX, valid ONNX breaking the contract or failing
the golden self-test), through the service's own hot swap (it polls the file: ``INFERENCE_RELOAD_POLL_S``).

One ``cifar10-serve`` process (default settings otherwise) on 127.0.0.1; wrk posts a small PNG
to /predict over 16 connections the whole time. After each replacement the scenario waits for its outcome:
a good file must become the served model (/info's model id is the file's sha256) and answer a /predict upload
and a /v2 infer request exactly as onnxruntime here answers them with that file; a broken file must be
refused (the service's refused-loads counter on /metrics goes up by one) while the previous model keeps
serving and answering as before. Good files are written atomically (a rename), broken ones in place.

The load is counted (``harness.load.Counted``): every request wrk sends is counted, and when the run ends nothing
more is sent and the requests still open are waited for (up to ``REQUEST_TIMEOUT_S``), so none is cut off by the
stop; every answer's body is tallied and checked: it must name one of the good files, never a broken one, and be
that file's own prediction for the upload (top label and probability, as onnxruntime here computes them).

Goals: no failed request of all those sent during the whole run, every answer under load a good file's own
prediction, every broken file refused, every good file served.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar10_pipeline.files import write_bytes
from harness.load import Counted, failures
from reliability.model_files import CORRUPT, HALF_WRITTEN, good_variant
from reliability.serving import (
    REQUEST_TIMEOUT_S,
    answers_correctly,
    cnn_model,
    expected_prediction,
    goal,
    goals_markdown,
    good_png,
    info,
    model_id,
    refused_loads,
    start_server,
    workdir,
    wrong_answers,
)

NAME = "swaps"
SEED = 13
CONCURRENCY = 16
POLL_S = 0.2  # the service's model-file poll here (INFERENCE_RELOAD_POLL_S)
STEP_TIMEOUT_S = 60.0  # one replacement's outcome; none by then is a failure
SETTLE_S = 0.5  # load on each outcome before the next replacement


@dataclass(frozen=True)
class Counts:
    swaps: int
    corrupt: tuple[str, ...]  # the broken kinds, spread evenly among the swaps
    time_limit_s: int  # the whole run, wrk's duration


FULL = Counts(swaps=50, corrupt=tuple(CORRUPT), time_limit_s=1800)
SMOKE = Counts(swaps=5, corrupt=("truncated (first 60% of a good file)", HALF_WRITTEN), time_limit_s=300)


@dataclass(frozen=True)
class Step:
    kind: str  # "good" or a CORRUPT kind
    data: bytes  # the file's bytes once this step is written
    append: bool = False  # write only what follows the file's current bytes (a half-written file's rest)

    @property
    def good(self) -> bool:
        return self.kind == "good" or self.kind.startswith("good,")


def plan(counts: Counts, base: bytes) -> list[Step]:
    """The replacements in order: good variants, with the broken ones at evenly spaced places; a half-written
    file's next step is the rest of it, a good file."""
    rng = random.Random(SEED)
    spacing = counts.swaps // len(counts.corrupt)
    broken = {1 + i * spacing: kind for i, kind in enumerate(counts.corrupt)}
    steps: list[Step] = []
    index = 0
    while len(steps) < counts.swaps:
        kind = broken.get(len(steps))
        index += 1
        good = good_variant(base, index)
        if kind is None:
            steps.append(Step("good", good))
        elif kind == HALF_WRITTEN:
            steps.append(Step(kind, CORRUPT[kind](good, rng)))
            steps.append(Step("good, the rest of the half-written file appended", good, append=True))
        else:
            steps.append(Step(kind, CORRUPT[kind](good, rng)))
    return steps[: counts.swaps]


def write(path: Path, step: Step) -> None:
    if step.append:
        written = path.stat().st_size
        with path.open("ab") as f:
            f.write(step.data[written:])
    elif step.good:
        write_bytes(path, step.data)
    else:
        with path.open("wb") as f:
            f.write(step.data)


def wait_for(condition, timeout: float) -> bool:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def replace(port: int, path: Path, step: Step, served: bytes) -> tuple[dict[str, Any], bytes]:
    """Write ``step`` over the model file and check its outcome; (the row, the model served afterwards)."""
    refused_before = refused_loads(port)
    started = time.perf_counter()
    write(path, step)
    if step.good:
        arrived = wait_for(lambda: info(port)["model_id"] == model_id(step.data), STEP_TIMEOUT_S)
        seconds = time.perf_counter() - started
        correct, detail = answers_correctly(port, step.data) if arrived else (False, "not served in time")
        ok, now_served = arrived and correct, step.data if arrived else served
        outcome = "served" if arrived else "not served"
    else:
        refused = wait_for(lambda: refused_loads(port) > refused_before, STEP_TIMEOUT_S)
        seconds = time.perf_counter() - started
        state = info(port)
        kept = state["model_id"] == model_id(served)
        correct, detail = answers_correctly(port, served)
        ok, now_served = refused and kept and correct, served
        outcome = ("refused" if refused else "not refused in time") + (", previous kept" if kept else ", replaced")
        lines = (state["last_refused"] or "").splitlines()
        reason = lines[min(1, len(lines) - 1)].strip().removeprefix("- ") if lines else ""  # its first problem
        detail = f"{reason[:150]}; {detail}" if refused else detail
    return {"kind": step.kind, "good": step.good, "outcome": outcome, "ok": ok, "seconds": seconds,
            "detail": detail}, now_served


def run(smoke: bool) -> dict[str, Any]:
    counts = SMOKE if smoke else FULL
    base = cnn_model()
    steps = plan(counts, base)
    folder = workdir() / "swaps"
    folder.mkdir(exist_ok=True)
    model_path, body = folder / "model.onnx", folder / "upload.png"
    write_bytes(model_path, base)
    body.write_bytes(good_png())
    server = start_server("swaps", model_path, INFERENCE_RELOAD_POLL_S=str(POLL_S))
    rows: list[dict[str, Any]] = []
    try:
        pids_before = sorted(server.pids())
        load = Counted(server.port, body, CONCURRENCY, max_s=counts.time_limit_s, timeout_s=REQUEST_TIMEOUT_S)
        started, served = time.perf_counter(), base
        try:
            for number, step in enumerate(steps, 1):
                if time.perf_counter() - started > counts.time_limit_s - STEP_TIMEOUT_S:
                    break
                row, served = replace(server.port, model_path, step, served)
                rows.append({"n": number, **row})
                print(f"swaps: {number}/{len(steps)} {step.kind}: {row['outcome']}", flush=True)
                time.sleep(SETTLE_S)
        finally:
            result = load.stop()
        seconds = time.perf_counter() - started
        pids_after = sorted(server.pids())
    finally:
        server.stop()

    good = [row for row in rows if row["good"]]
    broken = [row for row in rows if not row["good"]]
    planned_broken = sum(not step.good for step in steps)
    upload = body.read_bytes()
    # the answers may come from the first model or any good file (each answer names its model), never a broken one
    models = {model_id(data): data for data in [base, *(step.data for step in steps if step.good)]}
    wrong, why, right = wrong_answers(result["bodies"], {key: expected_prediction(data, upload)
                                                  for key, data in models.items()})
    return {
        "concurrency": CONCURRENCY,
        "poll_s": POLL_S,
        "seconds": seconds,
        "load": result,
        "wrong_answers": wrong,
        "wrong_answer_reasons": why,
        "right_answers_by_model": right,
        "replacements": rows,
        "server_pids": {"before": pids_before, "after": pids_after},
        "goals": [
            goal(f"{len(steps)} replacements under load, {planned_broken} of them broken", len(rows) == len(steps),
                 f"{len(rows)} done in {seconds:.0f} s"),
            goal("0 failed of every request sent", result["failed"] == 0 and result["sent"] > 0,
                 f"{failures(result)} (wrk, {CONCURRENCY} connections)"),
            goal("every answer under load a good file's own prediction (model id, label, probability)",
                 wrong == 0 and result["requests"] > 0,
                 f"{wrong} wrong of {result['requests']:,} answers; right ones from "
                 f"{sum(n > 0 for n in right.values())} of the {len(right)} good models"
                 + "".join(f"; {w}" for w in why[:3])),
            goal("every broken file refused, the previous model kept serving",
                 len(broken) == planned_broken and all(row["ok"] for row in broken),
                 f"{sum(row['ok'] for row in broken)} of {planned_broken}"),
            goal("every good file served (its id on /info, its answers)",
                 len(good) == len(steps) - planned_broken and all(row["ok"] for row in good),
                 f"{sum(row['ok'] for row in good)} of {len(steps) - planned_broken}"),
            goal("no worker restart", pids_before == pids_after, f"server processes {pids_before} -> {pids_after}"),
        ],
    }


def markdown(figures: dict[str, Any]) -> str:
    load = figures["load"]
    rows = figures["replacements"]
    good = [row["seconds"] for row in rows if row["good"]]
    lines = [
        f"# Swaps: {len(rows)} model replacements under load",
        "",
        f"One `cifar10-serve` process, the model file polled every {figures['poll_s']:g} s "
        f"(`INFERENCE_RELOAD_POLL_S`), wrk posting a small PNG to /predict over {figures['concurrency']} connections "
        f"throughout: {load['sent']:,} requests sent, {load['failed']} failed, {load['unanswered']} unanswered "
        f"(every request counted: at the end nothing more was sent and the {load['open_at_stop']} still open were "
        f"waited for, up to {load['timeout_s']:g} s), p99 {load['p99_ms']:.1f} ms; "
        f"{figures['wrong_answers']} answers not the prediction of a good file's model they name "
        f"(right answers from {sum(n > 0 for n in figures['right_answers_by_model'].values())} models). "
        f"Good files served {min(good, default=0):.1f}-{max(good, default=0):.1f} s after they were written "
        f"(median {sorted(good)[len(good) // 2] if good else 0:.1f} s).",
        "",
        "Broken files, each refused or not:",
        "",
        "| # | file | outcome | s | the service's reason |",
        "| ---: | --- | --- | ---: | --- |",
    ]
    for row in rows:
        if not row["good"]:
            lines.append(f"| {row['n']} | {row['kind']} | {row['outcome']} | {row['seconds']:.1f} "
                         f"| {row['detail'].split('; ')[0].replace('|', '/')} |")
    failed_good = [row for row in rows if row["good"] and not row["ok"]]
    lines += ["", f"Good files: {len(good)}, served and answering as onnxruntime does: "
              f"{len(good) - len(failed_good)}" + "".join(f"; #{r['n']}: {r['detail']}" for r in failed_good) + ".",
              "", *goals_markdown(figures["goals"])]
    return "\n".join(lines) + "\n"
