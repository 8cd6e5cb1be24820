"""The generation pipeline and the ``generate`` command, end to end on tiny random components.

Every component is a small random model saved in its real key layout (the VSSFlow network with its config in the
safetensors metadata, OpenAI CLIP ``visual.*``, Synchformer ``vfeat_extractor.*``, RawNet3, a diffusers VAE folder,
the SpeechT5HifiGan vocoder), so loading, routing, sampling, decoding and muxing all run for real in about a second.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from test_media_mux import (
    band_energy,
    decoded_audio,
    make_video_with_audio,
    sine,
    video_packet_digest,
)
from tiny_models import CLIP_CFG, VAE_CFG, build_tiny_components, save_module as _save
from vssflow_core.codec.vae import MelVAE
from vssflow_core.config import SEQUENCE
from vssflow_core.encoders.clip import CLIPVisualEncoder
from vssflow_core.flow.settings import SamplerSettings
from vssflow_core.generate import main as generate_main
from vssflow_core.flow.solvers import DEFAULT_SOLVER
from vssflow_core.media.mux import AAC_FRAME_SAMPLES
from vssflow_core.media.together import written_together
from vssflow_core.components import PipelineComponents, PipelineConfigError
from vssflow_core.loading import resolve_checkpoint
from vssflow_core.pipeline import VSSFlowPipeline
from vssflow_core.results import SamplingProgress
from vssflow_core.text.track import phoneme_frame_ids
from vssflow_core.windows import VideoTooLongError, WindowPlan, check_duration
from vssflow_core.video.synthetic import make_counter_video
from vssflow_core.demo import DEMO_CHECKPOINT
from vssflow_core.weights.hub import MissingWeightsError

REPO_ROOT = Path(__file__).resolve().parents[1]
SR = SEQUENCE.sample_rate
HELLO = "HH AH0 L OW1"  # ARPAbet: no G2P start-up cost in these tests

@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded (see the conftest fixture)."""


@pytest.fixture(scope="module")
def components(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_components(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def pipe(components) -> VSSFlowPipeline:
    paths = {k: v for k, v in components.items() if k != "checkpoint"}
    return VSSFlowPipeline.load(components["checkpoint"], device="cpu", **paths)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    fake = root / "notes.mp4"
    fake.write_text("a text file wearing an .mp4 name\n" * 20)
    return {
        "3s": Path(make_counter_video(root / "clip3.mp4", 75, 25)),
        "3s_audio": make_video_with_audio(root / "clip3_audio.mp4"),
        "12s": Path(make_counter_video(root / "clip12.mp4", 300, 25, keyframe_interval=25)),
        "fake": fake,
    }


def fast(**kwargs):
    """Sampling arguments that keep a run well under a second."""
    return {"settings": SamplerSettings(solver="euler", steps=3), **kwargs}


# --------------------------------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------------------------------


def test_visual_features_cover_the_window(pipe, videos):
    visual = pipe.components.encode_video(videos["3s"])
    assert visual.clip.shape == (1, 100, 64) and visual.synch.shape == (1, 30, 8, 64)
    assert visual.duration == pytest.approx(3.0) and visual.source_fps == pytest.approx(25.0)
    # past 3 s the window is black, as the official extractors pad: every padded CLIP frame gives the same feature
    padded = visual.clip[0, 30:]
    assert torch.allclose(padded, padded[:1].expand_as(padded))
    assert not torch.allclose(visual.clip[0, 0], padded[0])


def test_in_memory_frames_are_accepted(pipe, videos):
    from vssflow_core.video import sample_frames

    decoded = sample_frames(videos["3s"], fps=25, backend="pyav").frames  # [75, 48, 64, 3] uint8
    visual = pipe.components.encode_video(decoded.float() / 255, fps=25)
    assert visual.duration == pytest.approx(3.0)
    assert visual.clip.shape == (1, 100, 64) and visual.synch.shape == (1, 30, 8, 64)
    # a ComfyUI VIDEO's components (images + frame_rate) give the same features as the same frames with fps
    components = SimpleNamespace(images=decoded.float() / 255, frame_rate=Fraction(25))
    torch.testing.assert_close(pipe.components.encode_video(components).clip, visual.clip)


def test_a_clip_longer_than_the_window_is_encoded_window_by_window(pipe, videos):
    visual = pipe.components.encode_video(videos["12s"])
    assert visual.windows == 2 and visual.plan.starts == (0.0, 2.0) and visual.duration == pytest.approx(12.0)
    assert visual.clip.shape == (2, 100, 64) and visual.synch.shape == (2, 30, 8, 64)
    assert visual.window(1).clip.shape == (1, 100, 64)
    with pytest.raises(ValueError, match="condition one at a time"):
        pipe.conditions(visual)


def test_too_long_clip_is_refused_before_encoding(pipe, videos):
    with pytest.raises(VideoTooLongError, match=r"12\.00 s long, longer than the maximum of 5 s"):
        pipe.components.encode_video(videos["12s"], max_duration=5)


def test_unknown_sampler_names_are_refused_before_the_video_is_read():
    with pytest.raises(ValueError, match="unknown solver 'ddim'; choose one of euler, midpoint"):
        SamplerSettings(solver="ddim")
    with pytest.raises(ValueError, match="unknown time schedule 'karras'; choose one of uniform, balanced"):
        SamplerSettings(solver="heun", schedule="karras")
    with pytest.raises(ValueError, match="guidance scale must be a finite number"):
        SamplerSettings(guidance_scale=float("nan"))


def test_duration_limit_allows_a_frame_of_slack():
    assert check_duration(3.0) == 3.0
    assert check_duration(10.03) == 10.03  # a "10 s" clip one frame long is generated in one window ...
    assert check_duration(45.0) == 45.0 and check_duration(900.0) == 900.0
    with pytest.raises(VideoTooLongError, match="longer than the maximum of 900 s"):
        check_duration(900.5)


def test_a_frame_past_the_window_is_silence(pipe):
    waveform = pipe.components.decode(torch.randn(1, 128, 250), 10.03)  # ... and its last 30 ms are silence
    assert waveform.shape == (1, round(10.03 * SR))
    assert waveform[0, 160_000:].abs().max() == 0 and waveform[0, :160_000].abs().max() > 0


def test_phoneme_ids_follow_the_speech_window():
    assert int(phoneme_frame_ids(None).abs().sum()) == 0
    assert int(phoneme_frame_ids("   ").abs().sum()) == 0
    ids = phoneme_frame_ids(HELLO, 1.0, 2.0, duration=3.0)
    assert ids.shape == (250,)
    assert int(ids[:25].abs().sum()) == 0 and int(ids[50:].abs().sum()) == 0 and bool((ids[25:50] > 0).all())
    whole = phoneme_frame_ids(HELLO, duration=3.0)  # default window: the whole clip, not the 10 s window
    assert bool((whole[:75] > 0).all()) and int(whole[75:].abs().sum()) == 0
    with pytest.raises(ValueError, match="after the end of the clip"):
        phoneme_frame_ids(HELLO, 1.0, 4.0, duration=3.0)
    with pytest.raises(ValueError, match="nothing to pronounce"):
        phoneme_frame_ids("!!! ???", duration=3.0)


def test_speaker_and_lip_conditions(pipe, tmp_path, components):
    assert torch.count_nonzero(pipe.speaker_embedding(None)) == 0
    ref = tmp_path / "ref.wav"
    sf.write(str(ref), np.random.default_rng(0).normal(0, 0.1, 24_000).astype(np.float32), 24_000)
    embedding = pipe.speaker_embedding(ref)
    assert embedding.shape == (32,) and torch.count_nonzero(embedding) > 0

    assert pipe.lip_features(None).shape == (250, 1024)
    lip = tmp_path / "lip.npy"
    np.save(lip, np.ones((60, 1024), np.float32))
    features = pipe.lip_features(lip)
    assert features.shape == (250, 1024) and features[:60].eq(1).all() and features[60:].eq(0).all()

    paths = {k: v for k, v in components.items() if k not in ("checkpoint", "rawnet3")}
    no_speaker = VSSFlowPipeline.load(components["checkpoint"], device="cpu", speaker=False, **paths)
    assert not no_speaker.components.has_speaker_encoder
    with pytest.raises(ValueError, match="RawNet3"):
        no_speaker.components.speaker_embedding(ref)
    # the pipeline ignores it with a warning (tests/test_hardening_runtime.py), so a wired workflow still runs
    assert torch.count_nonzero(no_speaker.speaker_embedding(ref)) == 0


def test_generate_length_and_seed_reproducibility(pipe, videos):
    first = pipe.generate(videos["3s"], HELLO, seed=7, **fast())
    again = pipe.generate(videos["3s"], HELLO, seed=7, **fast())
    other = pipe.generate(videos["3s"], HELLO, seed=8, **fast())
    assert first.waveform.shape == (1, 3 * SR) and first.sample_rate == SR
    assert torch.isfinite(first.waveform).all() and first.waveform.abs().max() > 0
    assert torch.equal(first.waveform, again.waveform)
    assert not torch.allclose(first.waveform, other.waveform)
    assert first.stats.seeds == (7,) and first.as_comfy_audio()["waveform"].shape == (1, 1, 3 * SR)


def test_batch_items_keep_their_own_seed(pipe, videos):
    batch = pipe.generate(videos["3s"], seed=10, batch_size=2, **fast())
    single = pipe.generate(videos["3s"], seed=11, **fast())
    assert batch.stats.seeds == (10, 11) and batch.waveform.shape == (2, 3 * SR)
    torch.testing.assert_close(batch.waveform[1], single.waveform[0], atol=1e-4, rtol=0)
    assert not torch.allclose(batch.waveform[0], batch.waveform[1])


def test_output_is_trimmed_to_the_clip_duration(pipe):
    latent = torch.randn(1, 128, 250)
    assert pipe.components.decode(latent, 2.5).shape == (1, 40_000)
    assert pipe.components.decode(latent).shape == (1, 160_000)  # the whole window


@pytest.mark.parametrize("solver", ["euler", "dopri5"])
def test_progress_callback_once_per_step(pipe, videos, solver):
    visual = pipe.components.encode_video(videos["3s"])
    calls: list[SamplingProgress] = []
    sampled = pipe.sample(pipe.conditions(visual), seed=0, settings=SamplerSettings(solver=solver, steps=5),
                          callback=calls.append)
    assert len(calls) == sampled.stats.steps > 0
    assert [c.step for c in calls] == list(range(1, sampled.stats.steps + 1))
    assert all(a.t < b.t for a, b in zip(calls, calls[1:])) and calls[-1].t == pytest.approx(1.0)
    assert calls[-1].evaluations == sampled.stats.evaluations
    assert calls[0].total_steps == (5 if solver == "euler" else None)
    assert sampled.latent.shape == (1, 128, 250)


def test_raising_in_the_callback_cancels(pipe, videos):
    class Cancelled(Exception):
        pass

    seen = []

    def cancel_at_two(progress: SamplingProgress) -> None:
        seen.append(progress.step)
        if progress.step == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        pipe.generate(videos["3s"], settings=SamplerSettings(solver="euler", steps=10), callback=cancel_at_two)
    assert seen == [1, 2]


def test_bfloat16_network_keeps_a_float32_state(components, videos):
    paths = {k: v for k, v in components.items() if k != "checkpoint"}
    half = VSSFlowPipeline.load(components["checkpoint"], device="cpu", dtype=torch.bfloat16, **paths)
    assert half.dtype == torch.bfloat16
    calls = []
    audio = half.generate(videos["3s"], callback=calls.append, **fast())
    assert audio.waveform.dtype == torch.float32 and torch.isfinite(audio.waveform).all()
    assert len(calls) == 3


def test_components_that_do_not_fit_are_refused(pipe):
    wide_clip = CLIPVisualEncoder(dataclasses.replace(CLIP_CFG, width=128, heads=2))
    with pytest.raises(PipelineConfigError, match="CLIP gives 128-d"):
        parts = pipe.components
        VSSFlowPipeline(pipe.model, PipelineComponents(wide_clip, parts.synchformer, parts.vae, parts.vocoder))


def test_load_through_a_models_folder(tmp_path, components, videos, monkeypatch):
    monkeypatch.delenv("VSSFLOW_MODELS_DIR", raising=False)
    models = tmp_path / "models"
    layout = {"vssflow": ("checkpoint", "vssflow.safetensors"), "clip": ("clip", "clip_vit_b16.safetensors"),
              "synchformer": ("synchformer", "ext_weights/synchformer_state_dict.pth"),
              "rawnet3": ("rawnet3", "rawnet3.safetensors"), "vocoder": ("vocoder", "vocoder.safetensors")}
    from safetensors.torch import load_file

    for component, (key, name) in layout.items():
        target = models / component / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".pth"):  # the published Synchformer file is a pickle
            torch.save(load_file(str(components[key])), target)
        else:
            target.write_bytes(components[key].read_bytes())
    (models / "vae").mkdir()
    for f in components["vae"].iterdir():
        (models / "vae" / f.name).write_bytes(f.read_bytes())

    # the registry's shape checks describe the full-size models; these tiny ones only pass with verify=False
    loaded = VSSFlowPipeline.load(models_dir=models, verify=False, device="cpu")
    assert loaded.components.has_speaker_encoder and loaded.components.vae.config == VAE_CFG  # config.json was used
    assert loaded.generate(videos["3s"], **fast()).waveform.shape == (1, 3 * SR)

    (models / "rawnet3" / "rawnet3.safetensors").unlink()
    assert not VSSFlowPipeline.load(models_dir=models, verify=False, device="cpu").components.has_speaker_encoder
    with pytest.raises(MissingWeightsError, match="rawnet3"):
        VSSFlowPipeline.load(models_dir=models, verify=False, device="cpu", speaker=True)
    # no full checkpoint anywhere: the shipped demo (its stand-ins need no weights), announced in the log
    assert resolve_checkpoint(None, models_dir=tmp_path / "empty") == DEMO_CHECKPOINT


def test_converted_checkpoint_folder_supplies_its_frozen_components(tmp_path, components, videos):
    """A folder from ``python -m vssflow_core convert`` holds the CLIP tower, VAE and vocoder the network was trained
    with; they are used unless other paths are given."""
    from vssflow_core.convert import COMPONENT_FILES

    folder = tmp_path / "converted"
    folder.mkdir()
    (folder / COMPONENT_FILES["vssflow"]).write_bytes(components["checkpoint"].read_bytes())
    (folder / COMPONENT_FILES["clip"]).write_bytes(components["clip"].read_bytes())
    (folder / COMPONENT_FILES["vocoder"]).write_bytes(components["vocoder"].read_bytes())
    # no config.json travels with a converted VAE: its shape is read off the tensors (32 GroupNorm groups)
    vae_cfg = dataclasses.replace(VAE_CFG, block_out_channels=(32, 32, 32), norm_num_groups=32)
    _save(MelVAE(vae_cfg), folder / COMPONENT_FILES["vae"])

    loaded = VSSFlowPipeline.load(folder, synchformer=components["synchformer"], speaker=False, device="cpu")
    assert loaded.components.vae.config == vae_cfg and loaded.components.clip.config.width == 64
    assert loaded.generate(videos["3s"], **fast()).waveform.shape == (1, 3 * SR)


# --------------------------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------------------------


def weight_args(components: dict[str, Path]) -> list[str]:
    return ["--checkpoint", str(components["checkpoint"]), "--clip", str(components["clip"]),
            "--synchformer", str(components["synchformer"]), "--vae", str(components["vae"]),
            "--vocoder", str(components["vocoder"]), "--rawnet3", str(components["rawnet3"]), "--device", "cpu"]


def test_cli_end_to_end(tmp_path, components, videos):
    """Through ``python -m vssflow_core generate`` with the default sampler (the official dopri5, w = 3)."""
    out, wav = tmp_path / "out.mp4", tmp_path / "out.wav"
    ref = tmp_path / "ref.wav"
    sf.write(str(ref), sine(220, 2.0), SR)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("VSSFLOW_MODELS_DIR", None)
    proc = subprocess.run(
        [sys.executable, "-m", "vssflow_core", "generate", "--video", str(videos["3s"]), "--transcript", HELLO,
         "--speech-start", "0.5", "--speech-end", "2.5", "--speaker", str(ref), "-o", str(out), "--wav", str(wav),
         "--seed", "3", *weight_args(components)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"sampling ({DEFAULT_SOLVER})" in proc.stderr and "100%" in proc.stderr  # the progress bar went to stderr
    assert "wrote" in proc.stdout

    assert video_packet_digest(out) == video_packet_digest(videos["3s"])
    audio, rate, codec = decoded_audio(out)
    assert codec == "aac" and rate == SR
    assert 0 <= audio.shape[1] - 3 * SR < AAC_FRAME_SAMPLES  # the video's 3 s, within one AAC frame
    samples, wav_rate = sf.read(str(wav), dtype="float32")
    assert wav_rate == SR and samples.shape == (3 * SR,) and np.abs(samples).max() > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "out.wav", "ref.wav"]


def test_one_generate_run_opens_the_video_once_and_plans_its_windows_once(tmp_path, components, videos,
                                                                        monkeypatch):
    import vssflow_core.video as video
    import vssflow_core.video.readers as readers

    opened, plans = [], []

    def counted_open(path, *args, **kwargs):
        opened.append(path)
        return original_open(path, *args, **kwargs)

    def counted_plan(self, *args, **kwargs):
        plans.append(args)
        original_plan(self, *args, **kwargs)

    original_open, original_plan = readers.open_video, WindowPlan.__init__
    for module in (video, readers):
        monkeypatch.setattr(module, "open_video", counted_open)
    monkeypatch.setattr(WindowPlan, "__init__", counted_plan)
    code = generate_main(["--video", str(videos["3s"]), "--transcript", HELLO, "-o", str(tmp_path / "out.mp4"),
                          "--wav", str(tmp_path / "out.wav"), "-q", "--solver", "euler", "--steps", "2",
                          *weight_args(components)])
    assert code == 0
    assert len(opened) == 1 and len(plans) == 1


def test_the_mp4_and_the_wav_appear_together_or_not_at_all(tmp_path):
    mp4, wav = tmp_path / "a.mp4", tmp_path / "a.wav"
    with written_together(mp4, wav, None) as (tmp_mp4, tmp_wav, nothing):
        tmp_mp4.write_bytes(b"video")
        tmp_wav.write_bytes(b"sound")
    assert nothing is None and mp4.read_bytes() == b"video" and wav.read_bytes() == b"sound"

    later, sound = tmp_path / "b.mp4", tmp_path / "b.wav"
    with pytest.raises(FileExistsError):
        with written_together(later, sound) as (tmp_mp4, tmp_wav):
            tmp_mp4.write_bytes(b"video")
            tmp_wav.write_bytes(b"sound")
            later.write_bytes(b"someone else's")  # the mp4's name is taken while the files are written
    assert later.read_bytes() == b"someone else's" and not sound.exists()  # the wav is not left alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "a.wav", "b.mp4"]


def test_cli_same_seed_same_audio(tmp_path, components, videos):
    args = ["--video", str(videos["3s"]), "--solver", "heun", "--steps", "2", "-q", *weight_args(components)]
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert generate_main([*args, "--seed", seed, "--wav", str(tmp_path / f"{name}.wav")]) == 0
    a, b, c = (sf.read(str(tmp_path / f"{n}.wav"))[0] for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_cli_mixes_the_original_soundtrack(tmp_path, components, videos):
    out = tmp_path / "mixed.mp4"
    code = generate_main(["--video", str(videos["3s_audio"]), "-o", str(out), "--mix-original", "-q",
                          *weight_args(components), "--solver", "euler", "--steps", "2"])
    assert code == 0
    audio, rate, _ = decoded_audio(out)
    assert rate == 48_000 and band_energy(audio[0], rate, 440) > 0.05  # the original tone is still there
    assert video_packet_digest(out) == video_packet_digest(videos["3s_audio"])


def test_cli_cancel_writes_nothing(tmp_path, components, videos, monkeypatch, capsys):
    import vssflow_core.generate as generate

    def interrupt(self, progress):
        if progress.step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(generate._ProgressBar, "__call__", interrupt)
    code = generate_main(["--video", str(videos["3s"]), "-o", str(tmp_path / "out.mp4"), "--wav",
                          str(tmp_path / "out.wav"), "--solver", "euler", "--steps", "5", *weight_args(components)])
    assert code == 130 and "nothing was written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "case, extra, message",
    [
        ("missing", [], "no such file"),
        ("fake", [], "not a video file"),
        ("12s", ["--max-duration", "5"], "longer than the maximum of 5 s"),
        ("3s", ["--transcript", "!!!"], "nothing to pronounce"),
        ("3s", ["--transcript", HELLO, "--speech-end", "5"], "after the end of the clip"),
        ("3s", ["--speech-start", "1"], "give --transcript too"),
        ("3s", ["--lip", "/nonexistent/lip.npy"], "no such file"),
    ],
)
def test_cli_bad_input_exits_1_with_one_clear_line(tmp_path, components, videos, capsys, case, extra, message):
    video = tmp_path / "missing.mp4" if case == "missing" else videos[case]
    out = tmp_path / "out.mp4"
    code = generate_main(["--video", str(video), "-o", str(out), "-q", *weight_args(components), *extra])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and message in err.splitlines()[0]
    assert "Traceback" not in err
    assert not out.exists() and not any("partial" in p.name for p in tmp_path.iterdir())


def test_cli_missing_weights_and_existing_output(tmp_path, videos, capsys, monkeypatch):
    monkeypatch.delenv("VSSFLOW_MODELS_DIR", raising=False)
    out = tmp_path / "out.mp4"
    code = generate_main(["--video", str(videos["3s"]), "-o", str(out), "--models-dir", str(tmp_path / "none"),
                          "--device", "cpu", "--vae", str(tmp_path / "vae.safetensors")])
    err = capsys.readouterr().err  # no full checkpoint: the demo, which cannot take hand-picked components
    assert code == 1 and err.startswith("error: ") and "demo-model checkpoint" in err and "vae" in err
    assert "Traceback" not in err
    assert not out.exists()

    out.write_bytes(b"keep me")
    code = generate_main(["--video", str(videos["3s"]), "-o", str(out), "--models-dir", str(tmp_path / "none")])
    assert code == 1 and "exists" in capsys.readouterr().err and out.read_bytes() == b"keep me"
