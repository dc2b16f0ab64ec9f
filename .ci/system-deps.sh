#!/usr/bin/env bash
# Debian packages the test suite needs: real images for the data tests (dataset-fashion-mnist).
# Idempotent: installs only what is missing; as a non-root user it says what to install instead.
set -euo pipefail
need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
