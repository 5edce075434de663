#!/usr/bin/env bash
# OpenXLA's CPU PJRT plugin (PyPI xla-cpu-pjrt: xla_cpu_pjrt.so and the pjrt_c_api.h it was built
# with) in a venv at BUILD/pjrt-venv. The build takes PJRT's header from there (it is never copied
# into the repository), and the tests and `accel train --device xla` load the plugin from there
# (backends/xla/pjrt_plugin.h). Idempotent; prints nothing when it is already there.
#   scripts/pjrt-plugin.sh [BUILD]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-build}/pjrt-venv"
if compgen -G "$venv/lib/python3*/site-packages/xla_plugins/xla_cpu_pjrt/include/pjrt_c_api.h" >/dev/null; then
  exit 0
fi
echo "pjrt-plugin: installing PyPI's xla-cpu-pjrt (63 MB) into $venv" >&2
rm -rf "$venv"
/usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'xla-cpu-pjrt==0.0.1' >&2
