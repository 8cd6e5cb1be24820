"""The demo model: parameter-free front-ends, the demo-front-end training path, the shipped checkpoint as the default,
and the held-out evaluation."""

from __future__ import annotations

import logging
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from vssflow_core.codec.mel import LogMelFrontend
from vssflow_core.codec.vae import pack_latent, unpack_latent
from vssflow_core.config import SEQUENCE, VSSFlowConfig
from vssflow_core.demo import DEMO_CHECKPOINT, demo_available, frontend_config, load_frontends
from vssflow_core.demo.frontends import (DemoFrontendConfig, GriffinLimVocoder, MelPatchCodec, MotionGridEncoder,
                                         PixelGridEncoder)
from vssflow_core.flow.settings import SamplerSettings
from vssflow_core.loading import load_components, load_network, resolve_checkpoint
from vssflow_core.pipeline import VSSFlowPipeline
from vssflow_core.train.config import ConfigError, TrainConfig

CFG = DemoFrontendConfig()
DEMO_TOML = Path(__file__).resolve().parents[1] / "vssflow_core" / "demo" / "train.toml"
MAX_DEMO_BYTES = 25 * 1024 * 1024


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded (see the conftest fixture)."""


def tone_burst(start: float, stop: float, hz: float = 700.0, seconds: float = 10.0, rate: int = 16_000) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return 0.4 * torch.sin(2 * math.pi * hz * t) * ((t >= start) & (t < stop)) + 1e-3 * torch.randn(t.shape[0])


# ---------------------------------------------------------------------------------------------------- audio stand-ins


def test_codec_has_the_vae_latent_geometry_and_round_trips_exactly_without_deblocking():
    mel = LogMelFrontend(CFG.mel_config())(tone_burst(1.0, 2.0)[None], SEQUENCE.mel_frames)
    codec = MelPatchCodec(DemoFrontendConfig(deblock=False))
    posterior = codec.encode(mel)
    packed = pack_latent(posterior.mean)
    assert packed.shape == (1, 128, SEQUENCE.latent_length) == (1, CFG.latent_channels, 250)
    assert torch.equal(posterior.std, torch.zeros_like(posterior.mean))  # deterministic: targets are the patches
    decoded = codec.decode(unpack_latent(packed, codec.config.latent_channels))
    torch.testing.assert_close(decoded[:, 0], mel, atol=1e-5, rtol=0)


def test_deblocking_removes_a_ripple_at_the_patch_rate_and_keeps_attacks_within_two_frames():
    codec = MelPatchCodec(CFG)
    frames = torch.arange(200, dtype=torch.float32)
    level = torch.where(frames >= 101, 0.0, -8.0)  # a sound starting at frame 101 (not on a patch boundary)
    ripple = 1.5 * torch.cos(2 * math.pi * frames / CFG.patch) * (frames >= 101)  # generated patches disagreeing
    mel = (level + ripple)[None, None, :, None].expand(1, 1, 200, CFG.n_mels)
    smoothed = codec.deblock(mel)[0, 0, :, 0]
    torch.testing.assert_close(smoothed[110:190], torch.zeros(80), atol=1e-5, rtol=0)  # ripple gone, level kept
    assert torch.all(smoothed[:99] == -8.0) and torch.all(smoothed[103:190].abs() < 1e-5)  # attack: frames 99..102
    latent = codec.encode(mel[:, 0]).mean
    torch.testing.assert_close(codec.decode(latent), smoothed[None, None, :, None].expand_as(mel))


def test_codec_refuses_mels_that_do_not_tile_into_patches():
    with pytest.raises(ValueError, match="multiples of 4"):
        MelPatchCodec(CFG).encode(torch.zeros(1, 1001, 32))


def test_griffin_lim_keeps_when_and_at_what_pitch_a_sound_plays():
    mel = LogMelFrontend(CFG.mel_config())(tone_burst(3.0, 4.0)[None], SEQUENCE.mel_frames)
    waveform = GriffinLimVocoder(CFG)(mel)[0]
    assert waveform.shape == (SEQUENCE.num_samples,)
    rate = SEQUENCE.sample_rate
    rms = lambda a, b: waveform[int(a * rate):int(b * rate)].pow(2).mean().sqrt().item()  # noqa: E731
    assert rms(3.1, 3.9) > 30 * rms(5.0, 9.0)
    spectrum = torch.fft.rfft(waveform[int(3.1 * rate):int(3.9 * rate)]).abs()
    peak_hz = spectrum.argmax().item() * rate / (0.8 * rate)
    assert abs(peak_hz - 700.0) < 60.0  # within a mel band at 700 Hz


def test_griffin_lim_is_deterministic():
    mel = torch.randn(1, 200, 32) - 5
    vocoder = GriffinLimVocoder(CFG)
    assert torch.equal(vocoder(mel), vocoder(mel))


# ---------------------------------------------------------------------------------------------------- picture stand-ins


def frames_with_square(appears_at: int, count: int = 40, size: int = 96) -> torch.Tensor:
    frames = torch.full((count, size, size, 3), 40, dtype=torch.uint8)
    frames[appears_at:, 30:60, 30:60] = 230
    return frames


def test_motion_grid_marks_the_frame_where_the_picture_changes():
    tokens = MotionGridEncoder(CFG).encode_video(frames_with_square(17), num_frames=40, channels_last=True)
    assert tokens.shape == (40, CFG.synch_dim)
    change = tokens[:, CFG.synch_grid**2:].abs().sum(dim=1)
    assert change.argmax().item() == 17
    assert change[[i for i in range(40) if i != 17]].max() == 0


def test_motion_grid_pads_short_clips_with_black_frames_one_token_per_latent_frame():
    tokens = MotionGridEncoder(CFG).encode_video(frames_with_square(0, count=30), channels_last=True)
    assert tokens.shape == (SEQUENCE.synch_frames, CFG.synch_dim) == (SEQUENCE.latent_length, CFG.synch_dim)
    grey = tokens[:, : CFG.synch_grid**2]
    assert torch.all(grey[30:] == -1.0)  # black, centred to [-1, 1]
    assert tokens[30, CFG.synch_grid**2:].abs().sum() > 0  # the cut to black is a change


def test_motion_grid_batches_clips():
    clips = torch.stack([frames_with_square(5), frames_with_square(9)])
    batched = MotionGridEncoder(CFG).encode_video(clips, num_frames=40, channels_last=True)
    assert batched.shape == (2, 40, CFG.synch_dim)
    torch.testing.assert_close(batched[1], MotionGridEncoder(CFG).encode_video(clips[1], num_frames=40,
                                                                                channels_last=True))


def test_pixel_grid_gives_colour_cells_in_batches():
    frames = torch.zeros(7, 64, 64, 3)
    frames[..., 0] = 1.0  # pure red
    features = PixelGridEncoder(CFG).encode_frames(frames, batch_size=3, channels_last=True)
    assert features.shape == (7, CFG.clip_dim)
    cells = features.view(7, 3, CFG.clip_grid, CFG.clip_grid)
    assert torch.all(cells[:, 0] == 1.0) and torch.all(cells[:, 1:] == -1.0)


def test_frontend_config_round_trips_through_its_file(tmp_path):
    (tmp_path / "frontend.json").write_text(CFG.to_json())
    assert frontend_config(tmp_path) == CFG
    assert frontend_config(tmp_path / "vssflow.safetensors") == CFG  # the file's folder is looked at
    assert frontend_config(None) is None


# ---------------------------------------------------------------------------------------------------- training config


def test_demo_preset_fits_the_demo_frontends():
    values = tomllib.loads(DEMO_TOML.read_text())
    cfg = TrainConfig.from_dict(values, base_dir=DEMO_TOML.parent).validate()
    assert cfg.uses_demo_frontend
    assert (cfg.model.clip_dim, cfg.model.synch_dim, cfg.model.latent_channels) == (
        cfg.demo.clip_dim, cfg.demo.synch_dim, cfg.demo.latent_channels)


def test_a_model_that_does_not_fit_the_demo_frontends_is_refused():
    with pytest.raises(ConfigError, match=r"model.clip_dim = 64 \(the demo front-ends give 192\)"):
        TrainConfig.from_dict({"encoders": {"frontend": "demo"}, "model": {"clip_dim": 64}}).validate()


def test_an_unknown_frontend_is_refused():
    with pytest.raises(ConfigError, match="encoders.frontend must be one of"):
        TrainConfig.from_dict({"encoders": {"frontend": "magic"}}).validate()


# ---------------------------------------------------------------------------------------------------- the shipped demo


requires_demo = pytest.mark.skipif(not demo_available(), reason="the demo checkpoint is not in this checkout")


@requires_demo
def test_shipped_demo_is_small_and_matches_the_preset():
    files = [p for p in DEMO_CHECKPOINT.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_DEMO_BYTES
    model = load_network("demo", device="cpu")
    preset = tomllib.loads(DEMO_TOML.read_text())["model"]
    assert {k: getattr(model.cfg, k) for k in preset} == preset
    assert frontend_config(DEMO_CHECKPOINT) == DemoFrontendConfig.read(DEMO_CHECKPOINT / "frontend.json")


@requires_demo
def test_without_a_full_checkpoint_the_demo_is_the_default(tmp_path, caplog):
    empty = tmp_path / "models"
    empty.mkdir()
    with caplog.at_level(logging.WARNING):
        assert resolve_checkpoint(None, models_dir=empty) == DEMO_CHECKPOINT
    assert "using the demo model" in caplog.text
    components = load_components(models_dir=empty, device="cpu")
    assert isinstance(components.clip, PixelGridEncoder) and isinstance(components.vocoder, GriffinLimVocoder)


@requires_demo
def test_demo_generates_the_exact_duration_from_frames():
    pipeline = VSSFlowPipeline.load("demo", device="cpu")
    frames = frames_with_square(20, count=75)  # 3 s at 25 fps
    result = pipeline.generate(frames, fps=25, seed=3, settings=SamplerSettings(solver="euler", steps=4))
    assert result.waveform.shape == (1, 3 * SEQUENCE.sample_rate)
    assert torch.isfinite(result.waveform).all()


def test_a_demo_style_training_checkpoint_loads_with_its_frontends(tmp_path):
    """What ``encoders.frontend = "demo"`` training writes (weights + frontend.json) is a complete pipeline."""
    from vssflow_core.model.vssflow import VSSFlow
    from vssflow_core.weights.checkpoint import save_vssflow

    net = VSSFlowConfig(clip_dim=CFG.clip_dim, synch_dim=CFG.synch_dim, speaker_dim=8, lip_dim=8, context_dim=32,
                        lip_channels=8, phone_channels=8, synch_channels=8, num_layers=1, num_heads=2, head_dim=16,
                        num_kv_heads=1, time_proj_dim=16, ff_mult=2)
    torch.manual_seed(0)
    save_vssflow(VSSFlow(net), tmp_path / "vssflow.safetensors")
    (tmp_path / "frontend.json").write_text(CFG.to_json())
    pipeline = VSSFlowPipeline.load(tmp_path, device="cpu")
    clip, synch, vae, vocoder = load_frontends(CFG)
    assert type(pipeline.components.clip) is type(clip) and type(pipeline.components.vae) is type(vae)
    result = pipeline.generate(frames_with_square(5, count=50), fps=25,
                               settings=SamplerSettings(solver="euler", steps=2))
    assert result.waveform.shape == (1, 2 * SEQUENCE.sample_rate)


# ---------------------------------------------------------------------------------------------------- evaluation


def test_evaluation_scores_timing_and_the_shuffled_baseline():
    from vssflow_core.demo.evaluate import score_sound, score_talk, shuffled_frames

    rate = SEQUENCE.sample_rate
    audio = np.zeros(4 * rate)
    for t in (0.5, 1.7, 3.0):
        audio[int(t * rate):int((t + 0.1) * rate)] = 0.5 * np.sin(np.arange(int(0.1 * rate)) * 0.3)
    assert score_sound(audio, rate, {"events": [{"time": 0.5}, {"time": 1.7}, {"time": 3.0}]})["f1"] == 1.0
    assert score_sound(audio, rate, {"events": [{"time": 1.0}, {"time": 2.4}]})["f1"] == 0.0
    frame_times = np.arange(100) / 25
    mouth = np.any([(frame_times >= t) & (frame_times < t + 0.1) for t in (0.5, 1.7, 3.0)], axis=0).astype(float)
    talk = {"mouth_open": mouth.tolist(), "speech_start": 0.4, "speech_end": 3.3}
    assert score_talk(audio, rate, talk, fps=25)["corr"] > 0.8
    frames = np.arange(10)[:, None, None, None] * np.ones((1, 2, 2, 3))
    assert sorted(shuffled_frames(frames)[:, 0, 0, 0]) == list(range(10))


@requires_demo
def test_the_readme_first_command_generates_sound_for_the_shipped_example(tmp_path):
    """The README's first command, minus the set-up, with the output redirected into a temporary folder."""
    import re
    import shlex
    import subprocess
    import sys

    from vssflow_core.media import video_duration

    repo = DEMO_TOML.parents[2]
    first_block = re.search(r"```bash\n(.*?)\n```", (repo / "README.md").read_text(), re.S).group(1)
    command = shlex.split(first_block.split("&&", 1)[1])
    assert command[:3] == [".venv/bin/python", "-m", "vssflow_core"] and "generate" in command
    out = tmp_path / "out.mp4"
    command[command.index("-o") + 1] = str(out)
    done = subprocess.run([sys.executable, *command[1:]], cwd=repo, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "using the demo model" in done.stderr
    assert abs(video_duration(out) - video_duration(repo / "demo_videos" / "bouncing.mp4")) < 0.05
