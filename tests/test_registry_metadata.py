"""What the Comfy registry and ComfyUI-Manager read: the ComfyUI and frontend ranges, and what the archive leaves out.

The browser tests run on the pinned server's own frontend and on the newest release; the declared range must hold
both (the versions are read from the install when there is one)."""

from __future__ import annotations

import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from conftest import REPO_ROOT

CONFIG = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
COMFY_HOME = REPO_ROOT / ".comfyui"


def frontend_range() -> SpecifierSet:
    pins = [Requirement(d) for d in CONFIG["project"]["dependencies"] if d.startswith("comfyui-frontend-package")]
    assert len(pins) == 1, "declare one comfyui-frontend-package range in [project].dependencies"
    return pins[0].specifier


def test_comfyui_range_holds_the_tested_server():
    declared = SpecifierSet(CONFIG["tool"]["comfy"]["requires-comfyui"])
    version_file = COMFY_HOME / "ComfyUI" / "comfyui_version.py"
    if not version_file.is_file():
        pytest.skip("no ComfyUI install to compare with (scripts/install_comfyui.sh)")
    tested = version_file.read_text().split('"')[1]
    assert declared.contains(tested), (str(declared), tested)


def test_frontend_range_holds_both_tested_frontends():
    declared = frontend_range()
    tested = []
    for dist in (COMFY_HOME / "venv" / "lib").glob("python*/site-packages/comfyui_frontend_package-*.dist-info"):
        tested.append(dist.name[len("comfyui_frontend_package-"):-len(".dist-info")])
    newest = COMFY_HOME / "frontends" / "newest"
    if newest.is_file():
        tested.append(newest.read_text().strip())
    if not tested:
        pytest.skip("no frontend install to compare with (scripts/install_comfyui.sh)")
    assert all(declared.contains(v) for v in tested), (str(declared), tested)


def test_archive_leaves_out_development_files_only():
    patterns = [line.strip().rstrip("/") for line in (REPO_ROOT / ".comfyignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert {"tests", "bench", "scripts", "node_modules", "package.json"} <= set(patterns), patterns
    for needed in ("__init__.py", "nodes", "vssflow_core", "web", "example_workflows", "demo_videos",
                   "requirements.txt", "pyproject.toml", "LICENSE", "README.md"):
        assert needed not in patterns and (REPO_ROOT / needed).exists(), needed
