#!/usr/bin/env bash
# Installs the Debian packages accel needs, only those missing (so a second run is instant).
#   scripts/install-deps.sh run    build + run `accel train`
#   scripts/install-deps.sh test   also the test suite's needs (GoogleTest, PyTorch reference, clang-format)
#   scripts/install-deps.sh bench  also what bench/ needs (PyTorch with OpenBLAS, python3-venv for the PyPI anchors)
# Every list is complete for a bare Debian 12 image (mmdebstrap --variant=apt): apt runs with
# --no-install-recommends, so anything a package only recommends is named here
# (scripts/fresh-machine-check.sh proves it in CI). Prints one line per phase; apt's own output
# goes to a log that is shown when it fails.
set -euo pipefail

what=${1:-run}
packages=(
  build-essential make cmake ninja-build pkg-config ca-certificates
  libdnnl-dev ocl-icd-opencl-dev  # Debian's oneDNN is built with its OpenCL GPU runtime: its CMake config needs OpenCL
  zlib1g-dev libzip-dev libcli11-dev nlohmann-json3-dev libsqlite3-dev libssl-dev libcpp-httplib-dev
  libboost-dev  # Boost.Beast/Asio, header-only: the service's event-driven HTTP server
  dataset-fashion-mnist
  gnuplot-nox fonts-dejavu-core  # accel train --plot draws with gnuplot; the font names its axes
)
# python3-torch only recommends a BLAS: without libopenblas0 it runs on the reference BLAS
# (~20x slower GEMMs), which is not the PyTorch users run.
torch=(python3-torch python3-numpy libopenblas0)
case "$what" in
  run) ;;
  test) packages+=(libgtest-dev "${torch[@]}" python3-venv clang-format) ;;  # venv: scripts/test-venv.sh
  bench) packages+=("${torch[@]}" python3-venv time) ;;
  *) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
log=$(mktemp --suffix=.log "${TMPDIR:-/tmp}/accel-install-deps.XXXXXX")
start=$SECONDS
echo "install-deps: ${#missing[@]} package(s) for '$what' missing: ${missing[*]} (apt log: $log)"
fail() {
  echo "install-deps: FAILED while $1; the last lines of $log:" >&2
  tail -n 25 "$log" >&2
  exit 1
}
echo "install-deps: apt-get update"
$sudo apt-get update >"$log" 2>&1 || fail "running apt-get update"
# apt's lines are condensed to one line per phase, so minutes of installing are not a silent pause.
condense() {
  local line unpacking="" configuring="" configured=0
  while IFS= read -r line; do
    printf '%s\n' "$line" >>"$log"
    case "$line" in
      "Need to get "*) line=${line#Need to get }; echo "install-deps:   downloading ${line% of archives.} ($((SECONDS - start)) s)" ;;
      "Preparing to unpack"* | "Unpacking"*) [ -n "$unpacking" ] || { unpacking=1; echo "install-deps:   unpacking ($((SECONDS - start)) s)"; } ;;
      "Setting up"*)
        configured=$((configured + 1))
        [ -n "$configuring" ] || { configuring=1; echo "install-deps:   configuring ($((SECONDS - start)) s)"; } ;;
    esac
  done
  echo "install-deps:   configured $configured package(s)"
}
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" 2>&1 |
  condense || fail "installing ${missing[*]}"
echo "install-deps: installed in $((SECONDS - start)) s"
