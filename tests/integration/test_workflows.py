"""The shipped templates, the workflows saved before the V3 port and the subgraph blueprint, run by a real ComfyUI
server: each template once exactly as shipped (the demo model and the pack's demo clips), and on tiny random VSSFlow
weights with test clips for the checks below.

Each UI-format workflow in ``example_workflows/`` is checked against the server's own node definitions, converted to
the API format with them and sent to ``POST /prompt``; the tests then read the produced mp4 and wav: the sound lasts
exactly as long as the video, at 16 kHz, the mp4 has its audio stream, and a video that came from a file keeps its
video packets bit for bit.  Also: a failure in one of our nodes leaves the server serving, changing an input reruns
exactly the nodes that depend on it, progress is reported per solver step, and cancel stops sampling at once.
"""

from __future__ import annotations

import io
import json
import re
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from test_media_mux import decoded_audio, make_video_with_audio, sine, video_packet_digest, band_energy
from vssflow_core.media import video_duration
from vssflow_core.media.mux import AAC_FRAME_SAMPLES
from vssflow_core.video import resolve_video_input
from vssflow_core.video.synthetic import make_counter_video
from workflow_tools import (EXAMPLES_DIR, OUR_NODES, VIRTUAL_NODES, blueprint_as_workflow, blueprint_files,
                            check_workflow, load_workflow, nodes_of_type, to_api, v1_fixture_files, workflow_files)

from .comfy_server import PACK_DIR_NAME, PACK_PYTHON_MODULE, PromptFailed

SR = 16_000
# The shipped templates (example_workflows/<name>.json)
SFX, SPEECH, BOTH = "Sound effects for a video", "Speech for a talking video", "Speech and sound effects"
NO_VIDEO, GENERATED, ONE_NODE = "Speech without a video", "Sound for a generated video", "Add sound in one node"
# A variable-frame-rate clip: 2.5 s whose frame intervals change from 1/30 s to 1/12 s and back.
VFR_TIMESTAMPS = [round(t, 3) for t in np.cumsum([0] + [1 / 30] * 20 + [1 / 12] * 12 + [1 / 20] * 16)[:-1]]
CLIPS = {  # name -> (frames, fps) for constant-rate clips, timestamps for the variable one
    "clip24.mp4": (60, 24),  # 2.5 s
    "clip25.mp4": (75, 25),  # 3 s
    "clip30.mp4": (57, 30),  # 1.9 s
    "clip60.mp4": (150, 60),  # 2.5 s
    "clip_vfr.mp4": VFR_TIMESTAMPS,
}


@pytest.fixture(scope="module")
def info(comfy) -> dict:
    return comfy.object_info()


@pytest.fixture(scope="module")
def clips(comfy) -> dict[str, Path]:
    """Test videos in the server's input folder (what Load Video lists)."""
    made = {}
    for name, spec in CLIPS.items():
        path = comfy.input_dir / name
        if isinstance(spec, list):
            make_counter_video(path, timestamps=spec)
        else:
            make_counter_video(path, spec[0], spec[1])
        made[name] = path
    made["talk.mp4"] = make_video_with_audio(comfy.input_dir / "talk.mp4", seconds=2.0, fps=25, freq=440.0)
    sf.write(str(comfy.input_dir / "speaker.wav"), sine(180, 1.5, 22_050), 22_050)
    corrupt = comfy.input_dir / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)  # an mp4 header, then garbage
    made["corrupt.mp4"] = corrupt
    return made


def workflow(name: str) -> dict:
    return load_workflow(EXAMPLES_DIR / f"{name}.json")


def api_prompt(info: dict, tiny_models: dict, name: str | Path, **overrides) -> dict:
    """The shared workflow ``name`` (or the workflow file at that path) in API format, on the tiny weights, with
    ``overrides`` by node type."""
    loaders = {
        "VSSFlowCheckpointLoader": {"ckpt_name": tiny_models["checkpoint"]},
        "VSSFlowComponentsLoader": {key: tiny_models[key] for key in ("clip", "synchformer", "vae", "vocoder",
                                                                      "rawnet3")},
    }
    for kind, values in overrides.items():
        loaders.setdefault(kind, {}).update(values)
    return to_api(load_workflow(name) if isinstance(name, Path) else workflow(name), info, loaders)


def only(prompt: dict, class_type: str) -> str:
    (node_id,) = nodes_of_type(prompt, class_type)
    return node_id


def saved(comfy, entry: dict, prompt: dict) -> tuple[Path, Path]:
    """(mp4, wav) that Audio Mux reported in its UI output, checked to be served by /view."""
    ui = entry["outputs"][only(prompt, "VSSFlowAudioMux")]
    (video_item,), (audio_item,) = ui["images"], ui["audio"]
    assert ui["animated"] == [True]
    paths = []
    for item, suffix in ((video_item, ".mp4"), (audio_item, ".wav")):
        assert item["type"] == "output" and item["filename"].endswith(suffix), item
        path = comfy.output_dir / item["subfolder"] / item["filename"]
        assert path.is_file()
        assert comfy.view(item["filename"], item["subfolder"], "output") == path.read_bytes()
        paths.append(path)
    return paths[0], paths[1]


def check_outputs(mp4: Path, wav: Path, duration: float, *, source: Path | None = None,
                  audio_rate: int = SR) -> np.ndarray:
    """The wav is exactly ``duration`` at 16 kHz; the mp4 has an AAC track of the video's length; its video stream is
    the source's, packet for packet, when the source was a file."""
    samples, rate = sf.read(str(wav), dtype="float32")
    assert rate == SR
    assert samples.ndim == 1 and samples.shape[0] == round(duration * SR), (samples.shape, duration)
    assert np.isfinite(samples).all() and np.abs(samples).max() > 0
    assert video_duration(mp4) == pytest.approx(duration, abs=1e-3)
    audio, mp4_rate, codec = decoded_audio(mp4)
    assert codec == "aac" and mp4_rate == audio_rate
    assert 0 <= audio.shape[1] - round(duration * audio_rate) < AAC_FRAME_SAMPLES  # AAC frames are 1024 samples
    if source is not None:
        assert video_packet_digest(mp4) == video_packet_digest(source)
    return samples


def run(comfy, prompt: dict, timeout: float = 240.0) -> dict:
    return comfy.run(prompt, timeout=timeout)


def cached_nodes(entry: dict) -> set[str]:
    for kind, data in entry["status"]["messages"]:
        if kind == "execution_cached":
            return set(data["nodes"])
    return set()


# --------------------------------------------------------------------------------------------------------------------
# The pack as the server sees it
# --------------------------------------------------------------------------------------------------------------------


def test_our_nodes_are_registered(info, tiny_models):
    for node_id, display in OUR_NODES.items():
        assert node_id in info, f"{node_id} missing from /object_info"
        assert info[node_id]["display_name"] == display
        assert info[node_id]["python_module"] == PACK_PYTHON_MODULE
    assert info["VSSFlowAudioMux"]["output_node"] is True
    assert info["VSSFlowVocoderDecode"]["output"] == ["AUDIO"]
    assert info["VSSFlowVideoLoader"]["output"][:2] == ["VSSFLOW_VIDEO", "VIDEO"]
    # model files in models/vssflow are listed in the loaders' dropdowns
    assert tiny_models["checkpoint"] in info["VSSFlowCheckpointLoader"]["input"]["required"]["ckpt_name"][1]["options"]
    assert tiny_models["vae"] in info["VSSFlowComponentsLoader"]["input"]["required"]["vae"][1]["options"]
    seed = info["VSSFlowSampler"]["input"]["required"]["seed"]
    assert seed[0] == "INT" and seed[1]["control_after_generate"] is True


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.stem)
def test_shared_workflow_fits_the_server(info, path):
    wf = load_workflow(path)
    types = {node["type"] for node in wf["nodes"]} - VIRTUAL_NODES
    assert types <= set(info), f"node types the server does not have: {sorted(types - set(info))}"
    assert check_workflow(wf, info, known_only=True, check_combos=OUR_NODES) == []


def test_templates_are_listed_once_with_their_thumbnails(comfy):
    templates = comfy.get_json("/workflow_templates")
    ours = [names for pack, names in templates.items() if pack.lower().endswith("vssflow")]
    assert ours, f"the pack is not in /workflow_templates: {templates}"
    assert sorted(ours[0]) == sorted(p.stem for p in workflow_files())  # each once
    for path in workflow_files():  # what the template browser fetches: the workflow and <name>.jpg beside it
        base = f"/api/workflow_templates/{PACK_DIR_NAME}/{urllib.parse.quote(path.stem)}"
        assert json.loads(comfy.view_path(base + ".json")) == load_workflow(path)
        assert comfy.view_path(base + ".jpg") == path.with_suffix(".jpg").read_bytes()


def test_the_blueprint_is_listed_as_a_global_subgraph(comfy):
    (path,) = blueprint_files()
    entries = comfy.get_json("/global_subgraphs")
    ours = {key: e for key, e in entries.items() if e["info"]["node_pack"] == f"custom_nodes.{PACK_DIR_NAME}"}
    assert [e["name"] for e in ours.values()] == [path.stem]
    (key,) = ours
    assert json.loads(comfy.get_json(f"/global_subgraphs/{key}")["data"]) == load_workflow(path)


# --------------------------------------------------------------------------------------------------------------------
# Every shared workflow runs
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", list(CLIPS), ids=lambda name: name[:-4])
def test_sound_effects_at_every_frame_rate(comfy, info, tiny_models, clips, clip):
    source = clips[clip]
    prompt = api_prompt(info, tiny_models, SFX, VSSFlowVideoLoader={"file": clip})
    entry = run(comfy, prompt)
    mp4, wav = saved(comfy, entry, prompt)
    duration = resolve_video_input(path=source).duration
    if clip == "clip_vfr.mp4":
        assert not resolve_video_input(path=source).constant_rate
    assert duration == pytest.approx(video_duration(source), abs=1e-3)
    check_outputs(mp4, wav, duration, source=source)


def test_speech_only(comfy, info, tiny_models, clips):
    prompt = api_prompt(info, tiny_models, SPEECH, VSSFlowVideoLoader={"file": "clip30.mp4"},
                        VSSFlowPhonemeTokenizer={"transcript": "Hello there, how are you today?", "speech_start": 0.0,
                                                 "speech_end": 0.0})
    entry = run(comfy, prompt)
    (phonemes,) = entry["outputs"][only(prompt, "VSSFlowPhonemeTokenizer")]["vssflow_phonemes"]
    duration = resolve_video_input(path=clips["clip30.mp4"]).duration
    assert phonemes["tokens"][:3] == ["<blank>", "HH", "AH0"] and phonemes["tokens"][-1] == "<blank>"
    assert phonemes["start"] == 0.0 and phonemes["end"] == pytest.approx(duration)
    assert phonemes["duration"] == pytest.approx(duration)
    mp4, wav = saved(comfy, entry, prompt)
    check_outputs(mp4, wav, duration, source=clips["clip30.mp4"])


def test_speech_and_sound_mixed_with_the_original(comfy, info, tiny_models, clips):
    prompt = api_prompt(info, tiny_models, BOTH, VSSFlowVideoLoader={"file": "talk.mp4"},
                        VSSFlowPhonemeTokenizer={"speech_end": 2.0},
                        VSSFlowAudioMux={"mix_original": True, "generated_gain": 0.5})
    entry = run(comfy, prompt)
    (phonemes,) = entry["outputs"][only(prompt, "VSSFlowPhonemeTokenizer")]["vssflow_phonemes"]
    assert (phonemes["start"], phonemes["end"], phonemes["duration"]) == (0.5, 2.0, pytest.approx(2.0))
    mp4, wav = saved(comfy, entry, prompt)
    check_outputs(mp4, wav, 2.0, source=clips["talk.mp4"], audio_rate=48_000)  # the original track's rate is kept
    audio, rate, _ = decoded_audio(mp4)
    assert band_energy(audio[0], rate, 440) > 0.05  # the video's own tone is still there


def test_speech_without_video(comfy, info, tiny_models):
    prompt = api_prompt(info, tiny_models, NO_VIDEO)
    entry = run(comfy, prompt)
    (phonemes,) = entry["outputs"][only(prompt, "VSSFlowPhonemeTokenizer")]["vssflow_phonemes"]
    assert phonemes["tokens"] == ["<blank>", "HH", "AH0", "L", "OW1", ",", "W", "ER1", "L", "D", "<blank>"]
    mp4, wav = saved(comfy, entry, prompt)
    check_outputs(mp4, wav, 3.0)  # 75 black frames at 25 fps
    assert video_packet_digest(mp4)[1] == 75


def test_chain_from_a_generated_video(comfy, info, tiny_models):
    prompt = api_prompt(info, tiny_models, GENERATED)
    entry = run(comfy, prompt)
    mp4, wav = saved(comfy, entry, prompt)
    check_outputs(mp4, wav, 2.0)  # 48 frames from Create Video at 24 fps
    assert video_packet_digest(mp4)[1] == 48


def test_outputs_are_numbered_never_overwritten(comfy, info, tiny_models, clips):
    prompt = api_prompt(info, tiny_models, SFX, VSSFlowVideoLoader={"file": "clip25.mp4"},
                        VSSFlowAudioMux={"filename_prefix": "vssflow/numbered"}, VSSFlowSampler={"batch_size": 2})
    first = saved_all(comfy, run(comfy, prompt), prompt)
    prompt[only(prompt, "VSSFlowSampler")]["inputs"]["seed"] += 1
    second = saved_all(comfy, run(comfy, prompt), prompt)
    assert [p.name for p in first + second] == [f"numbered_{i:05}_.mp4" for i in range(1, 5)]
    assert all(p.is_file() for p in first + second)


def saved_all(comfy, entry: dict, prompt: dict) -> list[Path]:
    ui = entry["outputs"][only(prompt, "VSSFlowAudioMux")]
    assert len(ui["images"]) == len(ui["audio"])
    return [comfy.output_dir / item["subfolder"] / item["filename"] for item in ui["images"]]


@pytest.mark.parametrize("path", v1_fixture_files(), ids=lambda p: p.stem)
def test_workflow_saved_before_the_v3_port_runs(comfy, info, tiny_models, clips, path):
    """The workflows the V1 pack shipped, as saved then, run on the V3 nodes (with test media in their Load nodes)."""
    assert check_workflow(load_workflow(path), info, known_only=True, saved_earlier=True) == []
    prompt = api_prompt(info, tiny_models, path, LoadVideo={"file": "clip24.mp4"}, LoadAudio={"audio": "speaker.wav"})
    mp4, wav = saved(comfy, run(comfy, prompt), prompt)
    samples, _ = sf.read(str(wav), dtype="float32")
    assert video_duration(mp4) == pytest.approx(samples.shape[0] / SR, abs=1e-3)


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.stem)
def test_template_runs_as_shipped(comfy, info, path):
    """Each template exactly as a fresh install opens it: the shipped demo model (loaders on auto), the pack's demo
    clips, nothing copied into the input folder. Vocoder Decode shows a player per take; the result is shown."""
    assert not any(comfy.input_dir.glob("demo_videos*"))
    prompt = to_api(load_workflow(path), info)
    entry = run(comfy, prompt, timeout=600)
    if nodes_of_type(prompt, "VSSFlowAudioMux"):
        mp4, wav = saved(comfy, entry, prompt)
        samples, _ = sf.read(str(wav), dtype="float32")
        assert video_duration(mp4) == pytest.approx(samples.shape[0] / SR, abs=1e-3)
        for decode in nodes_of_type(prompt, "VSSFlowVocoderDecode"):  # the editing templates have two
            players = entry["outputs"][decode]["audio"]
            assert players and all(p["type"] == "temp" and comfy.view(p["filename"], p["subfolder"], "temp")
                                   for p in players)
    else:
        shown = entry["outputs"][only(prompt, "VSSFlowAddSoundToVideo")]
        (video_item,), (audio_item,) = shown["images"], shown["audio"]
        assert video_item["type"] == "temp" and video_item["filename"].endswith(".mp4")
        samples, rate = sf.read(io.BytesIO(comfy.view(audio_item["filename"], audio_item["subfolder"], "temp")),
                                dtype="float32")
        assert rate == SR and np.isfinite(samples).all()


def test_the_blueprint_runs_once_its_video_is_connected(comfy, info, tiny_models):
    source = {"id": 100, "type": "CreateVideo", "inputs": [{"name": "images", "type": "IMAGE", "link": 1000}],
              "outputs": [{"name": "VIDEO", "type": "VIDEO", "links": []}], "widgets_values": [24.0, 8]}
    frames = {"id": 101, "type": "EmptyImage", "inputs": [],
              "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1000]}], "widgets_values": [64, 48, 36, 0]}
    inside = blueprint_as_workflow(load_workflow(blueprint_files()[0]), {"video": (source, 0)})
    inside["nodes"].append(frames)
    inside["links"].append([1000, 101, 0, 100, 0, "IMAGE"])
    assert check_workflow(inside, info, known_only=True) == []
    prompt = to_api(inside, info, {
        "VSSFlowCheckpointLoader": {"ckpt_name": tiny_models["checkpoint"]},
        "VSSFlowComponentsLoader": {key: tiny_models[key] for key in ("clip", "synchformer", "vae", "vocoder")},
        "VSSFlowSampler": {"solver": "euler", "steps": 2}})
    mp4, wav = saved(comfy, run(comfy, prompt), prompt)
    check_outputs(mp4, wav, 1.5)  # 36 frames at 24 fps


# --------------------------------------------------------------------------------------------------------------------
# Failures, caching, progress and cancel
# --------------------------------------------------------------------------------------------------------------------


def test_a_failing_node_reports_a_clear_error_and_the_server_goes_on(comfy, info, tiny_models, clips):
    bad = api_prompt(info, tiny_models, SFX, VSSFlowVideoLoader={"file": "corrupt.mp4"})
    with pytest.raises(PromptFailed) as failed:
        run(comfy, bad)
    status = failed.value.entry["status"]
    assert status["status_str"] == "error"
    (error,) = [data for kind, data in status["messages"] if kind == "execution_error"]
    assert error["node_type"] == "VSSFlowVideoLoader"
    assert "corrupt.mp4" in error["exception_message"] and "\n" not in error["exception_message"].strip()
    # images without a frame rate: refused by our node, with what to do
    no_rate = api_prompt(info, tiny_models, NO_VIDEO, VSSFlowVideoLoader={"frame_rate": 0.0})
    with pytest.raises(PromptFailed) as failed:
        run(comfy, no_rate)
    (error,) = [d for k, d in failed.value.entry["status"]["messages"] if k == "execution_error"]
    assert error["node_type"] == "VSSFlowVideoLoader" and "frame rate" in error["exception_message"]
    # the same server then runs a good workflow
    good = api_prompt(info, tiny_models, SFX, VSSFlowVideoLoader={"file": "clip24.mp4"})
    mp4, wav = saved(comfy, run(comfy, good), good)
    check_outputs(mp4, wav, 2.5, source=clips["clip24.mp4"])


def test_changing_an_input_reruns_exactly_its_dependents(comfy, info, tiny_models, clips):
    prompt = api_prompt(info, tiny_models, BOTH, VSSFlowVideoLoader={"file": "clip25.mp4"},
                        VSSFlowAudioMux={"filename_prefix": "vssflow/cache"})
    every = set(prompt)
    run(comfy, prompt)
    assert cached_nodes(run(comfy, prompt)) == every  # nothing changed: nothing runs

    sampler, decode, mux = (only(prompt, k) for k in ("VSSFlowSampler", "VSSFlowVocoderDecode", "VSSFlowAudioMux"))
    prompt[sampler]["inputs"]["seed"] += 1
    assert every - cached_nodes(run(comfy, prompt)) == {sampler, decode, mux}

    tokenizer = only(prompt, "VSSFlowPhonemeTokenizer")
    prompt[tokenizer]["inputs"]["transcript"] = "Watch out, the cat is jumping!"
    assert every - cached_nodes(run(comfy, prompt)) == {tokenizer, sampler, decode, mux}


def test_progress_every_step_and_cancel_stops_sampling(comfy, info, tiny_models, clips):
    prompt = api_prompt(info, tiny_models, SFX, VSSFlowVideoLoader={"file": "clip25.mp4"},
                        VSSFlowSampler={"solver": "euler", "steps": 6, "seed": 123})
    sampler = only(prompt, "VSSFlowSampler")
    with comfy.events() as events:
        prompt_id = comfy.queue_prompt(prompt)
        progress = []
        while (message := events.next(timeout=120)) is not None:
            data = message.get("data", {})
            if data.get("prompt_id") != prompt_id:
                continue
            if message["type"] == "progress" and data.get("node") == sampler:
                progress.append((data["value"], data["max"]))
            if message["type"] in ("execution_success", "execution_error"):
                break
    assert comfy.wait(prompt_id)["status"]["status_str"] == "success"
    assert progress[0] == (1, 6) and progress[-1] == (6, 6)  # ComfyUI may throttle the ones between

    # a long sampling run, cancelled as soon as it reports its first step
    prompt[sampler]["inputs"].update(steps=10000, seed=124)
    with comfy.events() as events:
        prompt_id = comfy.queue_prompt(prompt)
        started = None
        while (message := events.next(timeout=120)) is not None:
            data = message.get("data", {})
            if data.get("prompt_id") != prompt_id:
                continue
            if message["type"] == "progress" and data.get("node") == sampler and started is None:
                started = time.monotonic()
                comfy.interrupt()
            if message["type"] in ("execution_interrupted", "execution_success", "execution_error"):
                stopped = time.monotonic()
                break
    assert started is not None, "sampling never reported progress"
    assert message["type"] == "execution_interrupted", json.dumps(message)
    assert message["data"]["node_type"] == "VSSFlowSampler"
    assert stopped - started < 5.0  # 10000 steps would take minutes
    entry = comfy.wait(prompt_id)
    assert entry["status"]["status_str"] == "error"
    # and the server still serves
    prompt[sampler]["inputs"].update(steps=2, seed=125)
    run(comfy, prompt)


def test_bad_inputs_fail_cleanly_and_then_a_long_video_works(comfy, info, tiny_models):
    """Bad inputs, one after the other, each stopped by the node that can tell what is wrong, with the fix in the
    message and nothing in the output folder; then the same server generates a 12 s video in two windows."""
    cut, picture, long = (comfy.input_dir / name for name in ("cut.mp4", "picture.mp4", "long12.mp4"))
    make_counter_video(long, 300, 25, keyframe_interval=25)
    data = Path(make_counter_video(comfy.input_dir / "whole.mp4", 75, 25)).read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    from PIL import Image

    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(picture, format="PNG")
    failing = [
        (api_prompt(info, tiny_models, SFX, VSSFlowVideoLoader={"file": "cut.mp4"}),
         "VSSFlowVideoLoader", r"cut\.mp4: .*truncated or damaged.*Download or export it again"),
        (api_prompt(info, tiny_models, SFX, VSSFlowVideoLoader={"file": "picture.mp4"}),
         "VSSFlowVideoLoader", r"a still picture \(PNG\), not a video.*turn the picture into one first"),
        (api_prompt(info, tiny_models, SFX, VSSFlowVideoLoader={"file": "long12.mp4", "max_duration": 5.0}),
         "VSSFlowVideoLoader", r"12\.00 s long, longer than the maximum of 5 s.*raise the limit"),
        (api_prompt(info, tiny_models, BOTH, VSSFlowVideoLoader={"file": "long12.mp4"},
                    VSSFlowPhonemeTokenizer={"transcript": "?! ... !"}),
         "VSSFlowPhonemeTokenizer", r"nothing to pronounce.*write the words to be spoken"),
    ]
    comfy.output_dir.mkdir(parents=True, exist_ok=True)
    before = sorted(p for p in comfy.output_dir.rglob("*"))
    for prompt, node_type, message in failing:
        with pytest.raises(PromptFailed) as failed:
            run(comfy, prompt)
        (error,) = [d for k, d in failed.value.entry["status"]["messages"] if k == "execution_error"]
        assert error["node_type"] == node_type
        assert re.search(message, error["exception_message"]), error["exception_message"]
        assert sorted(p for p in comfy.output_dir.rglob("*")) == before  # nothing written, no temporary file
    good = api_prompt(info, tiny_models, SFX, VSSFlowVideoLoader={"file": "long12.mp4"},
                      VSSFlowAudioMux={"filename_prefix": "vssflow/long"})
    mp4, wav = saved(comfy, run(comfy, good), good)
    check_outputs(mp4, wav, 12.0, source=long)


DUB = "Dub a clip from subtitles"
FIVE_LINES = ("2.0-5.0 [alice]: Hello there, how are you?\n10.5-13.0 [bob]: Fine, thank you.\n"
              "17.0-20.5 [alice]: Where are we going today?\n24.5-28.0 [bob]: To the river and back.\n"
              "33.0-36.5 [alice]: Then let us go now.")


def test_dub_a_long_clip_from_five_lines_in_two_voices(comfy, info, tiny_models):
    source = make_counter_video(comfy.input_dir / "clip40.mp4", 400, 10)  # 40 s: five windows
    prompt = api_prompt(info, tiny_models, DUB, VSSFlowVideoLoader={"file": "clip40.mp4"},
                        VSSFlowDialogue={"lines": FIVE_LINES}, VSSFlowSampler={"solver": "euler", "steps": 2})
    entry = run(comfy, prompt, timeout=600.0)
    (ui,) = entry["outputs"][only(prompt, "VSSFlowDialogue")]["vssflow_dialogue"]
    assert [(line["start"], line["end"], line["voice"]) for line in ui["lines"]] == [
        (2.0, 5.0, "alice"), (10.5, 13.0, "bob"), (17.0, 20.5, "alice"), (24.5, 28.0, "bob"), (33.0, 36.5, "alice")]
    assert ui["duration"] == pytest.approx(40.0)
    mp4, wav = saved(comfy, entry, prompt)
    check_outputs(mp4, wav, 40.0, source=source)
