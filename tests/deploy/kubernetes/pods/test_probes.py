"""The serving pods' probes ask the service's real health routes, which answer as the probes expect; the port
variable, the container port and the scrape port agree."""

from __future__ import annotations

import copy

import pytest

from cifar10_pipeline.inference.app import create_app
from cifar10_pipeline.inference.config import ServiceConfig
from tests.support.kubernetes import env, one, pod_template, probe_problems
from tests.support.onnx_models import write_model
from tests.support.pods import deployments, serving_container


def test_probes_ask_the_health_routes(overlays, inference_service):
    objects = [*deployments(overlays).values(), inference_service]
    assert [p for obj in objects for p in probe_problems(serving_container(obj))] == []


@pytest.mark.parametrize("probe", ["startupProbe", "livenessProbe", "readinessProbe"])
def test_the_probe_check_catches_a_missing_probe(overlays, probe):
    container = copy.deepcopy(serving_container(one(overlays["cpu"], "Deployment")))
    del container[probe]
    assert probe_problems(container) == [f"serve: no {probe} with httpGet"]


def test_the_probe_check_catches_readiness_on_the_liveness_route(overlays):
    container = copy.deepcopy(serving_container(one(overlays["cpu"], "Deployment")))
    container["readinessProbe"]["httpGet"]["path"] = "/healthz"
    assert probe_problems(container) == ["serve: readinessProbe asks /healthz, not /readyz"]


def test_the_probed_routes_answer_as_the_probes_expect(overlays, tmp_path):
    """Without a model the pod is alive but not ready; once a model passed its self-test it is ready."""
    container = serving_container(one(overlays["cpu"], "Deployment"))
    live, ready = (container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe"))
    for model, ready_status in ((tmp_path / "missing.onnx", 503), (write_model(tmp_path / "model.onnx"), 200)):
        app = create_app(ServiceConfig(model_path=model, reload_poll_s=0.0))
        try:
            client = app.test_client()
            assert client.get(container["startupProbe"]["httpGet"]["path"]).status_code == 200
            assert client.get(live).status_code == 200
            assert client.get(ready).status_code == ready_status, model.name
            assert client.get(
                pod_template(one(overlays["cpu"], "Deployment"))[0]["annotations"]["prometheus.io/path"]
            ).status_code == 200
        finally:
            app.extensions["inference"].close()


def test_port_variable_container_port_and_scrape_port_agree(overlays, inference_service):
    for obj in [*deployments(overlays).values(), inference_service]:
        metadata, _ = pod_template(obj)
        container = serving_container(obj)
        (port,) = container["ports"]
        assert env(container)["PORT"]["value"] == str(port["containerPort"]) == metadata["annotations"][
            "prometheus.io/port"]
        assert metadata["annotations"]["prometheus.io/scrape"] == "true"
