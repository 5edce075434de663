#!/usr/bin/env bash
# Runs bench/train_bench.py with Debian's PyTorch (/usr/bin/python3) after a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/accel ] || { cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build build; }
exec /usr/bin/python3 bench/train_bench.py "$@"
