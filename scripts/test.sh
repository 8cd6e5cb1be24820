#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: set up .venv, install the pinned real ComfyUI for the integration
# tests, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f scripts/install_comfyui.sh ] && [ "${VSSFLOW_SKIP_COMFYUI:-0}" != "1" ]; then
    bash scripts/install_comfyui.sh
    export VSSFLOW_REQUIRE_COMFYUI=1
fi
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest tests "$@"
