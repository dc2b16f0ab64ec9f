"""The KServe example (deploy/kubernetes/kserve/inferenceservice.yaml). KServe's CRD is not part of the
Kubernetes schema, so its own fields are checked here against what KServe accepts for a custom predictor,
and the predictor's pod (a Kubernetes PodSpec inline) is validated as a Pod against the pinned schema. It
runs the CPU Deployment's image, port, probes, resources and security, and names the model as KServe does."""

from __future__ import annotations

import copy
import re

from cifar10_pipeline.inference.config import ServiceConfig
from tests.support.kubernetes import (
    KSERVE_CONTAINER,
    KSERVE_HPA_METRICS,
    KSERVE_RAW_MODES,
    KUBERNETES_VERSION,
    env,
    one,
    pod_template,
    schema_errors,
)

DNS_1035 = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")  # KServe refuses other InferenceService names


def as_pod(isvc: dict) -> dict:
    metadata, spec = pod_template(isvc)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": isvc["metadata"]["name"], "annotations": metadata["annotations"]}, "spec": spec}


def test_it_is_a_raw_deployment_inference_service(inference_service):
    assert inference_service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert inference_service["kind"] == "InferenceService"
    assert DNS_1035.fullmatch(inference_service["metadata"]["name"])
    annotations = inference_service["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] in KSERVE_RAW_MODES
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
    assert set(inference_service["spec"]) == {"predictor"}


def test_the_predictor_scales_as_the_deployment_does(inference_service, overlays):
    predictor = inference_service["spec"]["predictor"]
    hpa = one(overlays["cpu"], "HorizontalPodAutoscaler")["spec"]
    assert 2 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    assert predictor["scaleMetric"] in KSERVE_HPA_METRICS
    assert predictor["scaleTarget"] == hpa["metrics"][0]["resource"]["target"]["averageUtilization"]


def test_the_predictor_pod_validates(inference_service):
    assert schema_errors(as_pod(inference_service)) == [], KUBERNETES_VERSION


def test_a_field_neither_kserve_nor_kubernetes_knows_fails(inference_service):
    broken = copy.deepcopy(inference_service)
    broken["spec"]["predictor"]["minReplica"] = 2  # misspelt minReplicas
    errors = schema_errors(as_pod(broken))
    assert len(errors) == 1 and "minReplica" in errors[0], errors


def test_one_kserve_container_runs_the_cpu_deployments_pod(inference_service, overlays):
    _, spec = pod_template(inference_service)
    (container,) = spec["containers"]
    assert container["name"] == KSERVE_CONTAINER
    _, deployment = pod_template(one(overlays["cpu"], "Deployment"))
    (serve,) = deployment["containers"]
    for key in ("image", "ports", "startupProbe", "livenessProbe", "readinessProbe", "lifecycle", "resources",
                "securityContext"):
        assert container[key] == serve[key], key
    for key in ("securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken"):
        assert spec[key] == deployment[key], key


def test_the_model_is_named_after_the_inference_service(inference_service):
    variables = env(pod_template(inference_service)[1]["containers"][0])
    name = variables["INFERENCE_MODEL_NAME"]["value"]
    assert name == inference_service["metadata"]["name"]  # KServe's URLs: /v2/models/<isvc name>/infer
    assert ServiceConfig(model_name=name).model_name == name
    assert variables["INFERENCE_MODEL_PATH"]["value"].startswith("/mnt/models/")  # KServe's model folder
