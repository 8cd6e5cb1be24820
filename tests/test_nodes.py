"""The node classes without a ComfyUI server: registration, schemas, and the whole graph on tiny weights.

The pack is imported the way ComfyUI imports it (by file location, under its own module name) and its nodes are
taken from its ``comfy_entrypoint``, so its relative imports and its ComfyUI bridge run exactly as in a server, here
without ComfyUI's modules (the bridge's fallbacks, and its stand-in for the V3 node API). The nodes' ``execute``
classmethods are called as ComfyUI calls them; the integration tests run the same nodes in a real server.
"""

from __future__ import annotations

import inspect
import logging
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from test_media_mux import band_energy, decoded_audio, make_video_with_audio, video_packet_digest
from tiny_models import build_tiny_models_folder
from vssflow_core.config import SEQUENCE
from vssflow_core.demo import demo_available
from vssflow_core.demo.frontends import PixelGridEncoder
from vssflow_core.flow.schedules import SCHEDULES
from vssflow_core.flow.solvers import DEFAULT_FIXED_STEPS, DEFAULT_SCHEDULE, DEFAULT_SOLVER
from vssflow_core.media import video_duration
from vssflow_core.loading import load_network
from vssflow_core.video.synthetic import make_counter_video
from workflow_tools import OUR_NODES, REPO_ROOT, load_pack, node_def, pack_nodes

SR = SEQUENCE.sample_rate


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded (see the conftest fixture)."""


@pytest.fixture(scope="module")
def pack():
    return load_pack()


@pytest.fixture(scope="module")
def nodes(pack):
    return pack_nodes(pack)


@pytest.fixture(scope="module")
def bridge(pack):
    return pack.nodes.comfy_bridge


@pytest.fixture(scope="module")
def folders(tmp_path_factory, bridge) -> dict:
    root = tmp_path_factory.mktemp("comfy")
    names = build_tiny_models_folder(root / "models" / "vssflow")
    bridge.configure(models_dirs=[root / "models" / "vssflow"], input_dir=root / "input", output_dir=root / "output",
                     temp_dir=root / "temp")
    (root / "input").mkdir()
    make_counter_video(root / "input" / "clip24.mp4", 60, 24)
    make_video_with_audio(root / "input" / "tone.mp4", seconds=2.0)
    return {"root": root, "names": names, "input": root / "input", "output": root / "output"}


@pytest.fixture(scope="module")
def loaded(nodes, folders) -> dict:
    names = folders["names"]
    (model,) = nodes["VSSFlowCheckpointLoader"].execute(names["checkpoint"], "auto", "float32")
    (parts,) = nodes["VSSFlowComponentsLoader"].execute(names["clip"], names["synchformer"], names["vae"],
                                                     names["vocoder"], names["rawnet3"], False, "auto")
    return {"model": model, "components": parts}


def running_as(cls: type, unique_id: str) -> type:
    """The node class as ComfyUI runs it on node ``unique_id``: a per-run copy whose ``hidden`` is filled."""
    holder = type(cls.hidden) if cls.hidden is not None else None
    return type(cls.__name__, (cls,), {"hidden": holder(unique_id=unique_id)})


def sampler_args(**overrides) -> dict:
    return {"seed": 0, "steps": 3, "guidance_scale": 3.0, "solver": "euler", "batch_size": 1, **overrides}


def generate(nodes, loaded, vssflow_video, phonemes=None, speaker=None, **overrides):
    (visual,) = nodes["VSSFlowVisualEncoder"].execute(loaded["components"], vssflow_video)
    (latent,) = nodes["VSSFlowSampler"].execute(loaded["model"], loaded["components"], visual, phonemes=phonemes,
                                               speaker_reference=speaker, **sampler_args(**overrides))
    (audio,) = nodes["VSSFlowVocoderDecode"].execute(loaded["components"], latent)
    return audio


# --------------------------------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------------------------------


def test_node_ids_and_display_names(nodes):
    assert {node_id: cls.GET_SCHEMA().display_name for node_id, cls in nodes.items()} == OUR_NODES
    assert list(nodes) == list(OUR_NODES)


def test_the_pack_registers_through_its_entry_point_only(pack):
    # ComfyUI's loader reads NODE_CLASS_MAPPINGS first when a pack has it, and then never calls comfy_entrypoint
    assert callable(pack.comfy_entrypoint)
    assert not hasattr(pack, "NODE_CLASS_MAPPINGS") and not hasattr(pack.nodes, "NODE_CLASS_MAPPINGS")
    assert not hasattr(pack, "NODE_DISPLAY_NAME_MAPPINGS")


def test_nodes_import_comfyui_only_through_the_bridge():
    for path in sorted((REPO_ROOT / "nodes").glob("*.py")):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+vssflow_core\b", text, re.M), f"{path.name}: absolute core import"
        if path.name != "comfy_bridge.py":
            assert not re.search(r"^\s*(from|import)\s+(comfy|comfy_api|folder_paths|nodes|server)\b", text, re.M), \
                f"{path.name} imports ComfyUI directly"


@pytest.mark.parametrize("node_id", list(OUR_NODES))
def test_node_schema_is_consistent(nodes, node_id):
    cls = nodes[node_id]
    schema = cls.GET_SCHEMA()
    assert schema.category == "audio/VSSFlow" and schema.description
    assert all(output.tooltip for output in schema.outputs) and all(item.tooltip for item in schema.inputs)
    assert not schema.not_idempotent  # ComfyUI's caching decides what reruns
    params = inspect.signature(cls.execute).parameters
    names = [item.id for item in schema.inputs]
    assert list(params) == names, "execute takes the inputs in the schema's order (positional calls stay valid)"
    for item in schema.inputs:
        has_default = params[item.id].default is not inspect.Parameter.empty
        assert has_default == item.optional, f"{item.id}: optional inputs, and only they, have a default"
    if "fingerprint_inputs" in vars(cls):  # ComfyUI passes every input
        fingerprint = inspect.signature(cls.fingerprint_inputs).parameters.values()
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in fingerprint)
        cls.fingerprint_inputs(**{n: None for n in names})


def test_the_expert_knobs_are_advanced_and_the_generators_findable(nodes):
    advanced = {(node_id, item.id) for node_id, cls in nodes.items() for item in cls.GET_SCHEMA().inputs
                if item.advanced}
    assert advanced == {("VSSFlowSampler", "schedule"), ("VSSFlowSampler", "atol"), ("VSSFlowSampler", "rtol"),
                        ("VSSFlowComponentsLoader", "encoder_dtype"), ("VSSFlowAudioMux", "duck_depth_db"),
                        ("VSSFlowAudioMux", "duck_attack_ms"), ("VSSFlowAudioMux", "duck_release_ms")}
    for node_id in ("VSSFlowSampler", "VSSFlowAddSoundToVideo"):
        aliases = nodes[node_id].GET_SCHEMA().search_aliases
        assert {"foley", "video to audio", "dubbing", "lip sync", "text to speech"} <= set(aliases)


def test_the_download_switch_says_the_licences_of_what_it_fetches(pack, nodes):
    registry = pack.vssflow_core.weights.registry.REGISTRY  # the pack's own copy of the core
    (download,) = [i for i in nodes["VSSFlowComponentsLoader"].GET_SCHEMA().inputs if i.id == "download"]
    for name in ("clip", "synchformer", "vae", "vocoder", "rawnet3"):
        assert f"{name}: {registry[name].license}" in download.tooltip
    assert "CC-BY-NC-SA-4.0" in download.tooltip and "non-commercial" in download.tooltip


def test_model_dropdowns_list_the_models_folder(nodes, folders):
    ckpt = node_def(nodes["VSSFlowCheckpointLoader"])["input"]["required"]["ckpt_name"][1]["options"]
    assert ckpt[0] == "auto" and folders["names"]["checkpoint"] in ckpt
    comps = node_def(nodes["VSSFlowComponentsLoader"])["input"]["required"]
    assert comps["rawnet3"][1]["options"][:2] == ["auto", "none"]
    assert folders["names"]["vae"] in comps["vae"][1]["options"]
    files = node_def(nodes["VSSFlowVideoLoader"])["input"]["optional"]["file"][1]["options"]
    assert files == ["(none)", "clip24.mp4", "tone.mp4", "demo_videos/bouncing.mp4", "demo_videos/talking.mp4"]


def test_the_video_loader_plays_the_packs_demo_clips(nodes):
    vssflow_video, video, _, duration, _ = nodes["VSSFlowVideoLoader"].execute(file="demo_videos/bouncing.mp4")
    assert Path(video.get_stream_source()) == REPO_ROOT / "demo_videos" / "bouncing.mp4"
    assert duration == pytest.approx(video_duration(REPO_ROOT / "demo_videos" / "bouncing.mp4"), abs=0.05)


# --------------------------------------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------------------------------------


def test_whole_graph_from_a_file(nodes, loaded, folders):
    source = folders["input"] / "clip24.mp4"
    vssflow_video, video, frames, duration, fps = nodes["VSSFlowVideoLoader"].execute(file="clip24.mp4")
    assert duration == pytest.approx(2.5) and fps == pytest.approx(24)
    assert tuple(frames.shape) == (25, 48, 64, 3) and frames.dtype == torch.float32  # 10 fps
    assert Path(video.get_stream_source()) == source

    result = nodes["VSSFlowPhonemeTokenizer"].execute("Hello there.", 0.5, 0.0, "auto", duration=duration)
    (ui,) = result.ui["vssflow_phonemes"]
    assert ui == {"tokens": ["<blank>", "HH", "AH0", "L", "OW1", "DH", "EH1", "R", ".", "<blank>"], "start": 0.5,
                  "end": 2.5, "duration": 2.5}
    (phonemes,) = result.result

    audio = generate(nodes, loaded, vssflow_video, phonemes)
    assert audio["sample_rate"] == SR and tuple(audio["waveform"].shape) == (1, 1, round(2.5 * SR))

    mux = nodes["VSSFlowAudioMux"]
    first = mux.execute(video, audio, "vssflow/test", False, 1.0, 1.0)
    second = mux.execute(video, audio, "vssflow/test", False, 1.0, 1.0)
    out = folders["output"] / "vssflow"
    assert sorted(p.name for p in out.iterdir()) == ["test_00001_.mp4", "test_00001_.wav", "test_00002_.mp4",
                                                     "test_00002_.wav"]  # numbered, never overwritten
    assert first.ui == {"images": [{"filename": "test_00001_.mp4", "subfolder": "vssflow", "type": "output"}],
                           "animated": [True],
                           "audio": [{"filename": "test_00001_.wav", "subfolder": "vssflow", "type": "output"}]}
    (saved,) = second.result
    assert Path(saved.get_stream_source()) == out / "test_00002_.mp4"
    assert video_packet_digest(out / "test_00001_.mp4") == video_packet_digest(source)  # picture copied
    wav, rate = sf.read(str(out / "test_00001_.wav"), dtype="float32")
    assert rate == SR and wav.shape == (round(2.5 * SR),)
    np.testing.assert_allclose(wav, audio["waveform"][0, 0].numpy(), atol=1 / 32767 + 1e-6)  # 16-bit PCM
    assert not list((folders["root"] / "temp").rglob("*.mp4"))  # scratch files are gone


def test_images_with_their_frame_rate_become_a_video(nodes, loaded, folders):
    images = torch.rand(36, 32, 40, 3)
    vssflow_video, video, frames, duration, fps = nodes["VSSFlowVideoLoader"].execute(images=images, frame_rate=12.0)
    assert duration == pytest.approx(3.0) and fps == pytest.approx(12.0) and frames.shape[0] == 30
    assert video.get_components().frame_rate == Fraction(12)
    audio = generate(nodes, loaded, vssflow_video, batch_size=2, seed=5)
    assert tuple(audio["waveform"].shape) == (2, 1, 3 * SR)
    assert not torch.allclose(audio["waveform"][0], audio["waveform"][1])
    result = nodes["VSSFlowAudioMux"].execute(video, audio, "frames/take", False, 1.0, 1.0)
    assert [i["filename"] for i in result.ui["images"]] == ["take_00001_.mp4", "take_00002_.mp4"]
    mp4 = folders["output"] / "frames" / "take_00002_.mp4"
    assert video_duration(mp4) == pytest.approx(3.0) and video_packet_digest(mp4)[1] == 36
    sound, rate, codec = decoded_audio(mp4)
    assert codec == "aac" and rate == SR and 0 <= sound.shape[1] - 3 * SR < 1024


def test_vocoder_decode_plays_each_take(nodes, loaded, folders):
    vssflow_video, *_ = nodes["VSSFlowVideoLoader"].execute(images=torch.rand(20, 8, 8, 3), frame_rate=10.0)
    (visual,) = nodes["VSSFlowVisualEncoder"].execute(loaded["components"], vssflow_video)
    (latent,) = nodes["VSSFlowSampler"].execute(loaded["model"], loaded["components"], visual,
                                               **sampler_args(batch_size=2))
    decoded = nodes["VSSFlowVocoderDecode"].execute(loaded["components"], latent)
    (audio,) = decoded.result
    players = decoded.ui["audio"]
    assert len(players) == 2 and all(item["type"] == "temp" for item in players)  # one player per take
    for take, item in zip(audio["waveform"], players):
        samples, rate = sf.read(str(folders["root"] / "temp" / item["subfolder"] / item["filename"]), dtype="float32")
        assert rate == SR and samples.shape == (2 * SR,)
        np.testing.assert_allclose(samples, take[0].numpy(), atol=1 / 32767 + 1e-6)


def test_add_sound_to_video_runs_the_modular_graph_in_one_node(pack, nodes, loaded, folders, monkeypatch):
    monkeypatch.setattr(pack.nodes.add_sound, "_model_and_components",
                        lambda: (loaded["model"], loaded["components"]))
    monkeypatch.setattr(pack.nodes.add_sound, "DEFAULT_SOLVER", "euler")  # the tiny random weights are stiff
    monkeypatch.setattr(pack.nodes.add_sound, "DEFAULT_FIXED_STEPS", 3)
    _, video, *_ = nodes["VSSFlowVideoLoader"].execute(file="tone.mp4")
    one = nodes["VSSFlowAddSoundToVideo"].execute(video, "Hello there.", 4)
    with_sound, audio = one.result
    assert audio["sample_rate"] == SR and tuple(audio["waveform"].shape) == (1, 1, 2 * SR)
    # the same steps as the graph, node by node, with the same settings
    vssflow_video, *_ = nodes["VSSFlowVideoLoader"].execute(video=video)
    (phonemes,) = nodes["VSSFlowPhonemeTokenizer"].execute("Hello there.", 0.0, 0.0, "auto", duration=2.0)
    graph = generate(nodes, loaded, vssflow_video, phonemes, seed=4, steps=3, solver="euler")
    torch.testing.assert_close(audio["waveform"], graph["waveform"])
    (shown,) = one.ui["images"]
    assert shown["type"] == "temp" and Path(with_sound.get_stream_source()).name == shown["filename"]
    assert video_packet_digest(with_sound.get_stream_source()) == video_packet_digest(folders["input"] / "tone.mp4")
    assert not (folders["output"] / "vssflow" / "add_sound").exists()  # a preview: Save Video keeps it


def test_mix_with_the_original_sound(nodes, loaded, folders):
    vssflow_video, video, *_ = nodes["VSSFlowVideoLoader"].execute(file="tone.mp4")
    audio = generate(nodes, loaded, vssflow_video)
    nodes["VSSFlowAudioMux"].execute(video, audio, "mix/m", True, 1.0, 0.25)
    sound, rate, _ = decoded_audio(folders["output"] / "mix" / "m_00001_.mp4")
    assert rate == 48_000 and band_energy(sound[0], rate, 440) > 0.05


def test_a_long_clip_goes_through_the_graph_window_by_window(nodes, loaded, bridge, monkeypatch):
    bars = []

    class Bar:
        def __init__(self, total, node_id=None):
            self.values = []
            bars.append(self)

        def update_absolute(self, value, total=None, preview=None):
            self.values.append((value, total))

    monkeypatch.setattr(bridge, "progress_bar", Bar)
    vssflow_video, _, _, duration, _ = nodes["VSSFlowVideoLoader"].execute(images=torch.rand(60, 8, 8, 3),
                                                                        frame_rate=5.0)
    assert duration == pytest.approx(12.0)
    (phonemes,) = nodes["VSSFlowPhonemeTokenizer"].execute("Hello there.", 9.0, 11.5, "auto",
                                                           duration=duration)
    (visual,) = nodes["VSSFlowVisualEncoder"].execute(loaded["components"], vssflow_video)
    assert visual.windows == 2
    (latent,) = nodes["VSSFlowSampler"].execute(loaded["model"], loaded["components"], visual, phonemes=phonemes,
                                               **sampler_args(steps=3))
    assert tuple(latent.latent.shape) == (1, 2, 128, 250) and latent.stats.steps == 6
    (bar,) = bars
    assert bar.values == [(i, 6) for i in range(1, 7)]  # one bar over both windows
    (audio,) = nodes["VSSFlowVocoderDecode"].execute(loaded["components"], latent)
    assert tuple(audio["waveform"].shape) == (1, 1, 12 * SR)
    with pytest.raises(ValueError, match="longer than the maximum of 10 s"):
        nodes["VSSFlowVideoLoader"].execute(images=torch.rand(60, 8, 8, 3), frame_rate=5.0, max_duration=10.0)


def test_video_loader_refuses_what_it_cannot_place_in_time(nodes):
    loader = nodes["VSSFlowVideoLoader"]
    with pytest.raises(ValueError, match="needs its frame rate"):
        loader.execute(images=torch.rand(10, 8, 8, 3))  # frame_rate left at 0: never assumed
    with pytest.raises(ValueError, match="no video given"):
        loader.execute()
    with pytest.raises(ValueError, match="were both given"):
        loader.execute(file="clip24.mp4", images=torch.rand(10, 8, 8, 3), frame_rate=24.0)


def test_video_loader_follows_a_changed_file(pack, folders):
    cls = pack_nodes(pack)["VSSFlowVideoLoader"]
    before = cls.fingerprint_inputs(file="clip24.mp4")
    assert cls.fingerprint_inputs(file="clip24.mp4") == before
    make_counter_video(folders["input"] / "clip24.mp4", 48, 24)
    assert cls.fingerprint_inputs(file="clip24.mp4") != before
    assert cls.fingerprint_inputs(file="(none)", video=object()) == cls.fingerprint_inputs(file="(none)")


def test_phoneme_tokenizer(nodes):
    tokenize = nodes["VSSFlowPhonemeTokenizer"].execute
    result = tokenize("HH AH0 L OW1", 1.0, 2.0, "auto")
    assert result.ui["vssflow_phonemes"] == [{"tokens": ["<blank>", "HH", "AH0", "L", "OW1", "<blank>"],
                                                 "start": 1.0, "end": 2.0, "duration": None}]
    (track,) = tokenize("HH AH0 L OW1", 1.0, 0.0, "arpabet")
    assert track.lines[0].end is None and track.window(4.0) == (1.0, 4.0)  # end of the clip, fixed by the sampler
    silent = tokenize("", 0.0, 0.0, "auto")
    assert silent.ui["vssflow_phonemes"][0]["tokens"] == [] and silent.result[0].silent
    with pytest.raises(ValueError, match="after the end of the clip"):
        tokenize("hello", 1.0, 5.0, "text", duration=3.0)


def test_speech_window_past_the_clip_is_refused_by_the_sampler(nodes, loaded):
    vssflow_video, *_ = nodes["VSSFlowVideoLoader"].execute(images=torch.rand(20, 8, 8, 3), frame_rate=10.0)
    (phonemes,) = nodes["VSSFlowPhonemeTokenizer"].execute("hello", 0.0, 5.0, "text")  # no duration
    with pytest.raises(ValueError, match="after the end of the clip"):
        generate(nodes, loaded, vssflow_video, phonemes)


def test_speaker_reference(nodes, loaded, folders, monkeypatch, caplog):
    vssflow_video, *_ = nodes["VSSFlowVideoLoader"].execute(images=torch.rand(20, 8, 8, 3), frame_rate=10.0)
    voice = {"waveform": torch.randn(1, 1, 24_000) * 0.1, "sample_rate": 24_000}
    parts = loaded["components"].components
    embeddings = []
    real = type(parts).speaker_embedding

    def spy(self, reference, sample_rate=None):
        embeddings.append(real(self, reference, sample_rate))
        return embeddings[-1]

    monkeypatch.setattr(type(parts), "speaker_embedding", spy)
    audio = generate(nodes, loaded, vssflow_video, speaker=voice)
    assert tuple(audio["waveform"].shape) == (1, 1, 2 * SR) and torch.isfinite(audio["waveform"]).all()
    (embedding,) = embeddings  # RawNet3 heard the reference once
    assert embedding.shape == (32,) and torch.count_nonzero(embedding) > 0
    names = folders["names"]
    (no_rawnet,) = nodes["VSSFlowComponentsLoader"].execute(names["clip"], names["synchformer"], names["vae"],
                                                         names["vocoder"], "none", False, "cpu")
    assert no_rawnet.components.rawnet3 is None
    # without a speaker encoder the reference is ignored, with a warning: a workflow wired for a voice still runs,
    # in the neutral voice (as the shipped speech template does on the demo model)
    with caplog.at_level(logging.WARNING):
        ignored = generate(nodes, {**loaded, "components": no_rawnet}, vssflow_video, speaker=voice)
        neutral = generate(nodes, {**loaded, "components": no_rawnet}, vssflow_video)
    assert "speaker reference is ignored" in caplog.text
    torch.testing.assert_close(ignored["waveform"], neutral["waveform"])


def test_missing_weights_say_how_to_get_them(nodes, bridge, folders, tmp_path):
    bridge.configure(models_dirs=[tmp_path / "empty"])
    try:
        with pytest.raises(FileNotFoundError, match="offline mode is on"):  # the download goes through the registry
            nodes["VSSFlowComponentsLoader"].execute("auto", "auto", "auto", "auto", "none", True, "cpu")
    finally:
        bridge.configure(models_dirs=[folders["root"] / "models" / "vssflow"])


@pytest.mark.skipif(not demo_available(), reason="the demo checkpoint is not in this checkout")
def test_auto_without_a_full_checkpoint_is_the_shipped_demo(nodes, bridge, folders, tmp_path):
    bridge.configure(models_dirs=[tmp_path / "empty"])
    try:
        (loaded,) = nodes["VSSFlowCheckpointLoader"].execute("auto", "cpu", "float32")
        (explicit,) = nodes["VSSFlowCheckpointLoader"].execute("demo", "cpu", "float32")
        # the pack imports its own copy of vssflow_core, so configurations are compared field by field
        assert loaded.model.cfg.to_json() == explicit.model.cfg.to_json() == load_network("demo", device="cpu").cfg.to_json()
        (components,) = nodes["VSSFlowComponentsLoader"].execute("auto", "auto", "auto", "auto", "none", False, "cpu")
        assert type(components.components.clip).__name__ == PixelGridEncoder.__name__
    finally:
        bridge.configure(models_dirs=[folders["root"] / "models" / "vssflow"])


# --------------------------------------------------------------------------------------------------------------------
# Progress, cancel, devices
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver, total", [("euler", 4), ("dopri5", 1000)])
def test_progress_on_every_solver_step(nodes, loaded, bridge, monkeypatch, solver, total):
    bars = []

    class Bar:
        def __init__(self, total, node_id=None):
            self.total, self.node_id, self.values = total, node_id, []
            bars.append(self)

        def update_absolute(self, value, total=None, preview=None):
            self.values.append((value, total))

    monkeypatch.setattr(bridge, "progress_bar", Bar)
    vssflow_video, *_ = nodes["VSSFlowVideoLoader"].execute(images=torch.rand(10, 8, 8, 3), frame_rate=10.0)
    (visual,) = nodes["VSSFlowVisualEncoder"].execute(loaded["components"], vssflow_video)
    (latent,) = running_as(nodes["VSSFlowSampler"], "7").execute(loaded["model"], loaded["components"], visual,
                                                                 **sampler_args(solver=solver, steps=4))
    (bar,) = bars
    assert bar.node_id == "7" and bar.total == total and len(bar.values) == latent.stats.steps
    assert bar.values[-1] == (total, total)
    if solver == "euler":
        assert bar.values == [(1, 4), (2, 4), (3, 4), (4, 4)]
    else:
        assert [v for v, _ in bar.values] == sorted(v for v, _ in bar.values)  # t as a fraction, rising


def test_the_sampler_offers_the_default_sampler_and_takes_a_schedule(nodes, loaded):
    """The pipeline's defaults; ``schedule`` is an optional widget (so saved workflows keep their widget positions)
    that moves the fixed-step solvers' steps."""
    spec = node_def(nodes["VSSFlowSampler"])["input"]
    assert spec["required"]["solver"][1]["default"] == DEFAULT_SOLVER
    assert spec["required"]["steps"][1]["default"] == DEFAULT_FIXED_STEPS
    assert spec["optional"]["schedule"][1]["options"] == list(SCHEDULES)
    assert spec["optional"]["schedule"][1]["default"] == DEFAULT_SCHEDULE
    # in this order, before anything added later: saved workflows keep their widget values in place
    assert list(spec["optional"])[:5] == ["phonemes", "speaker_reference", "schedule", "atol", "rtol"]
    vssflow_video, *_ = nodes["VSSFlowVideoLoader"].execute(images=torch.rand(10, 8, 8, 3), frame_rate=10.0)
    (visual,) = nodes["VSSFlowVisualEncoder"].execute(loaded["components"], vssflow_video)

    def latent(**overrides):
        (out,) = nodes["VSSFlowSampler"].execute(loaded["model"], loaded["components"], visual,
                                                **sampler_args(solver="ab2", steps=4, **overrides))
        return out

    default, balanced, uniform = latent(), latent(schedule="balanced"), latent(schedule="uniform")
    assert default.stats.solver == "ab2" and default.stats.steps == default.stats.evaluations == 4
    assert torch.equal(default.latent, {"balanced": balanced, "uniform": uniform}[DEFAULT_SCHEDULE].latent)
    assert not torch.equal(balanced.latent, uniform.latent)


def test_cancel_stops_sampling_at_the_next_step(nodes, loaded, bridge, monkeypatch):
    class Interrupted(BaseException):  # ComfyUI's InterruptProcessingException is a BaseException too
        pass

    calls = []

    def interrupt_on_third_step():
        calls.append(1)
        if len(calls) == 3:
            raise Interrupted

    monkeypatch.setattr(bridge, "throw_if_interrupted", interrupt_on_third_step)
    vssflow_video, *_ = nodes["VSSFlowVideoLoader"].execute(images=torch.rand(10, 8, 8, 3), frame_rate=10.0)
    (visual,) = nodes["VSSFlowVisualEncoder"].execute(loaded["components"], vssflow_video)
    with pytest.raises(Interrupted):
        nodes["VSSFlowSampler"].execute(loaded["model"], loaded["components"], visual, **sampler_args(steps=1000))
    assert len(calls) == 3


def test_weights_go_back_to_the_offload_device_even_on_failure(pack):
    moves = []

    class Module(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(4))

        def to(self, device):
            moves.append(str(device))
            return self

    on_device = pack.nodes.common.on_device
    with pytest.raises(RuntimeError, match="boom"):
        with on_device([Module()], torch.device("cuda"), torch.device("cpu")):
            assert moves == ["cuda"]
            raise RuntimeError("boom")
    assert moves == ["cuda", "cpu"]
    moves.clear()
    with on_device([Module()], torch.device("cpu"), torch.device("cpu")):
        pass
    assert moves == []  # nothing to move when both are the CPU


def test_checkpoint_loader_dtype(nodes, folders):
    (model,) = nodes["VSSFlowCheckpointLoader"].execute(folders["names"]["checkpoint"], "cpu", "bfloat16")
    assert next(model.model.parameters()).dtype == torch.bfloat16
    assert model.load_device == model.offload_device == torch.device("cpu")


@pytest.mark.parametrize("choice, dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_components_loader_runs_the_encoders_in_the_chosen_precision(nodes, folders, choice, dtype):
    names = folders["names"]
    (parts,) = nodes["VSSFlowComponentsLoader"].execute(names["clip"], names["synchformer"], names["vae"],
                                                     names["vocoder"], "none", False, "cpu", encoder_dtype=choice)
    components = parts.components
    assert next(components.clip.parameters()).dtype == next(components.synchformer.parameters()).dtype == dtype
    assert next(components.vae.parameters()).dtype == torch.float32  # only the encoders change


def test_components_loader_uses_a_diffusers_vae_folder(loaded):
    # the tiny VAE's config.json (8 GroupNorm groups) was read, not guessed from tensor shapes (32 groups)
    assert loaded["components"].components.vae.config.norm_num_groups == 8


def test_frames_video_without_comfyui(bridge):
    video = bridge.video_from_frames(torch.zeros(5, 4, 4, 3), 29.97)
    assert video.get_components().frame_rate == Fraction(2997, 100)


def test_dialogue_node_lines_subtitles_and_voices(nodes, folders):
    dialogue = nodes["VSSFlowDialogue"].execute
    result = dialogue("1.0-2.5 [alice]: Hello there\n3-4 [bob]: Hi", "(none)", "auto", duration=10.0)
    (track,) = result
    assert [(l.start, l.end, l.voice) for l in track.lines] == [(1.0, 2.5, "alice"), (3.0, 4.0, "bob")]
    assert result.ui["vssflow_dialogue"][0]["lines"][0]["tokens"][1:5] == ["HH", "AH0", "L", "OW1"]
    voice = {"waveform": torch.zeros(1, 1, 1600), "sample_rate": 16000}
    (voiced,) = dialogue("1-2 [alice]: Hello", "(none)", "auto", voice_1_name="Alice", voice_1=voice)
    assert dict(voiced.references) == {"Alice": voice}
    with pytest.raises(ValueError, match=r"row 1: is spoken by 'alice', a voice with no reference \(given: bob\)"):
        dialogue("1-2 [alice]: Hello", "(none)", "auto", voice_1_name="bob", voice_1=voice)
    with pytest.raises(ValueError, match="no lines: write one 'start-end"):
        dialogue("  ", "(none)", "auto")
    (folders["input"] / "lines.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nBOB: Hello\n", encoding="utf-8")
    (from_file,) = dialogue("", "lines.srt", "auto", duration=5.0)
    assert from_file.voices == ("BOB",) and from_file.lines[0].cue == 1
