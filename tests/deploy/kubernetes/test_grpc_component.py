"""The gRPC component (deploy/kubernetes/components/grpc): off by default, and taken by an overlay it turns the service's
gRPC port on with a port name, Service port and setting that agree with what the service reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cifar10_pipeline.inference.config import ServiceConfig, env_variables
from tests.support.kubernetes import DEPLOY, OVERLAYS, env, one, pod_template, render, schema_errors


def relative(path: Path, start: Path) -> str:
    return os.path.relpath(path, start)  # kustomize refuses absolute paths


def serving_container(deployment: dict) -> dict:
    (container,) = pod_template(deployment)[1]["containers"]
    return container


def test_the_overlays_leave_grpc_off(overlays):
    for objects in overlays.values():
        container = serving_container(one(objects, "Deployment"))
        assert "GRPC_PORT" not in env(container) and [p["name"] for p in container["ports"]] == ["http"]
        assert [p["name"] for p in one(objects, "Service")["spec"]["ports"]] == ["http"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_component_turns_grpc_on(tmp_path, overlay):
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {relative(DEPLOY / 'overlays' / overlay, tmp_path)}\n"
        f"components:\n  - {relative(DEPLOY / 'components' / 'grpc', tmp_path)}\n")
    objects = render(tmp_path)
    deployment, service = one(objects, "Deployment"), one(objects, "Service")
    container = serving_container(deployment)
    variables = env(container)
    assert env_variables()["grpc_port"] == "GRPC_PORT" in variables  # a setting the service reads
    port = ServiceConfig.from_env({"GRPC_PORT": variables["GRPC_PORT"]["value"]}).grpc_port
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8000, "grpc": port}
    grpc = [p for p in service["spec"]["ports"] if p["name"] == "grpc"]
    assert grpc == [{"name": "grpc", "port": port, "targetPort": "grpc", "protocol": "TCP",
                     "appProtocol": "kubernetes.io/h2c"}]
    assert schema_errors(deployment) == [] and schema_errors(service) == []
