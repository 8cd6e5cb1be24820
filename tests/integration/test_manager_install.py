"""The pack installed the way ComfyUI-Manager 4.x installs it, by the Manager itself (``cm-cli post-install``), into
the ComfyUI environment that already holds its torch build (``scripts/manager_install.sh``, run by
``scripts/install_comfyui.sh``).

The full install runs once per change of requirements.txt, at install time (one pip call per line takes minutes on
a small machine); these tests read what it recorded, check that the record is for today's requirements.txt, and run
the Manager again on a pack made only of lines it must refuse, which costs no download."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from .comfy_server import COMFY_HOME, REPO_ROOT

REPORT = COMFY_HOME / "manager-install.json"
SCRIPT = REPO_ROOT / "scripts" / "manager_install.sh"
TRIO = ("torch", "torchvision", "torchaudio")


def _require(path: Path) -> None:
    """Skips (fails under VSSFLOW_REQUIRE_COMFYUI=1) when the install that makes ``path`` has not run."""
    if not path.exists():
        if os.environ.get("VSSFLOW_REQUIRE_COMFYUI") == "1":
            pytest.fail(f"no {path}: run `bash scripts/install_comfyui.sh`", pytrace=False)
        pytest.skip(f"no {path}: run `bash scripts/install_comfyui.sh`")


def _report(path: Path = REPORT) -> dict:
    _require(path)
    return json.loads(path.read_text())


def test_the_record_is_for_todays_requirements():
    report = _report()
    assert report["requirements_sha256"] == hashlib.sha256((REPO_ROOT / "requirements.txt").read_bytes()).hexdigest(), \
        "requirements.txt changed since the Manager installed it: run `bash scripts/install_comfyui.sh`"
    assert Path(report["pack"]).resolve() == REPO_ROOT.resolve()


def test_the_manager_installed_every_line_and_left_torch_alone():
    report = _report()
    assert report["manager_exit"] == 0 and not report["problems"], report["problems"]
    assert report["torch_before"] == report["torch_after"], (report["torch_before"], report["torch_after"])
    assert all(report["torch_after"][name] for name in TRIO), report["torch_after"]
    lines = report["lines"]
    assert lines and all(line["satisfied"] for line in lines if line["applies"]), lines
    assert not any(line["skipped_by_manager"] for line in lines), "a line of ours is on the Manager's blacklist"


def test_no_install_script_and_no_torch_in_the_requirements():
    assert not (REPO_ROOT / "install.py").exists(), "the Manager would run install.py; the pack needs none"
    assert _report()["install_py"] is False
    names = {line["name"].lower() for line in _report()["lines"]}
    assert not names & {"torch", "torchvision", "torchaudio", "torchsde"}, names


def test_the_manager_refuses_torch_lines_and_downgrades(tmp_path):
    """A pack whose every line the Manager must refuse: the torch trio, torchsde, and downgrades of transformers and
    safetensors. The Manager skips them all (nothing is downloaded) and the torch trio stays as it was."""
    venv_python = COMFY_HOME / "venv" / "bin" / "python"
    _require(COMFY_HOME / "venv" / "bin" / "cm-cli")
    installed = json.loads(subprocess.run(
        [str(venv_python), "-c", "import json, importlib.metadata as m; print(json.dumps({n: m.version(n) for n in "
         "('torch', 'transformers', 'safetensors')}))"], capture_output=True, text=True, check=True).stdout)
    lines = [f"torch=={installed['torch'].split('+')[0]}.post99", "torchvision", "torchaudio>=0.1", "torchsde",
             "transformers<1.0", "safetensors==0.0.1"]
    pack = tmp_path / "refused_pack"
    pack.mkdir()
    (pack / "requirements.txt").write_text("\n".join(lines) + "\n")
    report_path = tmp_path / "report.json"
    proc = subprocess.run(["bash", str(SCRIPT), str(pack)], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "MANAGER_REPORT": str(report_path)})
    report = _report(report_path)
    assert report["torch_before"] == report["torch_after"], proc.stdout + proc.stderr
    skipped = {line["line"]: line["skipped_by_manager"] for line in report["lines"]}
    assert skipped == {line: True for line in lines}, (skipped, proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_comfy_node_validate_finds_nothing():
    """The registry's publishing checks (comfy-cli's `comfy node validate`: pyproject fields, ranges, ruff's
    security rules) pass with no findings; they need no network."""
    comfy = COMFY_HOME / "cli-venv" / "bin" / "comfy"
    _require(comfy)
    proc = subprocess.run([str(comfy), "--skip-prompt", "--no-enable-telemetry", "node", "validate"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "All validation checks passed" in out, out
    assert "warning" not in out.lower() and "error" not in out.lower(), out
