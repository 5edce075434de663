#!/usr/bin/env bash
# The README's entry point: `./make.sh run` and `./make.sh test` work on a bare Debian 12 machine,
# where even make is missing. Installs what `make run` needs if make is not there, then runs
# make with the same arguments (each Makefile target installs what it needs itself).
set -euo pipefail
cd "$(dirname "$0")"
command -v make >/dev/null || scripts/install-deps.sh run
exec make "$@"
