#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: set up .venv, the system tools some tests drive (espeak-ng for the
# synthetic talking clips, Debian chromium + playwright-core for the browser test), the pinned real ComfyUI for the
# integration tests, then pytest. Extra arguments go to pytest. Set VSSFLOW_SKIP_COMFYUI=1 or VSSFLOW_SKIP_BROWSER=1
# to leave those parts out (their tests then skip with the reason).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v espeak-ng >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends espeak-ng
fi
export VSSFLOW_REQUIRE_ESPEAK=1
if [ "${VSSFLOW_SKIP_COMFYUI:-0}" != "1" ]; then
    bash scripts/install_comfyui.sh
    export VSSFLOW_REQUIRE_COMFYUI=1
    if [ "${VSSFLOW_SKIP_BROWSER:-0}" != "1" ]; then
        bash scripts/install_browser.sh
        export VSSFLOW_REQUIRE_BROWSER=1
    fi
fi
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest tests "$@"
