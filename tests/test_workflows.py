"""The shared workflows (UI format): present in both folders, made of existing nodes, wired type-correctly, with the
widget values their nodes expect.  The integration tests check the core nodes against a real server and run them."""

from __future__ import annotations

import importlib.util
import json

import pytest

from vssflow_core.flow.solvers import DEFAULT_SCHEDULE, DEFAULT_SOLVER
from workflow_tools import (EXAMPLES_DIR, REPO_ROOT, VIRTUAL_NODES, WORKFLOWS_DIR, check_workflow, load_workflow,
                            pack_node_defs, to_api, v1_fixture_files, widget_layout, workflow_files)

# Core ComfyUI nodes the workflows may use (their definitions are checked against /object_info by the integration
# tests: tests/integration/test_workflows.py).
CORE_NODES = {"LoadVideo", "LoadAudio", "EmptyImage", "CreateVideo"}
REQUIRED = {"vssflow_sound_effects", "vssflow_speech_only", "vssflow_speech_and_sound", "vssflow_speech_without_video",
            "vssflow_from_generated_video"}


@pytest.fixture(scope="module")
def defs():
    return pack_node_defs()


def test_every_use_case_has_a_workflow_in_both_folders():
    names = {p.stem for p in workflow_files()}
    assert REQUIRED <= names
    for path in workflow_files():
        assert (EXAMPLES_DIR / path.name).read_bytes() == path.read_bytes(), f"example_workflows/{path.name} differs"
    assert {p.name for p in EXAMPLES_DIR.glob("*.json")} == {p.name for p in WORKFLOWS_DIR.glob("*.json")}


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.stem)
def test_workflow_is_well_formed(defs, path):
    wf = load_workflow(path)
    types = {node["type"] for node in wf["nodes"]}
    assert types - VIRTUAL_NODES - CORE_NODES <= set(defs), f"unknown node types {types - set(defs)}"
    assert {"VSSFlowSampler", "VSSFlowVocoderDecode", "VSSFlowAudioMux"} <= types
    assert check_workflow(wf, defs, known_only=False, check_combos=defs) == []
    assert wf["last_node_id"] == max(n["id"] for n in wf["nodes"])
    assert wf["last_link_id"] == max(link[0] for link in wf["links"])


@pytest.mark.parametrize("path", v1_fixture_files(), ids=lambda p: p.stem)
def test_workflows_saved_before_the_v3_port_still_fit_the_nodes(defs, path):
    """Node ids, input names, sockets and widget positions are the V1 pack's: its shipped workflows load as saved."""
    wf = load_workflow(path)
    assert check_workflow(wf, defs, known_only=False, check_combos=defs, saved_earlier=True) == []


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.stem)
def test_sampler_seed_carries_its_control_value(defs, path):
    wf = load_workflow(path)
    (sampler,) = [n for n in wf["nodes"] if n["type"] == "VSSFlowSampler"]
    layout = [s.name if s else None for s in widget_layout(defs["VSSFlowSampler"])]
    assert layout[:2] == ["seed", None]
    assert sampler["widgets_values"][1] in ("fixed", "randomize", "increment", "decrement")


def test_the_checker_catches_mistakes(defs):
    wf = load_workflow(WORKFLOWS_DIR / "vssflow_sound_effects.json")
    broken = json.loads(json.dumps(wf))
    sampler = next(n for n in broken["nodes"] if n["type"] == "VSSFlowSampler")
    sampler["widgets_values"].pop(1)  # the "randomize" value forgotten
    decode = next(n for n in broken["nodes"] if n["type"] == "VSSFlowVocoderDecode")
    link = next(link for link in broken["links"] if link[3] == decode["id"] and link[5] == "VSSFLOW_LATENT")
    link[5] = "LATENT"  # a link of another type
    broken["nodes"].append({"id": 99, "type": "NoSuchNode", "inputs": [], "outputs": [], "widgets_values": []})
    problems = check_workflow(broken, defs, known_only=True)
    assert any("widget values" in p and "VSSFlowSampler" in p for p in problems)
    assert any(f"link {link[0]}" in p for p in problems)
    assert any("NoSuchNode" in p for p in problems)


def test_conversion_to_the_api_format(defs):
    wf = load_workflow(WORKFLOWS_DIR / "vssflow_speech_without_video.json")
    core = {"EmptyImage": {"input": {"required": {k: ["INT", {}] for k in ("width", "height", "batch_size", "color")}},
                           "output": ["IMAGE"]}}
    prompt = to_api(wf, {**defs, **core}, {"VSSFlowSampler": {"seed": 9}})
    assert all(node["class_type"] not in VIRTUAL_NODES for node in prompt.values())
    sampler = next(n for n in prompt.values() if n["class_type"] == "VSSFlowSampler")
    assert sampler["inputs"]["seed"] == 9 and sampler["inputs"]["solver"] == DEFAULT_SOLVER
    assert sampler["inputs"]["schedule"] == DEFAULT_SCHEDULE  # an optional widget, after the required ones
    assert "control_after_generate" not in sampler["inputs"] and len(sampler["inputs"]) == 12
    loader_id = next(i for i, n in prompt.items() if n["class_type"] == "VSSFlowVideoLoader")
    assert prompt[loader_id]["inputs"]["frame_rate"] == 25.0
    tokenizer = next(n for n in prompt.values() if n["class_type"] == "VSSFlowPhonemeTokenizer")
    assert tokenizer["inputs"]["duration"] == [loader_id, 3]  # the loader's duration output


def test_workflows_are_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("make_workflows", REPO_ROOT / "scripts" / "make_workflows.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.main(["--check"]) == 0  # edit scripts/make_workflows.py, then run it, to change a workflow
