#!/usr/bin/env bash
# Install a pack's requirements the way ComfyUI-Manager 4.x does, with the Manager itself, into the ComfyUI
# environment of scripts/install_comfyui.sh (which already holds its torch build), and check what it did.
#
#   bash scripts/manager_install.sh [PACK_DIR]      # default: this repository
#
# 1. ComfyUI-Manager at the version the pinned ComfyUI names (ComfyUI/manager_requirements.txt), installed into the
#    venv with the torch trio held by the constraints file; skipped when that version is already there.
# 2. `cm-cli post-install PACK_DIR`, the Manager's own command: `pip install <line>` once per line of
#    requirements.txt; a line naming torch, torchvision, torchaudio or torchsde is skipped (its blacklist), and one
#    that would downgrade torch*, transformers, safetensors or kornia too (its downgrade protection); then install.py
#    if the pack has one (this one has none); then its fixer, which rolls a changed torch back.
# 3. Checks: torch, torchvision and torchaudio exactly as before (version and installed files), every requirement
#    of requirements.txt satisfied, no install.py. The result goes to <dest>/manager-install.json (read by
#    tests/integration/test_manager_install.py), the Manager's output to <dest>/logs/manager-install.log.
#
# VSSFLOW_COMFYUI_DIR: <dest> (default <repo>/.comfyui), as for install_comfyui.sh.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
DEST="${VSSFLOW_COMFYUI_DIR:-$REPO_ROOT/.comfyui}"
PACK="$(cd "${1:-$REPO_ROOT}" && pwd -P)"
VPY="$DEST/venv/bin/python"
COMFY="$DEST/ComfyUI"
REPORT="${MANAGER_REPORT:-$DEST/manager-install.json}"
LOG="$DEST/logs/manager-install.log"
die() { echo "[manager_install] ERROR: $*" >&2; exit 1; }

[[ -x "$VPY" && -f "$COMFY/main.py" ]] || die "no ComfyUI environment at $DEST; run scripts/install_comfyui.sh first"
[[ -f "$COMFY/manager_requirements.txt" ]] || die "$COMFY/manager_requirements.txt is missing: which Manager?"
[[ -f "$DEST/constraints.txt" ]] || die "no $DEST/constraints.txt; run scripts/install_comfyui.sh first"
mkdir -p "$DEST/logs"
T0=$SECONDS

# ---- 1. the Manager --------------------------------------------------------------------------------------------
if "$VPY" - "$COMFY/manager_requirements.txt" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement

for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    req = Requirement(line)
    try:
        ok = req.specifier.contains(version(req.name), prereleases=True)
    except PackageNotFoundError:
        ok = False
    if not ok:
        sys.exit(1)
PY
then
    echo "[manager_install] ComfyUI-Manager as ComfyUI names it ($(tr -d '\n' <"$COMFY/manager_requirements.txt")) is installed"
else
    echo "[manager_install] installing ComfyUI-Manager: $(tr -d '\n' <"$COMFY/manager_requirements.txt") (torch trio held)"
    "$VPY" -m pip --disable-pip-version-check --no-input install -r "$COMFY/manager_requirements.txt" \
        -c "$DEST/constraints.txt" >"$DEST/logs/manager-itself.log" 2>&1 \
        || { tail -n 30 "$DEST/logs/manager-itself.log" >&2; die "installing ComfyUI-Manager failed"; }
fi
[[ -x "$DEST/venv/bin/cm-cli" ]] || die "the Manager's cm-cli is missing from $DEST/venv/bin"

# ---- 2. the Manager installs the pack, 3. checks ---------------------------------------------------------------
# The checks run in the venv: the torch trio before and after, then every requirement of the pack.
"$VPY" - "$PACK" "$COMFY" "$DEST/venv/bin/cm-cli" "$LOG" "$REPORT" <<'PY'
import hashlib
import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement

pack, comfy, cm_cli, log_path, report_path = sys.argv[1:]
TRIO = ("torch", "torchvision", "torchaudio")


def trio():
    out = {}
    for name in TRIO:
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            out[name] = None
            continue
        record = dist.read_text("RECORD") or ""
        out[name] = {"version": dist.version, "files": hashlib.sha256(record.encode()).hexdigest(),
                     "location": str(dist.locate_file(""))}
    return out


before = trio()
env = {**os.environ, "COMFYUI_PATH": comfy}
with open(log_path, "w") as log:
    code = subprocess.run([cm_cli, "post-install", pack], stdout=log, stderr=subprocess.STDOUT, env=env,
                          cwd=comfy).returncode
after = trio()
text = open(log_path, encoding="utf-8", errors="replace").read()

lines, unmet = [], []
req_file = os.path.join(pack, "requirements.txt")
for raw in open(req_file, encoding="utf-8") if os.path.isfile(req_file) else []:
    line = raw.split("#")[0].strip()
    if not line:
        continue
    req = Requirement(line)
    entry = {"line": line, "name": req.name, "applies": req.marker is None or req.marker.evaluate(),
             "skipped_by_manager": f"skip black listed pip installation: '{line}'" in text}
    if entry["applies"] and not entry["skipped_by_manager"]:
        try:
            entry["installed"] = distribution(req.name).version
            entry["satisfied"] = req.specifier.contains(entry["installed"], prereleases=True)
        except PackageNotFoundError:
            entry["installed"], entry["satisfied"] = None, False
        if not entry["satisfied"]:
            unmet.append(line)
    lines.append(entry)

problems = []
if code != 0:
    problems.append(f"cm-cli post-install exited with {code} (log: {log_path})")
if "install script failed" in text:
    problems.append(f"the Manager reports a failed pip line (log: {log_path})")
if before != after:
    problems.append("the torch trio changed: " + ", ".join(
        f"{n} {(before[n] or {}).get('version')} -> {(after[n] or {}).get('version')}" for n in TRIO
        if before[n] != after[n]))
if unmet:
    problems.append("requirements not satisfied after the install: " + ", ".join(unmet))
report = {"pack": pack, "manager_exit": code, "install_py": os.path.isfile(os.path.join(pack, "install.py")),
          "torch_before": before, "torch_after": after, "lines": lines, "problems": problems,
          "requirements_sha256": hashlib.sha256(open(req_file, "rb").read()).hexdigest()
          if os.path.isfile(req_file) else None}
with open(report_path + ".tmp", "w") as f:
    json.dump(report, f, indent=2)
os.replace(report_path + ".tmp", report_path)
for entry in lines:
    state = ("skipped (Manager blacklist)" if entry["skipped_by_manager"] else "not for this platform"
             if not entry["applies"] else f"{entry['installed']}")
    print(f"[manager_install]   {entry['line']}: {state}")
print("[manager_install] torch trio: " + ", ".join(f"{n} {(after[n] or {}).get('version')}" for n in TRIO) +
      (" (unchanged)" if before == after else " (CHANGED)"))
if problems:
    sys.exit("[manager_install] ERROR: " + "; ".join(problems))
PY
echo "[manager_install] done in $((SECONDS - T0)) s; report $REPORT"
