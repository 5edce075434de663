#!/usr/bin/env bash
# Installs the Debian packages accel needs, only those missing (so a second run is instant).
#   scripts/install-deps.sh run    build + run `accel train`
#   scripts/install-deps.sh test   also the test suite's needs (GoogleTest, PyTorch reference, clang-format)
#   scripts/install-deps.sh bench  also what bench/ needs (PyTorch, python3-venv for the PyPI references)
set -euo pipefail

what=${1:-run}
packages=(build-essential cmake ninja-build pkg-config libdnnl-dev zlib1g-dev libcli11-dev nlohmann-json3-dev libsqlite3-dev libssl-dev libcpp-httplib-dev dataset-fashion-mnist)
case "$what" in
  run) ;;
  test) packages+=(libgtest-dev python3-torch python3-numpy clang-format) ;;
  bench) packages+=(python3-torch python3-numpy python3-venv time) ;;
  *) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
