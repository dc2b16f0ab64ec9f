"""The CPU and GPU variants: a GPU for the GPU variant only, each its own image, and a Service, autoscaler and
disruption budget that find the pods."""

from __future__ import annotations

import pytest

from tests.support.kubernetes import GPU_RESOURCE, containers, one, pod_template
from tests.support.pods import serving_container


def test_the_gpu_variant_asks_for_one_gpu_and_the_cpu_variant_for_none(overlays):
    gpu, cpu = (pod_template(one(overlays[name], "Deployment"))[1] for name in ("gpu", "cpu"))
    (gpu_container,) = gpu["containers"]
    assert int(gpu_container["resources"]["limits"][GPU_RESOURCE]) == 1
    assert {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    for c in containers(cpu):
        assert GPU_RESOURCE not in {**c["resources"].get("requests", {}), **c["resources"].get("limits", {})}
    assert "tolerations" not in cpu and "nodeSelector" not in cpu


def test_each_variant_runs_its_image(overlays):
    images = {name: serving_container(one(objects, "Deployment"))["image"] for name, objects in overlays.items()}
    repositories = {name: image.rsplit(":", 1)[0].rsplit("/", 1)[-1] for name, image in images.items()}
    assert repositories == {"cpu": "cifar10-serve", "gpu": "cifar10-serve-gpu"}


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_service_autoscaler_and_budget_find_the_pods(overlays, variant):
    objects = overlays[variant]
    deployment, service = one(objects, "Deployment"), one(objects, "Service")
    hpa, pdb = one(objects, "HorizontalPodAutoscaler"), one(objects, "PodDisruptionBudget")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port_names = {p["name"] for p in serving_container(deployment)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names

    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment",
                                                                      deployment["metadata"]["name"])
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert deployment["spec"]["replicas"] >= 2
    # a rollout never goes below the replicas there are, and a drain leaves at least one serving
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
