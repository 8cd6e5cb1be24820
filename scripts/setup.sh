#!/usr/bin/env bash
# Set up the development environment in .venv: Python 3.11, torch, the runtime and test requirements.
#
# torch is pinned to 2.13.0: on this project's CPU machines pip takes the local CPU wheel (fast, no CUDA payload);
# on a GPU machine the same pin resolves to PyPI's CUDA build. torchvision and torchaudio are not needed by
# vssflow_core. Set VSSFLOW_TORCH to override the requirement (e.g. "torch==2.11.0").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH_REQ=${VSSFLOW_TORCH:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip --disable-pip-version-check -q"
stamp=.venv/.vssflow-setup
want="$TORCH_REQ $(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    start=$SECONDS
    # torch first and on its own, so that no other package's loose requirement pulls a different build
    $PIP install "$TORCH_REQ"
    echo "$TORCH_REQ" > .venv/torch-constraint.txt
    $PIP install -r requirements.txt -r requirements-dev.txt -c .venv/torch-constraint.txt
    .venv/bin/python - <<'PY'
import importlib
import torch
for name in ("numpy", "einops", "safetensors", "huggingface_hub", "soundfile", "av", "pytest"):
    importlib.import_module(name)
print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
PY
    echo "$want" > "$stamp"
    echo "setup: environment ready in $((SECONDS - start)) s"
else
    echo "setup: .venv is up to date"
fi
# The core library, editable (the venv imports this folder's code), so `python -m vssflow_core` works from any folder.
# No dependencies (installed above) and no build isolation (setuptools is in the venv, pulled in by torch): nothing is
# fetched here; a venv without a recent setuptools builds it in isolation instead.
repo=$(pwd -P)
installed=$(cd / && "$repo/.venv/bin/python" -c "import vssflow_core; print(vssflow_core.__path__[0])" 2>/dev/null || true)
if [ "$installed" != "$repo/vssflow_core" ]; then
    $PIP install --no-deps --no-build-isolation -e . || $PIP install --no-deps -e .
    echo "setup: vssflow_core installed (editable) from $repo"
fi
