#!/usr/bin/env python
"""Write the shared workflows (UI format) into workflows/ and the same files into example_workflows/.

    .venv/bin/python scripts/make_workflows.py          # rewrite both folders
    .venv/bin/python scripts/make_workflows.py --check  # exit 1 if the files differ from what this script writes

Our nodes' sockets and widget order come from the pack's own definitions, so a workflow never disagrees with the
nodes; the few core nodes used are described here as ComfyUI 0.30.0's /object_info does (the integration tests check
them against the real server).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "tests"), str(REPO_ROOT)]

from workflow_tools import (EXAMPLES_DIR, WORKFLOWS_DIR, check_workflow,  # noqa: E402
                            pack_node_defs, socket_inputs, widget_layout)
from vssflow_core.config import WINDOWS  # noqa: E402
from vssflow_core.flow.guidance import OFFICIAL_GUIDANCE_SCALE  # noqa: E402
from vssflow_core.flow.solvers import (DEFAULT_FIXED_STEPS, DEFAULT_SCHEDULE, DEFAULT_SOLVER,  # noqa: E402
                                       OFFICIAL_ATOL, OFFICIAL_RTOL)

MAX_SEC = WINDOWS.max_duration_sec  # the VideoLoader's max_duration widget

CORE_DEFS = {
    "LoadVideo": {"input": {"required": {"file": ["COMBO", {"options": [], "video_upload": True}]}},
                  "output": ["VIDEO"], "output_name": ["VIDEO"]},
    "LoadAudio": {"input": {"required": {"audio": ["COMBO", {"options": [], "audio_upload": True}]}},
                  "output": ["AUDIO"], "output_name": ["AUDIO"]},
    "EmptyImage": {"input": {"required": {"width": ["INT", {}], "height": ["INT", {}], "batch_size": ["INT", {}],
                                          "color": ["INT", {}]}},
                   "output": ["IMAGE"], "output_name": ["IMAGE"]},
    "CreateVideo": {"input": {"required": {"images": ["IMAGE", {}], "fps": ["FLOAT", {}]},
                              "optional": {"audio": ["AUDIO", {}], "bit_depth": ["INT", {}]}},
                    "output": ["VIDEO"], "output_name": ["VIDEO"]},
}

SFX_NOTE = ("Sound effects for a silent video.\n\n1. Put the clip (any length: past 10 s it is generated in "
            "overlapping windows) in ComfyUI's input folder and pick it in Load Video.\n2. Model files go in "
            "models/vssflow/ (see the README); 'auto' finds them, and download fetches the public components.\n3. "
            "The result is saved as output/vssflow/<name>_00001_.mp4 (picture copied unchanged) and .wav (16 kHz), "
            "and previewed on Audio Mux.")


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
            node.update(size=list(size or (420, 220)), properties={}, color="#432", bgcolor="#653")
        else:
            definition = self.defs[kind]
            node["inputs"] = [{"name": s.name, "type": s.type, "link": None} for s in socket_inputs(definition)]
            node["outputs"] = [{"name": name, "type": kind_, "links": []}
                               for kind_, name in zip(definition["output"], definition["output_name"])]
            if len(widgets) != len(widget_layout(definition)):
                raise ValueError(f"{kind}: {len(widgets)} widget values, expected "
                                 f"{[s.name if s else '(frontend)' for s in widget_layout(definition)]}")
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

    def workflow(self) -> dict:
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": [], "config": {}, "extra": {"ds": {"scale": 0.75, "offset": [40, 40]}},
                "version": 0.4}


def _pipeline(g: Graph, video_loader: dict, *, phonemes: dict | None = None, speaker: dict | None = None,
              mux_video: tuple[dict, str] | None = None, prefix: str, seed: int, control: str = "randomize") -> None:
    """Loaders, encoder, sampler, decoder and mux after ``video_loader``."""
    ckpt = g.add("VSSFlowCheckpointLoader", (0, 420), ["auto", "auto", "float32"], size=(340, 130))
    comps = g.add("VSSFlowComponentsLoader", (0, 590), ["auto", "auto", "auto", "auto", "auto", False, "auto",
                                                        "auto"], size=(340, 250))
    encoder = g.add("VSSFlowVisualEncoder", (820, 80), [], size=(300, 80))
    sampler = g.add("VSSFlowSampler", (1180, 300), [seed, control, DEFAULT_FIXED_STEPS, OFFICIAL_GUIDANCE_SCALE,
                                                        DEFAULT_SOLVER, 1, DEFAULT_SCHEDULE, OFFICIAL_ATOL,
                                                        OFFICIAL_RTOL], size=(340, 330))
    decode = g.add("VSSFlowVocoderDecode", (1580, 300), [], size=(300, 80))
    mux = g.add("VSSFlowAudioMux", (1940, 200), [prefix, False, 1.0, 1.0], size=(420, 560))
    g.connect(comps, "vssflow_components", encoder, "vssflow_components")
    g.connect(video_loader, "vssflow_video", encoder, "vssflow_video")
    g.connect(ckpt, "vssflow_model", sampler, "vssflow_model")
    g.connect(comps, "vssflow_components", sampler, "vssflow_components")
    g.connect(encoder, "visual_features", sampler, "visual_features")
    if phonemes is not None:
        g.connect(phonemes, "phonemes", sampler, "phonemes")
    if speaker is not None:
        g.connect(speaker, "AUDIO", sampler, "speaker_reference")
    g.connect(comps, "vssflow_components", decode, "vssflow_components")
    g.connect(sampler, "latent", decode, "latent")
    src, output = mux_video or (video_loader, "video")
    g.connect(src, output, mux, "video")
    g.connect(decode, "audio", mux, "audio")


def _tokenizer(g: Graph, video_loader: dict, transcript: str, start: float, end: float, mode: str = "auto") -> dict:
    node = g.add("VSSFlowPhonemeTokenizer", (820, 260), [transcript, start, end, mode], size=(320, 260))
    g.connect(video_loader, "duration", node, "duration")
    return node


def sound_effects(defs):
    g = Graph(defs)
    g.add("Note", (0, 0), [SFX_NOTE], size=(420, 230))
    load = g.add("LoadVideo", (440, 0), ["example.mp4", "image"], size=(320, 360))
    loader = g.add("VSSFlowVideoLoader", (440, 420), ["(none)", 0.0, MAX_SEC], size=(330, 200))
    g.connect(load, "VIDEO", loader, "video")
    _pipeline(g, loader, prefix="vssflow/sound_effects", seed=0)
    return g.workflow()


def speech_only(defs):
    g = Graph(defs)
    g.add("Note", (0, 0), [
        "Speech for a video of someone talking: the transcript is spoken over the whole clip (speech_end 0 = the "
        "end of the clip), in the voice of the speaker reference (Load Audio; needs the RawNet3 component: remove the "
        "link for a neutral voice).\n\nEnglish text is converted to phonemes offline; ARPAbet ('HH AH0 L OW1') is "
        "taken as is."], size=(420, 230))
    load = g.add("LoadVideo", (440, 0), ["example.mp4", "image"], size=(320, 360))
    loader = g.add("VSSFlowVideoLoader", (440, 420), ["(none)", 0.0, MAX_SEC], size=(330, 200))
    g.connect(load, "VIDEO", loader, "video")
    speaker = g.add("LoadAudio", (440, 680), ["speaker.wav", None, None], title="Speaker reference",
                    size=(320, 140))
    tokens = _tokenizer(g, loader, "Hello there, how are you today?", 0.0, 0.0)
    _pipeline(g, loader, phonemes=tokens, speaker=speaker, prefix="vssflow/speech", seed=7, control="fixed")
    return g.workflow()


def speech_and_sound(defs):
    g = Graph(defs)
    g.add("Note", (0, 0), [
        "Speech and sound effects together: the words fall between speech_start and speech_end, and VSSFlow "
        "makes the sounds of what is seen around them, in one pass. Turn on mix_original in Audio Mux to keep the "
        "video's own sound under the new track."], size=(420, 200))
    load = g.add("LoadVideo", (440, 0), ["example.mp4", "image"], size=(320, 360))
    loader = g.add("VSSFlowVideoLoader", (440, 420), ["(none)", 0.0, MAX_SEC], size=(330, 200))
    g.connect(load, "VIDEO", loader, "video")
    tokens = _tokenizer(g, loader, "Look out, the dog is running!", 0.5, 2.0)
    _pipeline(g, loader, phonemes=tokens, prefix="vssflow/speech_and_sound", seed=42)
    return g.workflow()


def speech_without_video(defs):
    g = Graph(defs)
    g.add("Note", (0, 0), [
        "Speech without a video: a black clip made of solid frames stands in for the picture. Its length is "
        "batch_size / frame_rate (here 75 frames at 25 fps = 3 s). The saved mp4 shows the black frames with the "
        "speech; the wav holds the speech alone."], size=(420, 200))
    frames = g.add("EmptyImage", (440, 0), [64, 64, 75, 0], title="Black frames (75 = 3 s at 25 fps)",
                   size=(320, 170))
    loader = g.add("VSSFlowVideoLoader", (440, 420), ["(none)", 25.0, MAX_SEC], size=(330, 200))
    g.connect(frames, "IMAGE", loader, "images")
    tokens = _tokenizer(g, loader, "HH AH0 L OW1 , W ER1 L D", 0.25, 0.0, "arpabet")
    _pipeline(g, loader, phonemes=tokens, prefix="vssflow/speech_without_video", seed=3)
    return g.workflow()


def from_generated_video(defs):
    g = Graph(defs)
    g.add("Note", (0, 0), [
        "Sound for a video another node generated: any VIDEO works (Create Video here; a video model, a Veo node or "
        "another pack's output the same way). Replace Empty Image + Create Video with your generator; its frame "
        "rate travels with the VIDEO."], size=(420, 200))
    frames = g.add("EmptyImage", (440, 0), [64, 48, 48, 3368652], title="Stand-in for a generator", size=(320, 170))
    create = g.add("CreateVideo", (440, 220), [24.0, 8], size=(320, 120))
    g.connect(frames, "IMAGE", create, "images")
    loader = g.add("VSSFlowVideoLoader", (440, 420), ["(none)", 0.0, MAX_SEC], size=(330, 200))
    g.connect(create, "VIDEO", loader, "video")
    _pipeline(g, loader, prefix="vssflow/generated_video", seed=11, mux_video=(create, "VIDEO"))
    return g.workflow()


WORKFLOWS = {
    "vssflow_sound_effects": sound_effects,
    "vssflow_speech_only": speech_only,
    "vssflow_speech_and_sound": speech_and_sound,
    "vssflow_speech_without_video": speech_without_video,
    "vssflow_from_generated_video": from_generated_video,
}


def render() -> dict[str, str]:
    defs = {**CORE_DEFS, **pack_node_defs()}
    out = {}
    for name, build in WORKFLOWS.items():
        workflow = build(defs)
        problems = check_workflow(workflow, defs)
        if problems:
            raise SystemExit(f"{name}: " + "; ".join(problems))
        out[f"{name}.json"] = json.dumps(workflow, indent=2) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = parser.parse_args(argv)
    files = render()
    stale = []
    for folder in (WORKFLOWS_DIR, EXAMPLES_DIR):
        for name, text in files.items():
            path = folder / name
            if args.check:
                if not path.is_file() or path.read_text(encoding="utf-8") != text:
                    stale.append(str(path.relative_to(REPO_ROOT)))
            else:
                folder.mkdir(exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run scripts/make_workflows.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    if not args.check:
        print(f"wrote {len(files)} workflows to {WORKFLOWS_DIR.name}/ and {EXAMPLES_DIR.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
