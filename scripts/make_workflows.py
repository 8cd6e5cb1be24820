#!/usr/bin/env python
"""Write the shipped templates (UI-format workflows, each with a same-named .jpg thumbnail) into example_workflows/
and the modular graph as a subgraph blueprint into subgraphs/.

    .venv/bin/python scripts/make_workflows.py          # rewrite them
    .venv/bin/python scripts/make_workflows.py --check  # exit 1 if a workflow or blueprint differs from what this
                                                        # script writes, or a thumbnail is missing

Our nodes' sockets and widget order come from the pack's own definitions, so a workflow never disagrees with the
nodes; the few core nodes used are described here as ComfyUI 0.30.0's /object_info does (the integration tests check
them against the real server). Every template opens on the pack's own demo clips (the VideoLoader's demo_videos/
entries) or on frames made in the graph, so it runs as shipped, with nothing to copy into the input folder. The file
name is the title the template browser shows; the thumbnail is a frame of the template's clip.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "tests"), str(REPO_ROOT)]

from workflow_tools import (BLUEPRINTS_DIR, EXAMPLES_DIR, check_workflow, pack_node_defs,  # noqa: E402
                            socket_inputs, widget_layout)
from vssflow_core.config import WINDOWS  # noqa: E402
from vssflow_core.flow.guidance import OFFICIAL_GUIDANCE_SCALE  # noqa: E402
from vssflow_core.flow.solvers import (DEFAULT_FIXED_STEPS, DEFAULT_SCHEDULE, DEFAULT_SOLVER,  # noqa: E402
                                       OFFICIAL_ATOL, OFFICIAL_RTOL)

MAX_SEC = WINDOWS.max_duration_sec  # the VideoLoader's max_duration widget
DEMO_DIR = REPO_ROOT / "demo_videos"
DEMO_FACTS = json.loads((DEMO_DIR / "examples.json").read_text())  # what each demo clip shows, and when
NO_FILE = "(none)"
THUMBNAIL_SIZE = (320, 180)
# Canvas pixels the opening view fits the graph into (a laptop screen less the menus), at no less than READABLE_SCALE.
VIEWPORT = (1200, 680)
READABLE_SCALE = 0.7  # LiteGraph stops drawing text below 0.6
BLUEPRINT_NAME = "Add Sound to Video (VSSFlow graph)"

CORE_DEFS = {
    "EmptyImage": {"input": {"required": {"width": ["INT", {}], "height": ["INT", {}], "batch_size": ["INT", {}],
                                          "color": ["INT", {}]}},
                   "output": ["IMAGE"], "output_name": ["IMAGE"]},
    "CreateVideo": {"input": {"required": {"images": ["IMAGE", {}], "fps": ["FLOAT", {}]},
                              "optional": {"audio": ["AUDIO", {}], "bit_depth": ["INT", {}]}},
                    "output": ["VIDEO"], "output_name": ["VIDEO"]},
}

OWN_CLIP = ("To use your own clip, put it in ComfyUI's input folder and pick it in the loader's file list, or connect "
            "any VIDEO (Load Video, a video generator) to the loader's video input and set file to (none).")
RESULT = ("The result is saved as output/vssflow/<name>_00001_.mp4 (picture copied unchanged) and .wav (16 kHz), and "
          "shown on Audio Mux; Vocoder Decode plays each take.")
MODELS = ("Models: 'auto' runs the small demo model shipped with the pack (trained on synthetic scenes). For the full "
          "model, put the files in models/vssflow/ (see the README); download on the Components Loader fetches the "
          "public components, and its tooltip says their licences.")


def _defaults(rest: list) -> list:
    """The values of widgets a template leaves at their defaults: optional ones at the end of a node's widgets
    (inputs added to a node after the template was designed)."""
    if not all(spec is None or spec.optional for spec in rest):
        return []  # a required widget without a value: reported by the caller
    values = []
    for spec in rest:
        if spec is None:  # the frontend's value after an INT with control_after_generate
            values.append("fixed")
        elif "default" in spec.options:
            values.append(spec.options["default"])
        else:
            values.append(spec.choices[0] if spec.choices else None)
    return values


class Graph:
    def __init__(self, defs: dict[str, dict]):
        self.defs = defs
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def add(self, kind: str, pos: tuple[int, int], widgets: list, *, title: str | None = None,
            size: tuple[int, int] | None = None) -> dict:
        node_id = len(self.nodes) + 1
        node = {"id": node_id, "type": kind, "pos": list(pos), "size": list(size or (340, 120)), "flags": {},
                "order": node_id - 1, "mode": 0, "inputs": [], "outputs": [],
                "properties": {"Node name for S&R": kind}, "widgets_values": widgets}
        if kind == "Note":
            node.update(size=list(size or (340, 220)), properties={}, color="#432", bgcolor="#653")
        else:
            definition = self.defs[kind]
            node["inputs"] = [{"name": s.name, "type": s.type, "link": None} for s in socket_inputs(definition)]
            node["outputs"] = [{"name": name, "type": kind_, "links": []}
                               for kind_, name in zip(definition["output"], definition["output_name"])]
            layout = widget_layout(definition)
            node["widgets_values"] = widgets = [*widgets, *_defaults(layout[len(widgets):])]
            if len(widgets) != len(layout):
                raise ValueError(f"{kind}: {len(widgets)} widget values, expected "
                                 f"{[s.name if s else '(frontend)' for s in layout]}")
        if title:
            node["title"] = title
        self.nodes.append(node)
        return node

    def connect(self, src: dict, output: str | int, dst: dict, input_name: str) -> None:
        slot = output if isinstance(output, int) else [o["name"] for o in src["outputs"]].index(output)
        dst_slot = [i["name"] for i in dst["inputs"]].index(input_name)
        link_id = len(self.links) + 1
        kind = src["outputs"][slot]["type"]
        self.links.append([link_id, src["id"], slot, dst["id"], dst_slot, kind])
        src["outputs"][slot]["links"].append(link_id)
        dst["inputs"][dst_slot]["link"] = link_id

    def view(self) -> dict:
        """``extra.ds`` that opens on the whole graph at a zoom where text is drawn."""
        left = min(n["pos"][0] for n in self.nodes)
        top = min(n["pos"][1] for n in self.nodes)
        right = max(n["pos"][0] + n["size"][0] for n in self.nodes)
        bottom = max(n["pos"][1] + n["size"][1] for n in self.nodes)
        scale = min(1.0, VIEWPORT[0] / (right - left + 80), VIEWPORT[1] / (bottom - top + 80))
        scale = max(READABLE_SCALE, round(scale * 20) / 20)
        margin = 40
        return {"scale": scale, "offset": [round(margin / scale - left), round(margin / scale - top)]}

    def workflow(self) -> dict:
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": [], "config": {}, "extra": {"ds": self.view()}, "version": 0.4}


# Columns of the layout: sources (when there are some), then loaders, video and words, sampling, the result.
SOURCES, LOADERS, INPUTS, SAMPLING, RESULT_COL = -370, 0, 370, 740, 1110


def _loader(g: Graph, file: str = NO_FILE, frame_rate: float = 0.0) -> dict:
    return g.add("VSSFlowVideoLoader", (INPUTS, 0), [file, frame_rate, MAX_SEC], size=(340, 210))


def _pipeline(g: Graph, video_loader: dict, *, phonemes: dict | None = None,
              mux_video: tuple[dict, str] | None = None, prefix: str, seed: int, control: str = "randomize") -> None:
    """Loaders, encoder, sampler, decoder and mux after ``video_loader``."""
    ckpt = g.add("VSSFlowCheckpointLoader", (LOADERS, 250), ["auto", "auto", "float32"], size=(340, 130))
    comps = g.add("VSSFlowComponentsLoader", (LOADERS, 410), ["auto", "auto", "auto", "auto", "auto", False, "auto",
                                                             "auto"], size=(340, 260))
    encoder = g.add("VSSFlowVisualEncoder", (INPUTS, 540), [], size=(340, 80))
    sampler = g.add("VSSFlowSampler", (SAMPLING, 0), [seed, control, DEFAULT_FIXED_STEPS, OFFICIAL_GUIDANCE_SCALE,
                                                      DEFAULT_SOLVER, 1, DEFAULT_SCHEDULE, OFFICIAL_ATOL,
                                                      OFFICIAL_RTOL], size=(340, 400))
    decode = g.add("VSSFlowVocoderDecode", (SAMPLING, 440), [], size=(340, 180))
    mux = g.add("VSSFlowAudioMux", (RESULT_COL, 0), [prefix, False, 1.0, 1.0], size=(420, 620))
    g.connect(comps, "vssflow_components", encoder, "vssflow_components")
    g.connect(video_loader, "vssflow_video", encoder, "vssflow_video")
    g.connect(ckpt, "vssflow_model", sampler, "vssflow_model")
    g.connect(comps, "vssflow_components", sampler, "vssflow_components")
    g.connect(encoder, "visual_features", sampler, "visual_features")
    if phonemes is not None:
        g.connect(phonemes, "phonemes", sampler, "phonemes")
    g.connect(comps, "vssflow_components", decode, "vssflow_components")
    g.connect(sampler, "latent", decode, "latent")
    src, output = mux_video or (video_loader, "video")
    g.connect(src, output, mux, "video")
    g.connect(decode, "audio", mux, "audio")


def _tokenizer(g: Graph, video_loader: dict, transcript: str, start: float, end: float, mode: str = "auto") -> dict:
    node = g.add("VSSFlowPhonemeTokenizer", (INPUTS, 240), [transcript, start, end, mode], size=(340, 270))
    g.connect(video_loader, "duration", node, "duration")
    return node


def _note(g: Graph, text: str, height: int = 220) -> None:
    g.add("Note", (LOADERS, 0), [text], size=(340, height))


def sound_effects(defs):
    g = Graph(defs)
    _note(g, "Sound effects for a silent video (here the demo clip of a bouncing ball), of any length: past 10 s "
             "it is generated in overlapping windows.\n\n" + OWN_CLIP + "\n\n" + RESULT + "\n\n" + MODELS)
    loader = _loader(g, "demo_videos/bouncing.mp4")
    _pipeline(g, loader, prefix="vssflow/sound_effects", seed=0)
    return g.workflow(), "bouncing.mp4"


def speech_only(defs):
    talking = DEMO_FACTS["talking.mp4"]
    g = Graph(defs)
    _note(g, "Speech for a video of someone talking: the transcript is spoken between speech_start and speech_end "
             "(0 = the end of the clip). English text is converted to phonemes offline; ARPAbet ('HH AH0 L OW1') "
             "is taken as is.\n\nA voice to imitate: connect a Load Audio to the sampler's speaker_reference (needs "
             "the full model and its RawNet3 speaker encoder; the demo model has none).\n\n" + OWN_CLIP)
    loader = _loader(g, "demo_videos/talking.mp4")
    tokens = _tokenizer(g, loader, talking["transcript"], round(talking["speech_start"], 2),
                        round(talking["speech_end"], 2))
    _pipeline(g, loader, phonemes=tokens, prefix="vssflow/speech", seed=7, control="fixed")
    return g.workflow(), "talking.mp4"


def dub_from_subtitles(defs):
    talking = DEMO_FACTS["talking.mp4"]
    start, end = round(talking["speech_start"], 2), round(talking["speech_end"], 2)
    words = talking["transcript"].rstrip(".").split()
    middle = round((start + end) / 2, 2)
    half = len(words) // 2
    rows = f"{start}-{middle}: {' '.join(words[:half])}\n{middle}-{end}: {' '.join(words[half:])}"
    g = Graph(defs)
    _note(g, "Dub a clip from subtitles: the Dialogue node speaks every line at its own time, from one "
             "'start-end [voice]: text' row per line, or from an .srt / .vtt file put in ComfyUI's input folder "
             "(pick it as subtitle_file and clear the rows). Voices come from [name] in a row, <v Name> in WebVTT "
             "or a NAME: prefix in SRT; connect a recording per voice (voice_N and its name; needs the full model's "
             "RawNet3). The Dialogue output also goes to the Visual Encoder, so that no window seam of a long clip "
             "cuts a line. speech_only on the sampler keeps the speech alone.\n\n" + OWN_CLIP, height=300)
    loader = _loader(g, "demo_videos/talking.mp4")
    dialogue = g.add("VSSFlowDialogue", (INPUTS, 240), [rows, "(none)", "auto", "", "", ""], size=(340, 270))
    g.connect(loader, "duration", dialogue, "duration")
    _pipeline(g, loader, phonemes=dialogue, prefix="vssflow/dubbed", seed=7, control="fixed")
    encoder = next(n for n in g.nodes if n["type"] == "VSSFlowVisualEncoder")
    g.connect(dialogue, "phonemes", encoder, "phonemes")
    return g.workflow(), "talking.mp4"


def speech_and_sound(defs):
    g = Graph(defs)
    _note(g, "Speech and sound effects together: the words fall between speech_start and speech_end, and VSSFlow "
             "makes the sounds of what is seen around them, in one pass. Turn on mix_original in Audio Mux to keep "
             "the video's own sound under the new track.\n\n" + OWN_CLIP)
    loader = _loader(g, "demo_videos/bouncing.mp4")
    tokens = _tokenizer(g, loader, "Look out, the ball is bouncing!", 0.5, 2.5)
    _pipeline(g, loader, phonemes=tokens, prefix="vssflow/speech_and_sound", seed=42)
    return g.workflow(), "bouncing.mp4"


def speech_without_video(defs):
    g = Graph(defs)
    _note(g, "Speech without a video: a black clip made of solid frames stands in for the picture. Its length is "
             "batch_size / frame_rate (here 75 frames at 25 fps = 3 s). The saved mp4 shows the black frames with "
             "the speech; the wav holds the speech alone.")
    frames = g.add("EmptyImage", (SOURCES, 0), [64, 64, 75, 0], title="Black frames (75 = 3 s at 25 fps)",
                   size=(340, 170))
    loader = _loader(g, frame_rate=25.0)
    g.connect(frames, "IMAGE", loader, "images")
    tokens = _tokenizer(g, loader, "HH AH0 L OW1 , W ER1 L D", 0.25, 0.0, "arpabet")
    _pipeline(g, loader, phonemes=tokens, prefix="vssflow/speech_without_video", seed=3)
    return g.workflow(), None


def from_generated_video(defs):
    g = Graph(defs)
    _note(g, "Sound for a video another node generated: any VIDEO works (Create Video here; a video model, a Veo "
             "node or another pack's output the same way). Replace Empty Image + Create Video with your generator; "
             "its frame rate travels with the VIDEO.")
    frames = g.add("EmptyImage", (SOURCES, 0), [64, 48, 48, 3368652], title="Stand-in for a generator",
                   size=(340, 170))
    create = g.add("CreateVideo", (SOURCES, 210), [24.0, 8], size=(340, 120))
    g.connect(frames, "IMAGE", create, "images")
    loader = _loader(g)
    g.connect(create, "VIDEO", loader, "video")
    _pipeline(g, loader, prefix="vssflow/generated_video", seed=11, mux_video=(create, "VIDEO"))
    return g.workflow(), 0x3366CC


def one_node(defs):
    g = Graph(defs)
    _note(g, "Add Sound to Video does the whole job in one node: sound effects, and speech when you type a "
             "transcript, with the default settings. It shows the result; connect Save Video to keep it.\n\n"
             + OWN_CLIP + "\n\nFor the solver, the speech window, a speaker or several takes, open the other "
             "templates, or add the 'Add Sound to Video (VSSFlow graph)' blueprint and edit it.", height=300)
    loader = _loader(g, "demo_videos/bouncing.mp4")
    node = g.add("VSSFlowAddSoundToVideo", (SAMPLING, 0), ["", 0, "randomize"], size=(420, 560))
    g.connect(loader, "video", node, "video")
    return g.workflow(), "bouncing.mp4"


# Two more columns for a second pass over the first one's audio (the editing templates).
EDIT_COL, SECOND_SAMPLING, SECOND_RESULT = 1480, 1850, 2220


def _second_pass(g: Graph, first_audio: tuple[dict, str], video_loader: dict, *, regenerate: str, strength: float,
                 seed: int, prefix: str, loudness: str) -> None:
    """Edit Existing Audio over ``first_audio``, a second sampler and decoder, and the mux, reusing the first
    pass's loaders and visual features."""
    by_type = {n["type"]: n for n in g.nodes}
    encoder, ckpt = by_type["VSSFlowVisualEncoder"], by_type["VSSFlowCheckpointLoader"]
    comps = by_type["VSSFlowComponentsLoader"]
    edit = g.add("VSSFlowAudioEdit", (EDIT_COL, 0), [regenerate, strength, 30.0], size=(340, 230))
    sampler = g.add("VSSFlowSampler", (SECOND_SAMPLING, 0), [seed, "fixed", DEFAULT_FIXED_STEPS,
                                                             OFFICIAL_GUIDANCE_SCALE, DEFAULT_SOLVER, 1,
                                                             DEFAULT_SCHEDULE, OFFICIAL_ATOL, OFFICIAL_RTOL],
                    size=(340, 420), title="FlowDiT Sampler (the edit)")
    decode = g.add("VSSFlowVocoderDecode", (SECOND_SAMPLING, 460), [], size=(340, 180))
    mux = g.add("VSSFlowAudioMux", (SECOND_RESULT, 0), [prefix, False, 1.0, 1.0, loudness], size=(420, 720))
    g.connect(*first_audio, edit, "audio")
    g.connect(encoder, "visual_features", edit, "visual_features")
    g.connect(ckpt, "vssflow_model", sampler, "vssflow_model")
    g.connect(comps, "vssflow_components", sampler, "vssflow_components")
    g.connect(encoder, "visual_features", sampler, "visual_features")
    g.connect(edit, "audio_edit", sampler, "audio_edit")
    g.connect(comps, "vssflow_components", decode, "vssflow_components")
    g.connect(sampler, "latent", decode, "latent")
    g.connect(video_loader, "video", mux, "video")
    g.connect(decode, "audio", mux, "audio")


def _first_pass(g: Graph, video_loader: dict, seed: int, takes: int) -> dict:
    """The first pass of an editing template: generation up to Vocoder Decode (its mux removed)."""
    _pipeline(g, video_loader, prefix="vssflow/first_pass", seed=seed, control="fixed")
    mux = next(n for n in g.nodes if n["type"] == "VSSFlowAudioMux")
    g.nodes.remove(mux)
    g.links = [link for link in g.links if link[3] != mux["id"]]
    for node in g.nodes:
        for output in node["outputs"]:
            output["links"] = [i for i in output["links"] if any(link[0] == i for link in g.links)]
    for node in g.nodes:  # ids stay 1..n in order (the frontend's last_node_id)
        if node["id"] > mux["id"]:
            raise ValueError("the mux must be the last node of the first pass")
    sampler = next(n for n in g.nodes if n["type"] == "VSSFlowSampler")
    sampler["widgets_values"][5] = takes
    return next(n for n in g.nodes if n["type"] == "VSSFlowVocoderDecode")


def fix_a_range(defs):
    g = Graph(defs)
    _note(g, "Fix a range: keep a track and generate only 2.0-3.5 s of it again. The first pass makes two takes "
             "(Vocoder Decode plays each; Pick Take chooses one and shows its seed); Edit Existing Audio keeps that "
             "take sample for sample outside the range, and the second sampler generates the range to fit what is "
             "around it. Several ranges: 2-3.5, 5-6.\n\nYour own track: connect a Load Audio (a previous output, or "
             "any recording of this clip) to Edit Existing Audio instead of Pick Take.\n\n" + MODELS, height=330)
    loader = _loader(g, "demo_videos/bouncing.mp4")
    decode = _first_pass(g, loader, seed=5, takes=2)
    pick = g.add("VSSFlowPickTake", (EDIT_COL, 280), [2], size=(340, 200))
    g.connect(decode, "audio", pick, "audio")
    _second_pass(g, (pick, "audio"), loader, regenerate="2.0-3.5", strength=1.0, seed=21,
                 prefix="vssflow/fixed_range", loudness="off")
    return g.workflow(), "bouncing.mp4"


def restyle_existing_audio(defs):
    g = Graph(defs)
    _note(g, "Restyle existing audio: the whole clip is generated again starting from a track. strength 0 keeps the "
             "track as the codec reproduces it, 1 generates afresh with the same seed; 0.6 keeps its timing and "
             "changes its texture. The Audio Mux delivers it at streaming loudness (-14 LUFS, true peak under "
             "-1 dBTP).\n\nYour own track: connect a Load Audio to Edit Existing Audio instead of the first pass's "
             "Vocoder Decode, and clear its regenerate field to restyle the whole clip.", height=330)
    loader = _loader(g, "demo_videos/bouncing.mp4")
    decode = _first_pass(g, loader, seed=8, takes=1)
    _second_pass(g, (decode, "audio"), loader, regenerate="", strength=0.6, seed=8,
                 prefix="vssflow/restyled", loudness="streaming (-14 LUFS)")
    return g.workflow(), "bouncing.mp4"


# file name (the title in the template browser) -> builder
TEMPLATES = {
    "Sound effects for a video": sound_effects,
    "Speech for a talking video": speech_only,
    "Speech and sound effects": speech_and_sound,
    "Dub a clip from subtitles": dub_from_subtitles,
    "Speech without a video": speech_without_video,
    "Sound for a generated video": from_generated_video,
    "Add sound in one node": one_node,
    "Fix a range": fix_a_range,
    "Restyle existing audio": restyle_existing_audio,
}


# --------------------------------------------------------------------------------------------------------------------
# Subgraph blueprint: the modular graph as one node, with its own inside to open and edit
# --------------------------------------------------------------------------------------------------------------------

INPUT_NODE, OUTPUT_NODE = -10, -20  # the ids the frontend gives a subgraph's input and output nodes


def _stable_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://github.com/vssflow/ComfyUI-VSSFlow/{name}"))


def blueprint(defs) -> dict:
    """The frontend's subgraph blueprint format: one node of the subgraph's type, the subgraph in
    ``definitions.subgraphs``. Its input is a VIDEO; its outputs the video with sound and the sound alone; the
    transcript, the speech window and the seed are shown on the node."""
    g = Graph(defs)
    loader = _loader(g)
    tokens = _tokenizer(g, loader, "", 0.0, 0.0)
    _pipeline(g, loader, phonemes=tokens, prefix="vssflow/VSSFlow", seed=0)
    by_type = {n["type"]: n for n in g.nodes}
    mux, decode = by_type["VSSFlowAudioMux"], by_type["VSSFlowVocoderDecode"]
    links = [{"id": i, "origin_id": s, "origin_slot": ss, "target_id": d, "target_slot": ds, "type": t}
             for i, s, ss, d, ds, t in g.links]
    sg_id = _stable_id(BLUEPRINT_NAME)

    def boundary(name: str, kind: str, link: dict) -> dict:
        return {"id": _stable_id(f"{BLUEPRINT_NAME}/{name}"), "name": name, "type": kind, "linkIds": [link["id"]],
                "localized_name": name, "pos": [0, 0]}

    video_in = {"id": len(links) + 1, "origin_id": INPUT_NODE, "origin_slot": 0, "target_id": loader["id"],
                "target_slot": [i["name"] for i in loader["inputs"]].index("video"), "type": "VIDEO"}
    loader["inputs"][video_in["target_slot"]]["link"] = video_in["id"]
    outs = []
    for slot, (node, output) in enumerate(((mux, "video"), (decode, "audio"))):
        index = [o["name"] for o in node["outputs"]].index(output)
        link = {"id": len(links) + 2 + slot, "origin_id": node["id"], "origin_slot": index,
                "target_id": OUTPUT_NODE, "target_slot": slot, "type": node["outputs"][index]["type"]}
        node["outputs"][index]["links"].append(link["id"])
        outs.append(link)
    links += [video_in, *outs]
    sampler = by_type["VSSFlowSampler"]
    promoted = [[str(tokens["id"]), "transcript"], [str(tokens["id"]), "speech_start"],
                [str(tokens["id"]), "speech_end"], [str(sampler["id"]), "seed"]]
    subgraph = {
        "id": sg_id, "version": 1,
        "state": {"lastGroupId": 0, "lastNodeId": len(g.nodes), "lastLinkId": len(links), "lastRerouteId": 0},
        "revision": 0, "config": {}, "name": BLUEPRINT_NAME,
        "inputNode": {"id": INPUT_NODE, "bounding": [-220, 40, 120, 60]},
        "outputNode": {"id": OUTPUT_NODE, "bounding": [1600, 40, 120, 80]},
        "inputs": [boundary("video", "VIDEO", video_in)],
        "outputs": [boundary("video", "VIDEO", outs[0]), boundary("audio", "AUDIO", outs[1])],
        "widgets": [], "nodes": g.nodes, "groups": [], "links": links, "extra": {},
        "category": "Audio/VSSFlow",
        "description": "VSSFlow's modular graph (loaders, VideoLoader, Phoneme Tokenizer, Visual Encoder, FlowDiT "
                       "Sampler, Vocoder Decode, Audio Mux) as one node: a VIDEO in, the video with its new sound "
                       "and the sound alone out. Open it to change the solver, the speaker or the models.",
    }
    node = {"id": len(g.nodes) + 1, "type": sg_id, "pos": [0, 0], "size": [360, 300], "flags": {}, "order": 0,
            "mode": 0, "inputs": [{"name": "video", "type": "VIDEO", "link": None, "localized_name": "video"}],
            "outputs": [{"name": "video", "type": "VIDEO", "links": [], "localized_name": "video"},
                        {"name": "audio", "type": "AUDIO", "links": [], "localized_name": "audio"}],
            "properties": {"proxyWidgets": promoted}, "widgets_values": [], "title": BLUEPRINT_NAME}
    return {"revision": 0, "last_node_id": node["id"], "last_link_id": 0, "nodes": [node], "links": [],
            "version": 0.4, "definitions": {"subgraphs": [subgraph]},
            "extra": {"BlueprintDescription": subgraph["description"],
                      "BlueprintSearchAliases": ["foley", "video to audio", "dubbing", "lip sync", "text to speech"]}}


# --------------------------------------------------------------------------------------------------------------------
# Thumbnails
# --------------------------------------------------------------------------------------------------------------------


def _middle_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames[len(frames) // 2]


def thumbnail(picture: str | int | None) -> Image.Image:
    """A frame of the template's clip (a demo clip's middle frame, a solid colour, or black), with a sound wave
    drawn across its lower part."""
    if isinstance(picture, str):
        image = Image.fromarray(_middle_frame(DEMO_DIR / picture))
    else:
        color = picture or 0
        image = Image.new("RGB", (64, 36), ((color >> 16) & 255, (color >> 8) & 255, color & 255))
    image = image.convert("RGB").resize(THUMBNAIL_SIZE, Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(image)
    width, height = THUMBNAIL_SIZE
    base, amplitude = height * 0.8, height * 0.12
    x = np.arange(width)
    wave = np.sin(x / 4.0) * np.sin(np.pi * x / width) * (0.4 + 0.6 * np.abs(np.sin(x / 23.0)))
    draw.line(list(zip(x.tolist(), (base - amplitude * wave).tolist())), fill=(255, 210, 80), width=2)
    return image


# --------------------------------------------------------------------------------------------------------------------


def render() -> dict[Path, str]:
    """Every workflow file this script writes (path -> text), and the thumbnails' sources."""
    defs = {**CORE_DEFS, **pack_node_defs()}
    out = {}
    for name, build in TEMPLATES.items():
        workflow, _ = build(defs)
        problems = check_workflow(workflow, defs)
        if problems:
            raise SystemExit(f"{name}: " + "; ".join(problems))
        out[EXAMPLES_DIR / f"{name}.json"] = json.dumps(workflow, indent=2) + "\n"
    out[BLUEPRINTS_DIR / f"{BLUEPRINT_NAME}.json"] = json.dumps(blueprint(defs), indent=2) + "\n"
    return out


def thumbnails() -> dict[Path, Image.Image]:
    defs = {**CORE_DEFS, **pack_node_defs()}
    return {EXAMPLES_DIR / f"{name}.jpg": thumbnail(build(defs)[1]) for name, build in TEMPLATES.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        stale = [path for path, text in files.items()
                 if not path.is_file() or path.read_text(encoding="utf-8") != text]
        stale += [path for path in (EXAMPLES_DIR / f"{name}.jpg" for name in TEMPLATES) if not path.is_file()]
        extra = {p for p in EXAMPLES_DIR.iterdir() if p.is_file()} - set(files) - {
            EXAMPLES_DIR / f"{name}.jpg" for name in TEMPLATES}
        stale += sorted(extra)
        if stale:
            print("out of date (run scripts/make_workflows.py): "
                  + ", ".join(str(p.relative_to(REPO_ROOT)) for p in stale), file=sys.stderr)
            return 1
        return 0
    for folder in (EXAMPLES_DIR, BLUEPRINTS_DIR):
        folder.mkdir(exist_ok=True)
        for old in folder.iterdir():  # templates renamed or dropped since the last run
            if old.is_file() and old.suffix in (".json", ".jpg") and old not in files:
                old.unlink()
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    for path, image in thumbnails().items():
        image.save(path, format="JPEG", quality=85)
    print(f"wrote {len(TEMPLATES)} templates with thumbnails to {EXAMPLES_DIR.name}/ and the blueprint to "
          f"{BLUEPRINTS_DIR.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
