"""Every object of deploy/kubernetes/ is valid Kubernetes: kustomize renders each kustomization, and each object
validates against the API schema of the pinned version and of the newest that kubernetes-validate ships, strictly
(a misspelt field is an error here, where kubectl apply would drop it with a warning)."""

from __future__ import annotations

import copy

import pytest

from tests.support.kubernetes import VERSIONS, find, one, schema_errors


def test_each_variant_renders_the_serving_objects(overlays):
    for name, objects in overlays.items():
        kinds = sorted(obj["kind"] for obj in objects)
        assert kinds == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"], name


def test_the_model_store_renders_a_claim_and_the_loader(model_store):
    assert sorted(obj["kind"] for obj in model_store) == ["PersistentVolumeClaim", "Pod"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_object_validates(overlays, model_store, version):
    objects = [obj for rendered in overlays.values() for obj in rendered] + model_store
    assert [error for obj in objects for error in schema_errors(obj, version)] == []


def test_the_autoscaler_is_autoscaling_v2(overlays):
    for objects in overlays.values():
        assert one(objects, "HorizontalPodAutoscaler")["apiVersion"] == "autoscaling/v2"
        assert find(objects, "PodDisruptionBudget")[0]["apiVersion"] == "policy/v1"


def test_the_validation_refuses_a_misspelt_field_and_a_wrong_type(overlays):
    deployment = one(overlays["cpu"], "Deployment")
    misspelt = copy.deepcopy(deployment)
    container = misspelt["spec"]["template"]["spec"]["containers"][0]
    container["livenessprobe"] = container.pop("livenessProbe")
    errors = schema_errors(misspelt)
    assert len(errors) == 1 and "livenessprobe" in errors[0], errors

    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    errors = schema_errors(wrong_type)
    assert len(errors) == 1 and "spec.replicas" in errors[0], errors
