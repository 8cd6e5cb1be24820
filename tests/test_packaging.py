"""Packaging: what ComfyUI, the registry and a fresh machine read from the repository."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib

from conftest import REPO_ROOT


def requirement_lines(path):
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_pyproject_dependencies_mirror_requirements_txt():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    # the registry's frontend range is not a requirement (the registry strips it; see test_registry_metadata.py)
    dependencies = [d for d in project["dependencies"] if not d.startswith("comfyui-frontend-package")]
    assert dependencies == requirement_lines(REPO_ROOT / "requirements.txt")


def test_torch_family_is_never_a_runtime_requirement():
    names = {re.split(r"[<>=!~; \[]", line)[0].lower() for line in requirement_lines(REPO_ROOT / "requirements.txt")}
    assert not names & {"torch", "torchvision", "torchaudio"}


def test_registry_metadata_is_complete():
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    comfy = config["tool"]["comfy"]
    assert {"PublisherId", "DisplayName", "Icon"} <= set(comfy)
    assert "comfyui" not in config["project"]["name"].lower()  # the registry asks names not to repeat "ComfyUI"
    assert config["project"]["urls"]["Repository"].startswith("https://")


def test_root_package_imports_the_way_comfyui_loads_it():
    # ComfyUI loads custom_nodes/<pack>/__init__.py by file location under a mangled module name.
    spec = importlib.util.spec_from_file_location("custom_nodes_x_vssflow", REPO_ROOT / "__init__.py",
                                                  submodule_search_locations=[str(REPO_ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    assert callable(module.comfy_entrypoint)  # a V3 pack; NODE_CLASS_MAPPINGS would hide the entry point
    assert not hasattr(module, "NODE_CLASS_MAPPINGS")
    assert (REPO_ROOT / module.WEB_DIRECTORY).is_dir()


def test_core_library_never_imports_comfyui():
    offenders = [str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "vssflow_core").rglob("*.py")
                 if re.search(r"^\s*(import|from)\s+(comfy|folder_paths|nodes|server|comfy_api)\b", p.read_text(),
                              re.MULTILINE)]
    assert offenders == []


def test_readme_starts_with_the_setup_and_test_commands_that_ci_runs():
    readme = (REPO_ROOT / "README.md").read_text()
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.DOTALL)
    assert len(commands) >= 2
    test_command = commands[1].strip()
    assert test_command in (REPO_ROOT / ".ci" / "run").read_text()
