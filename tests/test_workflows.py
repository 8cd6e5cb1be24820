"""The shipped templates and the subgraph blueprint (UI format): listed once, titled, with thumbnails, opening at a
readable zoom, made of existing nodes, wired type-correctly, with the widget values their nodes expect, and using
only media the pack ships. The integration tests check the core nodes against a real server and queue every
template as shipped."""

from __future__ import annotations

import importlib.util
import json

import pytest
from PIL import Image

from vssflow_core.flow.solvers import DEFAULT_SCHEDULE, DEFAULT_SOLVER
from workflow_tools import (BLUEPRINTS_DIR, EXAMPLES_DIR, REPO_ROOT, VIRTUAL_NODES, blueprint_as_workflow,
                            blueprint_files, check_workflow, input_specs, load_workflow, pack_node_defs, to_api,
                            v1_fixture_files, widget_layout, workflow_files)

# Core ComfyUI nodes the templates may use (their definitions are checked against /object_info by the integration
# tests: tests/integration/test_workflows.py). No Load Video / Load Audio: their files are the user's, and a
# template that names one opens with a missing-media error on a fresh install.
CORE_NODES = {"EmptyImage", "CreateVideo"}
REQUIRED = {"Sound effects for a video", "Speech for a talking video", "Speech and sound effects",
            "Speech without a video", "Sound for a generated video", "Add sound in one node", "Fix a range",
            "Restyle existing audio"}
# Where ComfyUI looks for a pack's templates (app/custom_node_manager.py); each folder found is listed.
TEMPLATE_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")
GENERATORS = ({"VSSFlowSampler", "VSSFlowVocoderDecode", "VSSFlowAudioMux"}, {"VSSFlowAddSoundToVideo"})


@pytest.fixture(scope="module")
def defs():
    return pack_node_defs()


def test_every_use_case_has_one_template_with_a_thumbnail():
    assert [folder for folder in TEMPLATE_FOLDERS if (REPO_ROOT / folder).is_dir()] == ["example_workflows"]
    assert REQUIRED <= {p.stem for p in workflow_files()}  # the file name is the title the browser shows
    for path in workflow_files():
        thumbnail = path.with_suffix(".jpg")  # the frontend asks for <template>.jpg next to the template
        with Image.open(thumbnail) as image:
            assert image.format == "JPEG" and 100 <= image.width <= 640 and image.height <= image.width


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.stem)
def test_template_is_well_formed(defs, path):
    wf = load_workflow(path)
    types = {node["type"] for node in wf["nodes"]}
    assert types - VIRTUAL_NODES - CORE_NODES <= set(defs), f"unknown node types {types - set(defs)}"
    assert any(generator <= types for generator in GENERATORS)
    assert check_workflow(wf, defs, known_only=False, check_combos=defs) == []
    assert wf["last_node_id"] == max(n["id"] for n in wf["nodes"])
    assert wf["last_link_id"] == max(link[0] for link in wf["links"])


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.stem)
def test_template_uses_only_what_the_pack_ships(defs, path):
    """Every file a widget names is one of the pack's demo clips (listed by the VideoLoader), so the template opens
    and runs on a fresh install; a loader with a VIDEO or images connected leaves its file picker at (none)."""
    wf = load_workflow(path)
    for node in wf["nodes"]:
        if node["type"] != "VSSFlowVideoLoader":
            continue
        values = dict(zip((s.name if s else None for s in widget_layout(defs[node["type"]])), node["widgets_values"]))
        linked = any(slot.get("link") is not None for slot in node["inputs"] if slot["name"] in ("video", "images"))
        if linked:
            assert values["file"] == "(none)"
        else:
            assert values["file"].startswith("demo_videos/") and (REPO_ROOT / values["file"]).is_file()


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.stem)
def test_template_opens_at_a_zoom_where_text_is_drawn(path):
    ds = load_workflow(path)["extra"]["ds"]
    assert 0.7 <= ds["scale"] <= 1.0  # LiteGraph draws no text below 0.6
    nodes = load_workflow(path)["nodes"]
    # the top left node lands inside the view
    left = min(n["pos"][0] for n in nodes)
    top = min(n["pos"][1] for n in nodes)
    assert 0 <= (left + ds["offset"][0]) * ds["scale"] <= 100 and 0 <= (top + ds["offset"][1]) * ds["scale"] <= 100


def test_the_speech_template_wires_nothing_the_demo_model_cannot_use():
    wf = load_workflow(EXAMPLES_DIR / "Speech for a talking video.json")
    (sampler,) = [n for n in wf["nodes"] if n["type"] == "VSSFlowSampler"]
    assert next(s for s in sampler["inputs"] if s["name"] == "speaker_reference")["link"] is None
    facts = json.loads((REPO_ROOT / "demo_videos" / "examples.json").read_text())["talking.mp4"]
    (tokenizer,) = [n for n in wf["nodes"] if n["type"] == "VSSFlowPhonemeTokenizer"]
    transcript, start, end, _ = tokenizer["widgets_values"]
    assert transcript == facts["transcript"]
    assert start == pytest.approx(facts["speech_start"], abs=0.01) and end == pytest.approx(facts["speech_end"],
                                                                                           abs=0.01)


@pytest.mark.parametrize("path", v1_fixture_files(), ids=lambda p: p.stem)
def test_workflows_saved_before_the_v3_port_still_fit_the_nodes(defs, path):
    """Node ids, input names, sockets and widget positions are the V1 pack's: its shipped workflows load as saved."""
    wf = load_workflow(path)
    assert check_workflow(wf, defs, known_only=False, check_combos=defs, saved_earlier=True) == []


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.stem)
def test_seeds_carry_their_control_value(defs, path):
    wf = load_workflow(path)
    for node in wf["nodes"]:
        if node["type"] in defs:
            layout = [s.name if s else None for s in widget_layout(defs[node["type"]])]
            if "seed" in layout:
                assert layout[layout.index("seed") + 1] is None
                assert node["widgets_values"][layout.index("seed") + 1] in ("fixed", "randomize", "increment",
                                                                            "decrement")


def test_the_checker_catches_mistakes(defs):
    wf = load_workflow(EXAMPLES_DIR / "Sound effects for a video.json")
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
    wf = load_workflow(EXAMPLES_DIR / "Speech without a video.json")
    core = {"EmptyImage": {"input": {"required": {k: ["INT", {}] for k in ("width", "height", "batch_size", "color")}},
                           "output": ["IMAGE"]}}
    prompt = to_api(wf, {**defs, **core}, {"VSSFlowSampler": {"seed": 9}})
    assert all(node["class_type"] not in VIRTUAL_NODES for node in prompt.values())
    sampler = next(n for n in prompt.values() if n["class_type"] == "VSSFlowSampler")
    assert sampler["inputs"]["seed"] == 9 and sampler["inputs"]["solver"] == DEFAULT_SOLVER
    assert sampler["inputs"]["schedule"] == DEFAULT_SCHEDULE  # an optional widget, after the required ones
    widgets = {spec.name for spec in widget_layout(defs["VSSFlowSampler"]) if spec is not None}
    linked = {"vssflow_model", "vssflow_components", "visual_features", "phonemes"}
    assert set(sampler["inputs"]) == widgets | linked
    assert "control_after_generate" not in sampler["inputs"]
    loader_id = next(i for i, n in prompt.items() if n["class_type"] == "VSSFlowVideoLoader")
    assert prompt[loader_id]["inputs"]["frame_rate"] == 25.0
    tokenizer = next(n for n in prompt.values() if n["class_type"] == "VSSFlowPhonemeTokenizer")
    assert tokenizer["inputs"]["duration"] == [loader_id, 3]  # the loader's duration output


# --------------------------------------------------------------------------------------------------------------------
# The subgraph blueprint
# --------------------------------------------------------------------------------------------------------------------


def test_the_modular_graph_ships_as_a_subgraph_blueprint(defs):
    (path,) = blueprint_files()
    assert path.parent == BLUEPRINTS_DIR
    blueprint = load_workflow(path)
    (node,) = blueprint["nodes"]
    (subgraph,) = blueprint["definitions"]["subgraphs"]
    assert node["type"] == subgraph["id"] and subgraph["name"] == path.stem
    assert [(i["name"], i["type"]) for i in node["inputs"]] == [(i["name"], i["type"]) for i in subgraph["inputs"]]
    assert [(o["name"], o["type"]) for o in node["outputs"]] == [("video", "VIDEO"), ("audio", "AUDIO")]
    inside = blueprint_as_workflow(blueprint)
    types = {n["type"] for n in inside["nodes"]}
    assert GENERATORS[0] | {"VSSFlowVideoLoader", "VSSFlowPhonemeTokenizer", "VSSFlowVisualEncoder"} <= types
    # every link of the subgraph ends on a node of it or on its boundary, and is recorded on both ends
    ids = {n["id"] for n in subgraph["nodes"]} | {-10, -20}
    for link in subgraph["links"]:
        assert {link["origin_id"], link["target_id"]} <= ids
    for item in subgraph["inputs"] + subgraph["outputs"]:
        assert all(any(link["id"] == i for link in subgraph["links"]) for i in item["linkIds"])
    # the widgets shown on the blueprint's node are widgets of its nodes
    by_id = {str(n["id"]): n for n in subgraph["nodes"]}
    for node_id, widget in node["properties"]["proxyWidgets"]:
        assert widget in {s.name for s in input_specs(defs[by_id[node_id]["type"]]) if s.is_widget}


def test_the_blueprint_inside_is_a_valid_graph_once_its_video_is_connected(defs):
    blueprint = load_workflow(blueprint_files()[0])
    source = {"id": 100, "type": "VSSFlowVideoLoader", "inputs": [],
              "outputs": [{"name": "vssflow_video", "type": "VSSFLOW_VIDEO", "links": []},
                          {"name": "video", "type": "VIDEO", "links": []}],
              "widgets_values": ["demo_videos/bouncing.mp4", 0.0, 10.0]}
    inside = blueprint_as_workflow(blueprint, {"video": (source, 1)})
    assert check_workflow(inside, defs, known_only=True, check_combos=defs) == []
    prompt = to_api(inside, defs)
    (loader,) = [n for i, n in prompt.items() if n["class_type"] == "VSSFlowVideoLoader" and i != "100"]
    assert loader["inputs"]["video"] == ["100", 1] and loader["inputs"]["file"] == "(none)"


def test_workflows_are_what_the_generator_writes():
    spec = importlib.util.spec_from_file_location("make_workflows", REPO_ROOT / "scripts" / "make_workflows.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.main(["--check"]) == 0  # edit scripts/make_workflows.py, then run it, to change a workflow
