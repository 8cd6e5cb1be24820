"""Shared UI-format workflows: node definitions, a checker, and a converter to the API format ``POST /prompt`` takes.

Node definitions have the shape of ComfyUI's ``/object_info`` entries (``input``, ``input_order``, ``output``,
``output_name``); :func:`pack_node_defs` builds them from the pack's own classes (no server), the integration tests
take them from the real server.

The UI format stores widget values by position (``widgets_values``), in the order of the node's widget inputs
(required, then optional).  The frontend adds values that belong to no input: one after an INT with
``control_after_generate`` ("fixed" / "randomize" / ...), one after a combo with ``image_upload`` / ``video_upload``
(the upload button), two after one with ``audio_upload`` (upload button and player).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

REPO_ROOT = Path(__file__).resolve().parents[1]
# The shipped templates: ComfyUI lists example_workflows/ (and workflows/, examples/, ... too: one folder only, or
# each template is listed twice), each with a same-named .jpg thumbnail.
EXAMPLES_DIR = REPO_ROOT / "example_workflows"
BLUEPRINTS_DIR = REPO_ROOT / "subgraphs"  # subgraph blueprints, listed by ComfyUI's /global_subgraphs
# The workflows the pack shipped before its V3 port, kept as they were: they must still load and run.
V1_FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures" / "workflows_v1"

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# Frontend-only nodes: they exist in the browser, never in /object_info, and are dropped from API prompts.
VIRTUAL_NODES = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
MODE_ACTIVE = 0
# The pack's nodes and their display names, as the tests expect them (the ids are what saved workflows refer to).
OUR_NODES = {
    "VSSFlowCheckpointLoader": "VSSFlow Checkpoint Loader",
    "VSSFlowComponentsLoader": "VSSFlow Components Loader",
    "VSSFlowVideoLoader": "VideoLoader@10fps (VSSFlow)",
    "VSSFlowPhonemeTokenizer": "Phoneme Tokenizer (VSSFlow)",
    "VSSFlowDialogue": "Dialogue (VSSFlow)",
    "VSSFlowVisualEncoder": "Visual Encoder (VSSFlow)",
    "VSSFlowSampler": "FlowDiT Sampler (VSSFlow)",
    "VSSFlowVocoderDecode": "Vocoder Decode (VSSFlow)",
    "VSSFlowAudioMux": "Audio Mux (VSSFlow)",
    "VSSFlowAddSoundToVideo": "Add Sound to Video (VSSFlow)",
    "VSSFlowAudioEdit": "Edit Existing Audio (VSSFlow)",
    "VSSFlowPickTake": "Pick Take (VSSFlow)",
}


def load_pack(name: str = "vssflow_pack_under_test") -> Any:
    """Import the repository as ComfyUI does (``custom_nodes/<pack>/__init__.py`` by file location, its own name)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "__init__.py",
                                                  submodule_search_locations=[str(REPO_ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def pack_nodes(pack: Any | None = None) -> dict[str, type]:
    """The pack's node classes by node id, as ComfyUI registers them: through ``comfy_entrypoint``."""
    pack = pack or load_pack()
    extension = asyncio.run(pack.comfy_entrypoint())
    return {cls.GET_SCHEMA().node_id: cls for cls in asyncio.run(extension.get_node_list())}


def node_def(cls: type) -> dict:
    """The ``/object_info`` entry ComfyUI builds for a V3 node class (from its schema)."""
    return cls.GET_NODE_INFO_V1()


def pack_node_defs(pack: Any | None = None) -> dict[str, dict]:
    return {name: node_def(cls) for name, cls in pack_nodes(pack).items()}


# --------------------------------------------------------------------------------------------------------------------
# Inputs of a definition
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str  # "INT", "COMBO", "IMAGE", ...
    options: Mapping[str, Any]
    choices: tuple | None  # combo values
    optional: bool

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES and not self.options.get("forceInput", False)

    @property
    def extra_values(self) -> int:
        """Values the frontend stores after this widget's own."""
        if self.type == "INT" and self.options.get("control_after_generate"):
            return 1
        if self.options.get("audio_upload"):
            return 2
        if self.options.get("image_upload") or self.options.get("video_upload"):
            return 1
        return 0


def input_specs(definition: Mapping) -> list[InputSpec]:
    """Required then optional inputs, in declaration order (hidden ones are not inputs of the graph)."""
    specs = []
    for section in ("required", "optional"):
        entries = definition["input"].get(section, {}) or {}
        order = (definition.get("input_order") or {}).get(section) or list(entries)
        for name in order:
            raw = entries[name]
            kind, options = raw[0], (raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {})
            choices = None
            if isinstance(kind, (list, tuple)):
                kind, choices = "COMBO", tuple(kind)
            elif kind == "COMBO":
                choices = tuple(options.get("options", ()))
            specs.append(InputSpec(name, kind, options, choices, section == "optional"))
    return specs


def widget_layout(definition: Mapping) -> list[InputSpec | None]:
    """One entry per ``widgets_values`` slot: the widget input it belongs to, or None for a frontend-only value."""
    layout: list[InputSpec | None] = []
    for spec in input_specs(definition):
        if spec.is_widget:
            layout.append(spec)
            layout.extend([None] * spec.extra_values)
    return layout


def socket_inputs(definition: Mapping) -> list[InputSpec]:
    return [spec for spec in input_specs(definition) if not spec.is_widget]


def types_match(a: str, b: str) -> bool:
    if a == "*" or b == "*":
        return True
    return bool(set(a.split(",")) & set(b.split(",")))


# --------------------------------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------------------------------


def load_workflow(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def workflow_files() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.json"))


def blueprint_files() -> list[Path]:
    return sorted(BLUEPRINTS_DIR.glob("*.json"))


def v1_fixture_files() -> list[Path]:
    return sorted(V1_FIXTURES_DIR.glob("*.json"))


def check_workflow(workflow: Mapping, defs: Mapping[str, Mapping], *, known_only: bool = True,
                   check_combos: Iterable[str] = (), saved_earlier: bool = False) -> list[str]:
    """Problems of a UI-format workflow against node definitions ``defs`` (empty list: fine).

    ``known_only``: node types missing from ``defs`` are problems (False: they are skipped, their links still checked
    against the types the workflow declares).  ``check_combos``: node types whose combo values must be among the
    definition's choices (file lists depend on the machine, so they are not checked by default).
    ``saved_earlier``: the workflow was saved by an earlier version of the nodes, so widgets added since, at the end
    of the optional inputs, may have no value (the frontend gives them their defaults).
    """
    problems: list[str] = []
    nodes = {node["id"]: node for node in workflow["nodes"]}
    check_combos = set(check_combos)
    for key in ("nodes", "links", "version"):
        if key not in workflow:
            problems.append(f"no '{key}' key: not a UI-format workflow")
    for node in workflow["nodes"]:
        where = f"node {node['id']} ({node['type']})"
        if node["type"] in VIRTUAL_NODES:
            continue
        definition = defs.get(node["type"])
        if definition is None:
            if known_only:
                problems.append(f"{where}: unknown node type")
            continue
        layout = widget_layout(definition)
        values = node.get("widgets_values") or []
        if isinstance(values, dict):
            problems.append(f"{where}: widgets_values is a dict; the shared format is positional")
            continue
        if saved_earlier and len(values) < len(layout) and all(s is None or s.optional for s in layout[len(values):]):
            layout = layout[:len(values)]
        if len(values) != len(layout):
            problems.append(f"{where}: {len(values)} widget values, the definition has {len(layout)} "
                            f"({[s.name if s else '(frontend)' for s in layout]})")
        else:
            for spec, value in zip(layout, values):
                if spec is None:
                    continue
                problems.extend(f"{where}: {p}" for p in _value_problems(spec, value, node["type"] in check_combos))
        sockets = {spec.name: spec for spec in socket_inputs(definition)}
        for slot in node.get("inputs", []):
            spec = sockets.get(slot["name"])
            if spec is None and not slot.get("widget"):
                problems.append(f"{where}: input '{slot['name']}' is not a socket of the definition")
            elif spec is not None and not types_match(slot["type"], spec.type):
                problems.append(f"{where}: input '{slot['name']}' declared {slot['type']}, the definition says "
                                f"{spec.type}")
        for spec in sockets.values():
            linked = any(s["name"] == spec.name and s.get("link") is not None for s in node.get("inputs", []))
            if not spec.optional and not linked:
                problems.append(f"{where}: required input '{spec.name}' is not connected")
        for index, slot in enumerate(node.get("outputs", [])):
            if index >= len(definition["output"]):
                problems.append(f"{where}: output {index} ('{slot['name']}') does not exist")
            elif not types_match(slot["type"], definition["output"][index]):
                problems.append(f"{where}: output {index} declared {slot['type']}, the definition says "
                                f"{definition['output'][index]}")

    for link in workflow["links"]:
        link_id, src, src_slot, dst, dst_slot, kind = link[:6]
        where = f"link {link_id}"
        if src not in nodes or dst not in nodes:
            problems.append(f"{where}: connects a node that does not exist ({src} -> {dst})")
            continue
        outputs, inputs = nodes[src].get("outputs", []), nodes[dst].get("inputs", [])
        if src_slot >= len(outputs) or dst_slot >= len(inputs):
            problems.append(f"{where}: slot out of range ({src}:{src_slot} -> {dst}:{dst_slot})")
            continue
        out_type, in_slot = outputs[src_slot]["type"], inputs[dst_slot]
        if link_id not in (outputs[src_slot].get("links") or []) or in_slot.get("link") != link_id:
            problems.append(f"{where}: not recorded on both of its ends")
        src_def, dst_def = defs.get(nodes[src]["type"]), defs.get(nodes[dst]["type"])
        if src_def is not None and src_slot < len(src_def["output"]):
            out_type = src_def["output"][src_slot]
        in_type = in_slot["type"]
        if dst_def is not None:
            spec = {s.name: s for s in input_specs(dst_def)}.get(in_slot["name"])
            if spec is not None:
                in_type = spec.type
        for declared in (kind, in_slot["type"]):
            if not types_match(declared, out_type) or not types_match(out_type, in_type):
                problems.append(f"{where}: {nodes[src]['type']} output {src_slot} ({out_type}) -> "
                                f"{nodes[dst]['type']} input '{in_slot['name']}' ({in_type}), link says {declared}")
                break
    return problems


def _value_problems(spec: InputSpec, value: Any, check_choices: bool) -> list[str]:
    name, opts = spec.name, spec.options
    if spec.type == "INT" and (not isinstance(value, int) or isinstance(value, bool)):
        return [f"'{name}' = {value!r} is not an integer"]
    if spec.type == "FLOAT" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        return [f"'{name}' = {value!r} is not a number"]
    if spec.type == "BOOLEAN" and not isinstance(value, bool):
        return [f"'{name}' = {value!r} is not a boolean"]
    if spec.type == "STRING" and not isinstance(value, str):
        return [f"'{name}' = {value!r} is not a string"]
    if spec.type in ("INT", "FLOAT"):
        if "min" in opts and value < opts["min"] or "max" in opts and value > opts["max"]:
            return [f"'{name}' = {value!r} outside [{opts.get('min')}, {opts.get('max')}]"]
    if spec.type == "COMBO" and check_choices and spec.choices is not None and value not in spec.choices:
        return [f"'{name}' = {value!r} is not one of {list(spec.choices)}"]
    return []


# --------------------------------------------------------------------------------------------------------------------
# UI format -> API format
# --------------------------------------------------------------------------------------------------------------------


def to_api(workflow: Mapping, defs: Mapping[str, Mapping],
           overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict:
    """The API-format prompt of a UI-format workflow.

    ``overrides`` replace widget values by node type (``{"LoadVideo": {"file": "clip.mp4"}}``) or by node id
    (``{"12": {"seed": 3}}``).  Muted and bypassed nodes (mode != 0) and frontend-only nodes are left out.
    """
    overrides = overrides or {}
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = {link[0]: link for link in workflow["links"]}
    prompt: dict[str, dict] = {}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL_NODES or node.get("mode", MODE_ACTIVE) != MODE_ACTIVE:
            continue
        definition = defs[node["type"]]
        inputs: dict[str, Any] = {}
        for spec, value in zip(widget_layout(definition), node.get("widgets_values") or []):
            if spec is not None:
                inputs[spec.name] = value
        for slot in node.get("inputs", []):
            if slot.get("link") is None:
                continue
            _, src, src_slot, *_ = links[slot["link"]]
            if nodes[src]["type"] in VIRTUAL_NODES:
                raise ValueError(f"node {node['id']} input '{slot['name']}' comes from a frontend-only node")
            inputs[slot["name"]] = [str(src), src_slot]
        for key in (node["type"], str(node["id"])):
            inputs.update(overrides.get(key, {}))
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title") or node["type"]}}
    return prompt


def nodes_of_type(prompt: Mapping[str, Mapping], class_type: str) -> list[str]:
    return [node_id for node_id, node in prompt.items() if node["class_type"] == class_type]


# --------------------------------------------------------------------------------------------------------------------
# Subgraph blueprints
# --------------------------------------------------------------------------------------------------------------------

SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = -10, -20  # the ids the frontend gives a subgraph's input and output nodes


def blueprint_as_workflow(blueprint: Mapping, sources: Mapping[str, tuple[dict, int]] | None = None) -> dict:
    """The inside of a subgraph blueprint as a plain UI-format workflow (what the frontend runs when the blueprint's
    node is queued): its nodes, and its links in the workflow's list form. ``sources`` feeds the subgraph's inputs by
    name from extra nodes ``(node, output slot)``, which are added; links to the subgraph's outputs are dropped."""
    (subgraph,) = blueprint["definitions"]["subgraphs"]
    nodes = json.loads(json.dumps(subgraph["nodes"]))
    by_id = {node["id"]: node for node in nodes}
    input_names = [item["name"] for item in subgraph["inputs"]]
    links = []
    for link in subgraph["links"]:
        src, dst = link["origin_id"], link["target_id"]
        if dst == SUBGRAPH_OUTPUT:
            by_id[src]["outputs"][link["origin_slot"]]["links"].remove(link["id"])
            continue
        if src == SUBGRAPH_INPUT:
            name = input_names[link["origin_slot"]]
            if not sources or name not in sources:
                by_id[dst]["inputs"][link["target_slot"]]["link"] = None
                continue
            source, slot = sources[name]
            if source["id"] not in by_id:
                nodes.append(source)
                by_id[source["id"]] = source
            source["outputs"][slot].setdefault("links", []).append(link["id"])
            src = source["id"]
            link = {**link, "origin_slot": slot}
        links.append([link["id"], src, link["origin_slot"], dst, link["target_slot"], link["type"]])
    return {"last_node_id": max(by_id), "last_link_id": max((link[0] for link in links), default=0), "nodes": nodes,
            "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4}
