"""Gathers images from concurrent requests into one onnxruntime call, run by batching worker threads. Every image
goes through it, batching on or off, so that a request waits for its calls with a time limit."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from cifar10_pipeline.inference.runtime import LoadedModel

log = logging.getLogger(__name__)


@dataclass
class _Item:
    model: LoadedModel  # the model the image was preprocessed for: a swap mid-queue must not mix shapes
    image: np.ndarray  # uint8 [H, W, C]
    future: Future = field(default_factory=Future)


class Batcher:
    """A queue plus ``workers`` threads; each takes an image, waits at most ``max_wait_s`` for others to
    join it (up to ``max_size``), and runs them as one call.

    Under load the queue fills while the previous batches run, so batches grow without any extra wait;
    when idle, an image waits ``max_wait_s`` at most. Images of different models (a swap happened between
    them) go to separate calls, each on the model the image was decoded for.
    """

    def __init__(self, max_size: int, max_wait_s: float, workers: int, on_batch: Callable[[int], None]):
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch
        # None: one worker stops. queue.Queue, not SimpleQueue: CPython 3.11's SimpleQueue.get(timeout) can stay in
        # its C lock wait long past the timeout under load, and the images a worker has gathered wait with it until
        # their requests time out
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"inference-batcher-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, model: LoadedModel, image: np.ndarray) -> Future:
        """Queue one image; the future resolves to its float32 logits row (or the error of its batch). A future
        cancelled while still queued (its request gave up) is dropped instead of run."""
        item = _Item(model, image)
        self._queue.put(item)
        return item.future

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_size:
                try:
                    item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            groups: dict[int, list[_Item]] = {}
            for item in batch:
                groups.setdefault(id(item.model), []).append(item)
            for group in groups.values():
                self._run(group)

    def _run(self, group: list[_Item]) -> None:
        group = [item for item in group if item.future.set_running_or_notify_cancel()]
        if not group:
            return
        try:
            logits = group[0].model.run(np.stack([item.image for item in group]))
        except Exception as e:  # never let one bad call kill the thread every request depends on
            log.exception("batch of %d failed", len(group))
            for item in group:
                item.future.set_exception(e)
            return
        self._on_batch(len(group))
        for item, row in zip(group, logits):
            item.future.set_result(row)
