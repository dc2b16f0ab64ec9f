#!/usr/bin/env bash
# Debian packages the test suite needs. Idempotent: installs only what is missing; as a non-root user it
# says what to install instead.
#   dataset-fashion-mnist  real images for the data tests and the benchmarks
#   chromium               the upload page's browser tests (Playwright drives this binary)
#   postgresql             a real database for the multi-worker tuning test
#   wrk                    the HTTP load generator of the serving benchmark (its smoke mode is a test)
#   haproxy                the replicas' load balancer (its configuration is checked by haproxy -c in a test)
# (the serving images' tools, podman and mmdebstrap, are installed by .ci/containers.sh itself)
set -euo pipefail
need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
[ -x /usr/bin/chromium ] || need+=(chromium)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
