"""The serving pods' settings are ones the service reads, their threads fit the CPU limit or the GPU batch, the
model comes read-only from the claim the loader writes, /tmp is the one writable path, and termination outlasts
the server's grace period."""

from __future__ import annotations

import re

from cifar10_pipeline.inference.config import ServiceConfig, env_variables
from cifar10_pipeline.inference.server import GRACEFUL_S
from tests.support.kubernetes import MODEL_CLAIM, env, one, pod_template
from tests.support.paths import REPO
from tests.support.pods import deployments, serving_container

SERVER_VARIABLES = {"HOST", "PORT", "SERVER_THREADS", "SERVER_WORKERS"}  # read by inference.server
CONFIG_VARIABLES = set(env_variables().values())


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
