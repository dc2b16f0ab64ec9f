"""The pods of deploy/kubernetes/ as the service needs them: restricted security, probes on the service's real
health routes, settings the service knows, the model from the claim, a grace period longer than the server's,
a GPU for the GPU variant only, and a Service, autoscaler and disruption budget that find the pods."""

from __future__ import annotations

import copy
import re

import pytest

from cifar10_pipeline.inference.app import create_app
from cifar10_pipeline.inference.config import ServiceConfig, env_variables
from cifar10_pipeline.inference.server import GRACEFUL_S
from tests.support.kubernetes import (
    GPU_RESOURCE,
    MODEL_CLAIM,
    containers,
    env,
    image_user,
    one,
    pod_template,
    probe_problems,
    security_problems,
)
from tests.support.onnx_models import write_model
from tests.support.paths import REPO

UID = image_user(REPO / "Dockerfile")
SERVER_VARIABLES = {"HOST", "PORT", "SERVER_THREADS", "SERVER_WORKERS"}  # read by inference.server
CONFIG_VARIABLES = set(env_variables().values())


def serving_container(obj: dict) -> dict:
    (container,) = pod_template(obj)[1]["containers"]
    return container


def deployments(overlays) -> dict[str, dict]:
    return {name: one(objects, "Deployment") for name, objects in overlays.items()}


# ---------------------------------------------------------------- security


def test_both_images_run_as_the_same_user():
    assert image_user(REPO / "Dockerfile.gpu") == UID != 0


def test_every_pod_is_restricted(overlays, model_store, inference_service):
    objects = [*deployments(overlays).values(), one(model_store, "Pod"), inference_service]
    problems = [f"{obj['kind']}/{obj['metadata']['name']}: {p}"
                for obj in objects for p in security_problems(pod_template(obj)[1], UID)]
    assert problems == []


def _drop_own(key):
    def mutate(spec):
        del spec["containers"][0]["securityContext"][key]
    return mutate


RELAXATIONS = {
    "root filesystem writable": _drop_own("readOnlyRootFilesystem"),
    "privilege escalation allowed": _drop_own("allowPrivilegeEscalation"),
    "capabilities kept": _drop_own("capabilities"),
    "runs as root": lambda spec: spec["securityContext"].update(runAsUser=0),
    "non-root not enforced": lambda spec: [spec["securityContext"].pop("runAsNonRoot"),
                                           spec["containers"][0]["securityContext"].pop("runAsNonRoot")],
    "no seccomp profile": lambda spec: spec["securityContext"].pop("seccompProfile"),
    "API token mounted": lambda spec: spec.pop("automountServiceAccountToken"),
    "no memory limit": lambda spec: spec["containers"][0]["resources"]["limits"].pop("memory"),
    "an init container as root": lambda spec: spec.setdefault("initContainers", []).append(
        {**copy.deepcopy(spec["containers"][0]), "name": "init", "securityContext": {"runAsUser": 0}}),
}


@pytest.mark.parametrize("relaxation", RELAXATIONS)
def test_the_security_check_catches(overlays, relaxation):
    spec = copy.deepcopy(pod_template(one(overlays["cpu"], "Deployment"))[1])
    RELAXATIONS[relaxation](spec)
    assert security_problems(spec, UID), f"{relaxation} went unnoticed"


# ---------------------------------------------------------------- probes and ports


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


# ---------------------------------------------------------------- settings, model volume, termination


def test_environment_variables_are_settings_the_service_reads(overlays, inference_service):
    for obj in [*deployments(overlays).values(), inference_service]:
        variables = env(serving_container(obj))
        unknown = set(variables) - SERVER_VARIABLES - CONFIG_VARIABLES
        assert not unknown, f"{obj['metadata']['name']}: {unknown} are read by nothing"
        both = [name for name, var in variables.items() if "value" in var and "valueFrom" in var]
        assert not both, f"{both} have both value and valueFrom"
        # the literal values are valid settings (a typo in a number fails here, not in the pod)
        ServiceConfig.from_env({name: var["value"] for name, var in variables.items() if "value" in var})


def test_threads_follow_the_cpu_limit_or_cover_the_gpu_batch(overlays):
    cpu = env(serving_container(one(overlays["cpu"], "Deployment")))["SERVER_THREADS"]
    assert cpu["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"
    batch = re.search(r"INFERENCE_BATCH_MAX_SIZE=(\d+)", (REPO / "Dockerfile.gpu").read_text())
    gpu = env(serving_container(one(overlays["gpu"], "Deployment")))["SERVER_THREADS"]
    assert int(gpu["value"]) >= int(batch[1])  # a batch only grows as large as the requests in flight


def test_the_model_comes_read_only_from_the_claim(overlays, inference_service):
    for obj in [*deployments(overlays).values(), inference_service]:
        _, spec = pod_template(obj)
        container = serving_container(obj)
        model = env(container)["INFERENCE_MODEL_PATH"]["value"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = [m for m in container["volumeMounts"] if model.startswith(m["mountPath"].rstrip("/") + "/")]
        assert len(mounts) == 1, f"{model} is on no mounted volume"
        (mount,) = mounts
        # a subPath mount pins one inode: a new file renamed over the model would never be seen
        assert mount.get("readOnly") is True and "subPath" not in mount
        assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == MODEL_CLAIM


def test_tmp_is_the_one_writable_path(overlays, inference_service):
    for obj in [*deployments(overlays).values(), inference_service]:
        _, spec = pod_template(obj)
        volumes = {v["name"]: v for v in spec["volumes"]}
        writable = {m["mountPath"]: volumes[m["name"]] for m in serving_container(obj)["volumeMounts"]
                    if not m.get("readOnly")}
        assert list(writable) == ["/tmp"] and "emptyDir" in writable["/tmp"]


def test_the_loader_writes_to_the_claim(model_store):
    assert one(model_store, "PersistentVolumeClaim")["metadata"]["name"] == MODEL_CLAIM
    spec = one(model_store, "Pod")["spec"]
    (volume,) = spec["volumes"]
    (mount,) = spec["containers"][0]["volumeMounts"]
    assert volume["persistentVolumeClaim"]["claimName"] == MODEL_CLAIM and not mount.get("readOnly")


def test_termination_outlasts_the_servers_grace(overlays, inference_service):
    for obj in [*deployments(overlays).values(), inference_service]:
        _, spec = pod_template(obj)
        pre_stop = serving_container(obj)["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop >= 1  # time for the endpoint's removal to reach kube-proxy and ingresses
        assert spec["terminationGracePeriodSeconds"] >= pre_stop + GRACEFUL_S


# ---------------------------------------------------------------- variants


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
