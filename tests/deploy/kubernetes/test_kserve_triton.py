"""The KServe example on the stock runtime (deploy/kubernetes/kserve/inferenceservice-triton.yaml): Triton serving
the model repository `make targets` writes, from the model volume. KServe's own fields are checked against what
KServe accepts for a model predictor; the model's container fields and the predictor's pod fields are validated
as a Pod against the pinned Kubernetes schema."""

from __future__ import annotations

import copy

import pytest

from cifar10_pipeline.export.targets.__main__ import REPOSITORY
from cifar10_pipeline.export.targets.triton import MODEL_NAME
from tests.support.kubernetes import (DEPLOY, GPU_RESOURCE, KSERVE_CONTAINER, KSERVE_HPA_METRICS, KSERVE_RAW_MODES,
                                      KUBERNETES_VERSION, MODEL_CLAIM, load, pod_template, schema_errors)

# the fields of a KServe v1beta1 ModelSpec beside those of a Kubernetes Container
KSERVE_MODEL_FIELDS = frozenset({"modelFormat", "protocolVersion", "runtime", "storageUri", "runtimeVersion",
                                 "storage"})


@pytest.fixture(scope="module")
def triton_service() -> dict:
    (isvc,) = load(DEPLOY / "kserve" / "inferenceservice-triton.yaml")
    return isvc


def as_pod(isvc: dict) -> dict:
    """The predictor's pod as KServe makes it: the model's container fields in the kserve-container."""
    metadata, spec = pod_template({**isvc, "spec": {"predictor": {
        k: v for k, v in isvc["spec"]["predictor"].items() if k != "model"}}})
    model = isvc["spec"]["predictor"]["model"]
    container = {"name": KSERVE_CONTAINER, "image": "triton",
                 **{k: v for k, v in model.items() if k not in KSERVE_MODEL_FIELDS}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": isvc["metadata"]["name"], **metadata},
            "spec": {**spec, "containers": [container]}}


def test_it_serves_the_repository_with_the_stock_onnx_runtime_on_v2(triton_service):
    assert (triton_service["apiVersion"], triton_service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert triton_service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] in KSERVE_RAW_MODES
    model = triton_service["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "onnx"} and model["protocolVersion"] == "v2"
    assert model["runtime"] == "kserve-tritonserver"
    # the claim of ../model-store, and the folder cifar10-targets writes the repository to
    assert model["storageUri"] == f"pvc://{MODEL_CLAIM}/{REPOSITORY}"
    assert f"/v2/models/{MODEL_NAME}/infer" in (DEPLOY / "kserve" / "inferenceservice-triton.yaml").read_text()


def test_each_replica_has_the_gpu_its_config_asks_for(triton_service):
    predictor = triton_service["spec"]["predictor"]
    assert predictor["model"]["resources"]["limits"][GPU_RESOURCE] == 1
    assert {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in predictor["tolerations"]
    assert 2 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    assert predictor["scaleMetric"] in KSERVE_HPA_METRICS


def test_the_predictor_pod_validates(triton_service):
    assert schema_errors(as_pod(triton_service)) == [], KUBERNETES_VERSION


def test_a_field_neither_kserve_nor_kubernetes_knows_fails(triton_service):
    broken = copy.deepcopy(triton_service)
    broken["spec"]["predictor"]["model"]["resource"] = {}  # misspelt resources
    errors = schema_errors(as_pod(broken))
    assert len(errors) == 1 and "resource" in errors[0], errors

