#!/usr/bin/env bash
# Fails when a file in src/accel includes a header of a layer above its own, or of another
# backend's folder (backends/xla/, PJRT's runtime, excepted: the train layer compiles programs with
# it). The layers (docs/design.md, "Layers"), each allowed what is listed:
#   core -> core; hw -> core; memory -> core; backends -> memory, hw, core
#   tensor/autograd/ops (one layer) -> backends and below
#   nn, optim, data -> tensor layer and below; amp -> optim, tensor layer and below
#   train -> nn, optim, amp, data, hw and below; runtime -> hw, memory, core
# Usage: scripts/check-layers.sh [source root]  (a ctest test runs it)
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}/src/accel"

declare -A allowed=(
  [core]="core"
  [hw]="core hw"
  [memory]="core memory"
  [backends]="core hw memory backends"
  [tensor]="core hw memory backends tensor autograd ops"
  [autograd]="core hw memory backends tensor autograd ops"
  [ops]="core hw memory backends tensor autograd ops"
  [nn]="core hw memory backends tensor autograd ops nn"
  [optim]="core hw memory backends tensor autograd ops optim"
  [amp]="core hw memory backends tensor autograd ops optim amp"
  [data]="core hw memory backends tensor autograd ops data"
  [train]="core hw memory backends tensor autograd ops nn optim amp data train"
  [runtime]="core hw memory runtime"
)

violations=0
checked=0
while IFS= read -r file; do
  rel="${file#"$root"/}"
  layer="${rel%%/*}"
  if [[ -z "${allowed[$layer]+x}" ]]; then
    echo "check-layers: $rel is in folder '$layer', which has no entry in this script's table" >&2
    violations=$((violations + 1))
    continue
  fi
  # A backend folder (backends/cpu, backends/cuda) may use backends/*.h but not another folder.
  own_backend=""
  [[ "$layer" == backends && "$rel" == backends/*/* ]] && own_backend="$(cut -d/ -f2 <<<"$rel")"
  while IFS= read -r included; do
    [[ -z "$included" ]] && continue
    target="${included%%/*}"
    if [[ " ${allowed[$layer]} " != *" $target "* ]]; then
      echo "check-layers: $rel includes accel/$included: $layer may not depend on $target" >&2
      violations=$((violations + 1))
    elif [[ "$target" == backends && "$included" == backends/xla/* && "$layer" != backends ]]; then
      :  # backends/xla/ is PJRT's runtime and the StableHLO builder: an API, not a kernel backend
    elif [[ "$target" == backends && "$included" == backends/*/* ]]; then
      other="$(cut -d/ -f2 <<<"$included")"
      if [[ "$own_backend" != "$other" ]]; then
        echo "check-layers: $rel includes accel/$included: only backends/$other/ itself may" >&2
        violations=$((violations + 1))
      fi
    fi
  done < <(sed -n 's|^#include "accel/\([^"]*\)".*|\1|p' "$file")
  checked=$((checked + 1))
done < <(find "$root" -name '*.h' -o -name '*.cpp' | sort)

if ((violations)); then
  echo "check-layers: $violations include(s) cross a layer boundary in $checked files" >&2
  exit 1
fi
echo "check-layers: $checked files, every include goes down a layer or stays in its own"
