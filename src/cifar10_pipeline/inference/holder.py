"""The model being served: first load, hot swap when the file changes, and inference (batched or not); and the one
way a request reaches it, ``current_holder()``."""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np
from flask import Flask, current_app

from cifar10_pipeline.contract import ContractError
from cifar10_pipeline.inference.batcher import Batcher
from cifar10_pipeline.inference.config import ServiceConfig
from cifar10_pipeline.inference.errors import ApiError
from cifar10_pipeline.inference.metrics import Metrics
from cifar10_pipeline.inference.providers import resolve_providers
from cifar10_pipeline.inference.runtime import LoadedModel, load_session

log = logging.getLogger(__name__)
EXTENSION = "inference"  # the holder's key in app.extensions


def file_signature(path: os.PathLike) -> tuple[int, int, int] | None:
    """(mtime ns, size, inode), or None when the file is missing: any change means "look again"."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ModelHolder:
    """Holds the current model with the service's config and metrics; ``model`` is swapped by one assignment, so
    readers never see half a swap.

    A request reads ``model`` once and keeps that object to the end, so a swap never changes the input
    size under it and the old session lives until its last request is answered.
    """

    def __init__(self, config: ServiceConfig, metrics: Metrics):
        self.config = config
        self.metrics = metrics
        self.providers = resolve_providers(config.providers)
        self.model: LoadedModel | None = None
        self.load_error: str | None = None  # why the last load failed, for /readyz
        self._batcher = Batcher(config.batch_max_size, config.batch_max_wait_ms / 1000, config.batch_workers,
                                metrics.observe_batch)
        self._stop = threading.Event()
        self._loaded_signature = file_signature(config.model_path)
        self._pending: tuple[int, int, int] | None = None  # a changed signature seen once, loaded if seen again
        log.info("requesting providers %s for %s", self.providers, config.model_path)
        self.reload()
        self._watcher = None
        if config.reload_poll_s > 0:
            self._watcher = threading.Thread(target=self._watch, name="inference-model-watcher", daemon=True)
            self._watcher.start()

    def reload(self) -> bool:
        """Load, check and self-test the file; swap it in if it passes. A failure keeps the old model."""
        path = self.config.model_path
        try:
            new = load_session(path, self.providers, self.config.intra_op_threads)
        except ContractError as e:
            self.load_error = str(e)
            self.metrics.observe_load(ok=False)
            kept = f"keeping model {self.model.model_id[:12]}" if self.model else "no model to serve"
            log.error("refused %s (%s): %s", path, kept, e)
            return False
        old, self.load_error = self.model, None
        if old is not None and old.model_id == new.model_id:
            return True  # same bytes (touched or copied over itself): nothing to swap
        self.model = new
        self.metrics.observe_load(ok=True, old=old, new=new)
        for provider, why in new.providers_not_started.items():
            log.warning("%s was asked for but did not start, serving on %s: %s", provider, list(new.providers), why)
        log.info(
            "serving %s: id %s, %s %s, %d labels, input %s, active providers %s, self-test %s%s",
            path,
            new.model_id[:12],
            new.info.metadata.get("framework"),
            new.info.metadata.get("framework_version"),
            new.info.num_classes,
            "x".join(map(str, new.info.input_shape)),
            list(new.providers),
            new.self_test,
            f" (replaces {old.model_id[:12]})" if old else "",
        )
        return True

    def infer(self, model: LoadedModel, images: list[np.ndarray]) -> np.ndarray:
        """Logits ``[len(images), num_classes]`` from ``model``, through the batcher; an ApiError 503 when they
        take longer than ``infer_timeout_s`` (the images still queued are dropped)."""
        futures = [self._batcher.submit(model, image) for image in images]
        deadline = time.monotonic() + self.config.infer_timeout_s
        try:
            return np.stack([f.result(timeout=max(deadline - time.monotonic(), 0.0)) for f in futures])
        except TimeoutError:
            for f in futures:
                f.cancel()
            self.metrics.observe_timeout()
            raise ApiError(503, f"inference did not finish within {self.config.infer_timeout_s:g} s "
                                "(INFERENCE_INFER_TIMEOUT_S): the model is stuck or the server overloaded; "
                                "retry later") from None

    def close(self) -> None:
        """Stop the watcher and the batching thread (tests create many apps in one process)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        self._batcher.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.config.reload_poll_s):
            self.check_file()

    def check_file(self) -> None:
        """One look at the model file (the watcher's, every ``reload_poll_s``): a changed file is loaded once it has
        held still since the previous look, so a file still being copied in is not refused half-written; each
        version (signature) of the file is tried once, good or broken."""
        signature = file_signature(self.config.model_path)
        if signature == self._loaded_signature:
            self._pending = None
        elif signature != self._pending:
            self._pending = signature
        else:
            self._loaded_signature, self._pending = signature, None
            try:
                self.reload()
            except Exception:  # the watcher must outlive anything a file can do to it
                log.exception("reloading %s failed", self.config.model_path)


def init_app(app: Flask, holder: ModelHolder) -> None:
    """Make ``holder`` the one that ``current_holder()`` returns while ``app`` handles a request."""
    app.extensions[EXTENSION] = holder


def current_holder() -> ModelHolder:
    """The holder of the app handling this request: how every blueprint reaches the model, config and metrics."""
    return current_app.extensions[EXTENSION]


def current_model() -> LoadedModel:
    """The model that answers this request, read once: a swap during the request does not change it; 503 while no
    model is loaded."""
    holder = current_holder()
    model = holder.model
    if model is None:
        raise ApiError(503, f"no model is loaded: {holder.load_error}")
    return model
