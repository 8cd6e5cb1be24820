"""The pipeline's parts a graph uses on their own: components without a network, the network alone, phoneme tracks
fixed to a clip later, explicit component files, and weights spread over several models folders."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tiny_models import build_tiny_components
from vssflow_core.config import SEQUENCE
from vssflow_core.components import PipelineComponents, PipelineConfigError
from vssflow_core.loading import component_path, load_components, load_network
from vssflow_core.pipeline import VSSFlowPipeline
from vssflow_core.text.track import PhonemeTrack, phoneme_frame_ids, phoneme_track
from vssflow_core.video import clip_frames, synchformer_frames
from vssflow_core.video.synthetic import make_counter_video
from vssflow_core.weights.hub import MissingWeightsError, resolve_any

HELLO = "HH AH0 L OW1"


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded (see the conftest fixture)."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_components(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def parts(tiny) -> PipelineComponents:
    paths = {k: v for k, v in tiny.items() if k != "checkpoint"}
    return load_components(device="cpu", **paths)


def test_components_work_without_a_network(tiny, parts, tmp_path):
    clip = make_counter_video(tmp_path / "c.mp4", 50, 25)
    visual = parts.encode_video(clip)
    assert visual.duration == pytest.approx(2.0) and visual.clip.shape == (1, 100, 64)
    assert parts.decode(torch.randn(2, parts.latent_channels, 250), 2.0).shape == (2, 32_000)
    assert parts.has_speaker_encoder and set(parts.modules()) == {"clip", "synchformer", "vae", "vocoder", "rawnet3"}

    model = load_network(tiny["checkpoint"], device="cpu")
    pipe = VSSFlowPipeline(model, parts)
    assert pipe.components is parts  # shared, not copied


def test_components_are_checked_on_their_own(parts):
    with pytest.raises(PipelineConfigError, match="vocoder makes 160 samples per frame at 16000 Hz"):
        PipelineComponents(parts.clip, parts.synchformer, parts.vae, parts.vocoder,
                           sequence=replace(SEQUENCE, sample_rate=22_050))


def test_the_configured_frame_rates_reach_the_frame_samplers(parts, tmp_path, monkeypatch):
    """Components made with another sequence configuration sample each window's frames at its rates."""
    seq = replace(SEQUENCE, clip_fps=5, synch_fps=20)
    other = PipelineComponents(parts.clip, parts.synchformer, parts.vae, parts.vocoder, sequence=seq)
    sampled = {}

    def recording(name, sampler):
        def sample(*args, **kwargs):
            sampled[name] = sampler(*args, **kwargs)
            return sampled[name]
        return sample

    monkeypatch.setattr("vssflow_core.components.clip_frames", recording("clip", clip_frames))
    monkeypatch.setattr("vssflow_core.components.synchformer_frames", recording("synch", synchformer_frames))
    visual = other.encode_video(make_counter_video(tmp_path / "c.mp4", 50, 25))
    for name, fps in (("clip", seq.clip_fps), ("synch", seq.synch_fps)):
        frames = sampled[name]
        count = round(seq.duration_sec * fps)
        assert frames.fps == fps and list(frames.times) == pytest.approx([k / fps for k in range(count)])
    assert visual.clip.shape[1] == seq.clip_frames and visual.synch.shape[1] == seq.synch_segments


def test_phoneme_track_waits_for_the_clip():
    track = phoneme_track(HELLO, 0.5)
    assert track.tokens == ("<blank>", "HH", "AH0", "L", "OW1", "<blank>") and track.lines[0].end is None
    assert track.window() == (0.5, 10.0) and track.window(3.0) == (0.5, 3.0)
    ids = track.frame_ids(3.0)
    # int(0.5 * 25) = 12 silent frames, then int(2.5 * 25) = 62 frames of speech
    assert int(ids[:12].abs().sum()) == 0 and bool((ids[12:74] > 0).all()) and int(ids[74:].abs().sum()) == 0
    torch.testing.assert_close(ids, phoneme_frame_ids(HELLO, 0.5, None, 3.0))
    with pytest.raises(ValueError, match="after the end of the clip"):
        phoneme_track(HELLO, 0.5, 4.0).frame_ids(3.0)
    with pytest.raises(ValueError, match="after the end of the clip"):
        phoneme_track(HELLO, 0.5, 4.0, duration=3.0)  # known duration: refused at once


def test_phoneme_track_modes_and_silence():
    assert phoneme_track("  ").silent and PhonemeTrack().frame_ids(3.0).abs().sum() == 0
    assert phoneme_track("hello", mode="text").tokens[1:-1] == ("HH", "AH0", "L", "OW1")
    with pytest.raises(ValueError, match="invalid ARPAbet token"):
        phoneme_track("hello world", mode="arpabet")
    with pytest.raises(ValueError, match="must be after its start"):
        phoneme_track(HELLO, 2.0, 1.0)


def test_component_path_uses_a_diffusers_folder(tmp_path, tiny):
    vae_file = tiny["vae"] / "diffusion_pytorch_model.safetensors"
    assert component_path("vae", vae_file) == tiny["vae"]  # its config.json is used
    lone = tmp_path / "diffusion_pytorch_model.safetensors"
    shutil.copy(vae_file, lone)
    assert component_path("vae", lone) == lone  # no config.json beside it
    assert component_path("clip", tiny["clip"]) == tiny["clip"]
    assert component_path("vocoder", tiny["vocoder"]) == tiny["vocoder"]


def test_resolve_any_searches_every_folder(tmp_path, tiny, monkeypatch):
    monkeypatch.delenv("VSSFLOW_MODELS_DIR", raising=False)
    first, second = tmp_path / "a", tmp_path / "b"
    (second / "rawnet3").mkdir(parents=True)
    shutil.copy(tiny["rawnet3"], second / "rawnet3" / "rawnet3.safetensors")
    found = resolve_any("rawnet3", [first, second], verify=False)
    assert found.weights == second / "rawnet3" / "rawnet3.safetensors" and found.origin == "models_dir"
    with pytest.raises(MissingWeightsError) as missing:
        resolve_any("clip", [first, second])
    message = str(missing.value)
    assert str(first / "clip") in message and str(second / "clip") in message and "Also looked in" in message
    with pytest.raises(MissingWeightsError, match="offline"):
        resolve_any("clip", [first, second], download=True)  # the tests run with HF_HUB_OFFLINE=1


def test_pipeline_load_takes_several_models_folders(tmp_path, tiny, monkeypatch):
    monkeypatch.delenv("VSSFLOW_MODELS_DIR", raising=False)
    first, second = tmp_path / "a", tmp_path / "b"
    (first / "vssflow").mkdir(parents=True)
    shutil.copy(tiny["checkpoint"], first / "vssflow" / "vssflow.safetensors")
    (second / "clip").mkdir(parents=True)
    shutil.copy(tiny["clip"], second / "clip" / "clip_vit_b16.safetensors")
    pipe = VSSFlowPipeline.load(models_dir=[first, second], synchformer=tiny["synchformer"], vae=tiny["vae"],
                                vocoder=tiny["vocoder"], speaker=False, verify=False, device="cpu")
    assert pipe.components.clip.config.width == 64 and not pipe.components.has_speaker_encoder
