"""Fixtures of the Kubernetes manifest tests: the manifests of deploy/kubernetes/ as the cluster would receive them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.kubernetes import DEPLOY, JOBS, OVERLAYS, load, render


@pytest.fixture(scope="session")
def overlays() -> dict[str, list[dict[str, Any]]]:
    """Each variant's objects, rendered by kustomize: {"cpu": [...], "gpu": [...]}."""
    return {name: render(DEPLOY / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(scope="session")
def model_store() -> list[dict[str, Any]]:
    """The model volume's claim and the loader pod."""
    return render(DEPLOY / "model-store")


@pytest.fixture(scope="session")
def inference_service() -> dict[str, Any]:
    """The KServe example (a plain file, applied with kubectl apply -f)."""
    (isvc,) = load(DEPLOY / "kserve" / "inferenceservice.yaml")
    return isvc


@pytest.fixture(scope="session")
def jobs() -> dict[str, list[dict[str, Any]]]:
    """Each kustomization of deploy/kubernetes/jobs/, rendered: {"store": [...], "tune": [...], ...}."""
    return {name: render(DEPLOY / "jobs" / name) for name in JOBS}
