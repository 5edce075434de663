#!/usr/bin/env bash
# The tests' Python: a venv in BUILD/test-venv that sees Debian's python3-torch (system site
# packages) and adds safetensors from PyPI, which Debian 12 does not package. Used by
# tests/parity/safetensors_torch_test.cpp (PyTorch loads accel's checkpoints). Idempotent.
#   scripts/test-venv.sh [BUILD]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-build}/test-venv"
if "$venv/bin/python" -c 'import safetensors.torch' 2>/dev/null; then exit 0; fi
echo "test-venv: creating $venv (Debian's PyTorch + safetensors from PyPI)" >&2
rm -rf "$venv"
/usr/bin/python3 -m venv --system-site-packages "$venv"  # Debian's Python: python3-torch is its
"$venv/bin/pip" install --quiet --disable-pip-version-check 'safetensors>=0.4,<1' >&2
"$venv/bin/python" -c 'import safetensors.torch, torch' >&2
