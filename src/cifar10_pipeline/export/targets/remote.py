"""A Runner whose engine runs in another Python environment: ``worker`` started with that environment's
interpreter, spoken to over its stdin and stdout."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from cifar10_pipeline.contract import INPUT_NAME, OUTPUT_NAME
from cifar10_pipeline.export.targets.worker import read_message, write_message


class WorkerError(RuntimeError):
    """The worker refused a request or died; the message carries its reason or its stderr."""


class WorkerRunner:
    """onnxruntime on ``providers`` in the environment of ``python``, on ``model``; a context manager that stops
    the worker. ``name`` is the worker's engine; ``providers`` the session's active ones, as it reports them.
    ``latencies(images, runs)`` times batch-1 calls inside the worker, where no pipe adds to them."""

    def __init__(self, python: Path, model: Path, providers: list[str]):
        self._stderr = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [str(python), "-m", "cifar10_pipeline.export.targets.worker", "--model", str(model),
             "--providers", ",".join(providers)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            hello = self._answer()[0]
        except WorkerError:
            self.close()
            raise
        self.name: str = hello["name"]
        self.providers: list[str] = hello["providers"]

    def _answer(self) -> tuple[dict[str, Any], np.ndarray | None]:
        assert self.process.stdout is not None
        message = read_message(self.process.stdout)
        if message is None:
            raise WorkerError(f"the worker exited ({self.process.wait()}): {self._log()}")
        if "error" in message[0]:
            raise WorkerError(message[0]["error"])
        return message

    def _log(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-4000:]

    def _ask(self, header: dict[str, Any], images: np.ndarray) -> np.ndarray:
        assert self.process.stdin is not None
        try:
            write_message(self.process.stdin, header, images)
        except BrokenPipeError as e:
            raise WorkerError(f"the worker exited ({self.process.wait()}): {self._log()}") from e
        array = self._answer()[1]
        if array is None:
            raise WorkerError(f"the worker answered {header['op']} without an array")
        return array

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {OUTPUT_NAME: self._ask({"op": "infer"}, feeds[INPUT_NAME])}

    def latencies(self, images: np.ndarray, runs: int) -> np.ndarray:
        return self._ask({"op": "latencies", "runs": runs}, images)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()

    def __enter__(self) -> WorkerRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
