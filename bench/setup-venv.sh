#!/usr/bin/env bash
# The PyPI anchors users would pick instead of accel, in a virtualenv of the project's own
# (never the system Python): PyTorch (with its bundled MKL/oneDNN, as `pip install torch`
# gives it), JAX and Keras 3. JAX 0.12 needs Python >= 3.12: the image's pyenv has 3.12; without
# it the venv has PyTorch only. Idempotent; prints the interpreter path last.
#   bench/setup-venv.sh [VENV_DIR]    (default: build/bench-venv)
set -euo pipefail
export KERAS_BACKEND=${KERAS_BACKEND:-jax}  # Keras 3 imports TensorFlow by default, which the venv does not have
cd "$(dirname "$0")/.."
venv=${1:-build/bench-venv}
python=python3
for candidate in "${PYENV_ROOT:-${HOME:-/root}/.pyenv}"/versions/3.1[2-9]*/bin/python3; do
  [ -x "$candidate" ] && python=$candidate
done
if [ ! -x "$venv/bin/python" ]; then
  echo "bench venv: creating $venv with $("$python" --version 2>&1) ($python)" >&2
  "$python" -m venv "$venv"
fi
packages=(torch numpy)
if "$venv/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then
  packages+=(jax keras)
fi
if ! "$venv/bin/python" -c "import $(IFS=,; echo "${packages[*]}")" 2>/dev/null; then
  echo "bench venv: pip install ${packages[*]} (PyTorch's wheel brings several GB of CUDA libraries)" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}" >&2
fi
"$venv/bin/python" - >&2 <<'EOF'
import importlib
for name in ("torch", "jax", "keras", "numpy"):
    try:
        print(f"bench venv: {name} {importlib.import_module(name).__version__}")
    except ImportError:
        pass
EOF
echo "$venv/bin/python"
