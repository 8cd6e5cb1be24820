"""Runtime hardening: every solve is bounded, every stage can be cancelled within one unit of work, long numbers in a
transcript are read, and the command line runs from any folder.

Cancellation is tested by counting: a check that raises after ``n`` calls stands for the user pressing cancel, and
each test asserts how much work ran after it (never how long it took).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_models import CLIP_CFG, RAWNET_CFG, SYNCH_CFG, VAE_CFG, VOCODER_CFG
from vssflow_core.codec.vae import MelVAE
from vssflow_core.codec.vocoder import HifiGanVocoder
from vssflow_core.encoders.clip import CLIPVisualEncoder
from vssflow_core.encoders.rawnet3 import RawNet3
from vssflow_core.encoders.speaker import NUM_WINDOWS, speaker_embedding
from vssflow_core.encoders.synchformer import SynchformerVisualEncoder
from vssflow_core.flow.solvers import (MAX_EVALUATIONS, MAX_FIXED_STEPS, Dopri5Solver, EvaluationLimitReached,
                                       FixedStepSolver, SolverError, make_solver)
from vssflow_core.progress import check_interrupted, interrupt_check
from vssflow_core.text.cleaner import clean_transcript
from vssflow_core.text.numbers import MAX_NAMED_DIGITS, normalize_numbers

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Tiny models: single-threaded (see the conftest fixture)."""


class Cancelled(Exception):
    """What the host's check raises (ComfyUI raises its InterruptProcessingException)."""


class CancelAfter:
    """An interruption check that lets ``n`` checks pass, then raises on every later one."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls > self.n:
            raise Cancelled


def count_calls(modules) -> list[int]:
    """A one-element counter of forward calls over ``modules``."""
    counter = [0]
    for m in modules:
        m.register_forward_hook(lambda *_: counter.__setitem__(0, counter[0] + 1))
    return counter


# ---------------------------------------------------------------------------------------------------------------------
# The interruption hook


def test_without_a_host_check_nothing_interrupts():
    check_interrupted()  # no check installed: returns


def test_an_installed_check_is_restored_after_its_block():
    outer, inner = CancelAfter(10), CancelAfter(0)
    with interrupt_check(outer):
        with interrupt_check(inner), pytest.raises(Cancelled):
            check_interrupted()
        check_interrupted()
    assert (outer.calls, inner.calls) == (1, 1)
    check_interrupted()


# ---------------------------------------------------------------------------------------------------------------------
# Bounded solves (item 4, and the step bound of item 3)


class CountingField:
    def __init__(self, field):
        self.field, self.calls = field, 0

    def __call__(self, t, x):
        self.calls += 1
        return self.field(t, x)


def rotation(t, x):
    return torch.stack([-x[..., 1], x[..., 0]], dim=-1)


def test_a_huge_guidance_scale_stops_dopri5_at_once_with_advice():
    # guidance amplifies the conditional/unconditional difference: at a scale of 1e30 the step the error control
    # allows shrinks toward nothing (official code: t = 6e-27 after 6.6 minutes)
    field = CountingField(lambda t, x: 1e30 * torch.sin(3 * x) + x)
    x0 = torch.randn(2, 8, 16)
    with pytest.raises(SolverError, match="guidance scale") as failure:
        Dopri5Solver().solve(field, x0)
    assert field.calls < 200
    assert "t=" in str(failure.value)


def test_tolerances_finer_than_float32_resolves_stop_dopri5_with_advice():
    field = CountingField(rotation)
    x0 = torch.tensor([[1.0, 0.5], [-0.3, 2.0]])  # float32
    with pytest.raises(SolverError, match="step size collapsed.*loosen atol/rtol"):
        Dopri5Solver(atol=1e-30, rtol=1e-30).solve(field, x0)
    assert field.calls < 200


def test_dopri5_stops_at_its_evaluation_limit_and_says_what_to_change():
    # a stiff field: explicit steps must stay below 3e-5, about 200,000 of them over the flow
    field = CountingField(lambda t, x: -1e5 * (x - torch.cos(t)))
    x0 = torch.zeros(4, dtype=torch.float64)
    with pytest.raises(SolverError, match=f"limit of {MAX_EVALUATIONS:,} velocity evaluations.*fixed-step solver"):
        Dopri5Solver(atol=1e-5, rtol=1e-5).solve(field, x0)
    assert field.calls <= MAX_EVALUATIONS


def test_the_evaluation_limit_is_a_setting():
    field = CountingField(lambda t, x: -1e5 * (x - torch.cos(t)))
    # its own kind of SolverError, so a caller that capped the run on purpose can tell it from a failure
    with pytest.raises(EvaluationLimitReached, match="limit of 50 velocity"):
        make_solver("dopri5", max_evaluations=50).solve(field, torch.zeros(4, dtype=torch.float64))
    assert field.calls <= 50


def test_a_velocity_that_is_not_finite_stops_dopri5_before_any_step():
    field = CountingField(lambda t, x: x * float("inf"))
    with pytest.raises(SolverError, match="non-finite"):
        Dopri5Solver().solve(field, torch.ones(3))
    assert field.calls == 1


def test_ordinary_problems_stay_well_inside_the_bounds():
    solution = Dopri5Solver(atol=1e-10, rtol=1e-10).solve(rotation, torch.tensor([[1.0, 0.5]], dtype=torch.float64))
    assert solution.evaluations < MAX_EVALUATIONS / 5


@pytest.mark.parametrize("steps", [MAX_FIXED_STEPS + 1, 10**9, 0, -3, 2.5, math.nan])
def test_fixed_step_counts_outside_the_bound_are_refused_before_anything_is_allocated(steps):
    with pytest.raises(ValueError, match="steps must be"):
        FixedStepSolver("euler", steps)


def test_the_largest_fixed_step_count_is_accepted():
    assert FixedStepSolver("euler", MAX_FIXED_STEPS).steps == MAX_FIXED_STEPS


# ---------------------------------------------------------------------------------------------------------------------
# Cancel in every stage (item 5): each stops within one unit of work


def test_cancel_stops_the_sampler_within_one_evaluation():
    field = CountingField(rotation)
    x0 = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    for solver in (make_solver("dopri5"), make_solver("rk4", steps=50)):
        field.calls = 0
        with interrupt_check(CancelAfter(3)), pytest.raises(Cancelled):
            solver.solve(field, x0)
        assert field.calls == 3  # mid-step: a dopri5 step is six evaluations, an RK4 step four


def test_cancel_stops_clip_within_one_batch():
    clip = CLIPVisualEncoder(CLIP_CFG).eval()
    forwards = count_calls([clip.visual.conv1])
    frames = torch.rand(5 * 4, 40, 40, 3)
    with interrupt_check(CancelAfter(1)), pytest.raises(Cancelled):
        clip.encode_frames(frames, batch_size=4)
    assert forwards[0] == 1  # of 5 batches


def test_cancel_stops_synchformer_within_one_block():
    config = dict(SYNCH_CFG.__dict__, depth=4)
    synch = SynchformerVisualEncoder(type(SYNCH_CFG)(**config)).eval()
    blocks = count_calls(synch.vfeat_extractor.blocks)
    frames = torch.rand(48, 40, 40, 3)  # 5 segments of 16 frames every 8
    checks = CancelAfter(4)
    with interrupt_check(checks), pytest.raises(Cancelled):
        synch.encode_video(frames, batch_size=2, num_frames=None)
    assert blocks[0] < config["depth"]  # stopped inside the first batch's network
    assert checks.calls == 5


def test_cancel_stops_the_speaker_encoder_within_one_batch_of_windows():
    model = RawNet3(RAWNET_CFG).eval()
    forwards = count_calls([model])
    with interrupt_check(CancelAfter(1)), pytest.raises(Cancelled):
        speaker_embedding(model, torch.randn(16_000 * 4) * 0.1, 16_000, batch_size=1)
    assert forwards[0] == 1  # of NUM_WINDOWS
    assert NUM_WINDOWS > 1


def test_cancel_stops_the_vae_within_one_level():
    vae = MelVAE(VAE_CFG).eval()
    levels = count_calls(vae.decoder.up_blocks)
    with interrupt_check(CancelAfter(1)), pytest.raises(Cancelled):
        vae.decode(torch.randn(1, VAE_CFG.latent_channels, 25, 16))
    assert levels[0] == 1  # of len(up_blocks)
    assert len(vae.decoder.up_blocks) > 1


def test_cancel_stops_the_vocoder_within_one_block():
    vocoder = HifiGanVocoder(VOCODER_CFG).eval()
    blocks = count_calls(vocoder.resblocks)
    with interrupt_check(CancelAfter(3)), pytest.raises(Cancelled):
        vocoder(torch.randn(1, 100, VOCODER_CFG.model_in_dim))
    assert blocks[0] == 1  # stage 0 (check 1), its block (check 2), stage 1 (check 3), stopped at its block
    assert len(vocoder.resblocks) > 1


def test_cancel_stops_the_demo_vocoder_within_one_griffin_lim_iteration(monkeypatch):
    from vssflow_core.demo.frontends import DemoFrontendConfig, GriffinLimVocoder

    vocoder = GriffinLimVocoder(DemoFrontendConfig(griffin_lim_iters=1_000_000))
    iterations, istft = [], torch.istft

    def counted_istft(*args, **kwargs):  # one inverse STFT per iteration
        iterations.append(1)
        return istft(*args, **kwargs)

    monkeypatch.setattr(torch, "istft", counted_istft)
    with interrupt_check(CancelAfter(2)), pytest.raises(Cancelled):
        vocoder(torch.zeros(1, 20, vocoder.mel.n_mels))
    assert len(iterations) == 2  # of a million


def test_cancel_stops_the_demo_visual_encoders_within_one_batch():
    from vssflow_core.demo.frontends import DemoFrontendConfig, MotionGridEncoder, PixelGridEncoder

    frames = torch.rand(200, 16, 16, 3)
    for encode in (PixelGridEncoder(DemoFrontendConfig()).encode_frames,
                   MotionGridEncoder(DemoFrontendConfig()).encode_video):
        checks = CancelAfter(1)
        with interrupt_check(checks), pytest.raises(Cancelled):
            encode(frames)
        assert checks.calls == 2  # the second of several batches


def test_cancel_stops_video_decoding_within_one_frame(tmp_path):
    from vssflow_core.video import open_video
    from vssflow_core.video.synthetic import make_counter_video

    path = make_counter_video(tmp_path / "counter.mp4", num_frames=40)
    decoded = []
    with open_video(path) as source, interrupt_check(CancelAfter(5)), pytest.raises(Cancelled):
        for index, _ in source.iter_frames(range(40)):
            decoded.append(index)
    assert decoded == [0, 1, 2, 3, 4]


def test_cancel_stops_the_scan_of_a_long_video_within_one_packet(tmp_path):
    from vssflow_core.video import open_video
    from vssflow_core.video.synthetic import make_counter_video

    path = make_counter_video(tmp_path / "counter.mp4", num_frames=40)
    checks = CancelAfter(3)
    with interrupt_check(checks), pytest.raises(Cancelled):
        open_video(path, backend="pyav")  # reads every packet's timestamp before the first frame is decoded
    assert checks.calls == 4


def test_cancel_during_the_mux_leaves_no_output(tmp_path):
    from vssflow_core.media.mux import mux_audio
    from vssflow_core.video.synthetic import make_counter_video

    video = make_counter_video(tmp_path / "counter.mp4", num_frames=50)
    out = tmp_path / "out" / "with_sound.mp4"
    out.parent.mkdir()
    checks = CancelAfter(20)  # inside the AAC encoding or the packet copy, not before it
    with interrupt_check(checks), pytest.raises(Cancelled):
        mux_audio(video, np.zeros(32_000, dtype=np.float32), 16_000, out)
    assert checks.calls == 21
    assert list(out.parent.iterdir()) == []  # neither the output nor a partial file


def test_cancel_stops_a_picture_re_encode_within_one_frame(tmp_path):
    from vssflow_core.media.video_file import reencode_picture
    from vssflow_core.video.synthetic import make_counter_video

    video = make_counter_video(tmp_path / "counter.mp4", num_frames=50)
    checks = CancelAfter(3)
    with interrupt_check(checks), pytest.raises(Cancelled):
        reencode_picture(video, tmp_path / "h264.mp4")
    assert checks.calls == 4  # the fourth of 50 frames


# ---------------------------------------------------------------------------------------------------------------------
# Long numbers in a transcript (item 6)


def test_a_5000_digit_number_is_read_digit_by_digit():
    text = clean_transcript("call " + "7" * 5000 + " now")
    words = text.split()
    assert words[0] == "CALL" and words[-1] == "NOW"
    assert words[1:-1] == ["SEVEN"] * 5000


@pytest.mark.parametrize("number", ["9" * MAX_NAMED_DIGITS, "1" + "0" * MAX_NAMED_DIGITS])
def test_numbers_are_named_up_to_decillions_and_read_digit_by_digit_beyond(number):
    words = normalize_numbers(number)
    if len(number) <= MAX_NAMED_DIGITS:
        assert "decillion" in words
    else:
        assert words == "one " + " ".join(["zero"] * MAX_NAMED_DIGITS)


def test_long_amounts_ordinals_and_decimals_are_read_too():
    assert normalize_numbers("$" + "1" * 50 + ".05").endswith("one dollars, five cents")
    assert normalize_numbers("2" * 50 + "rd") == " ".join(["two"] * 49) + " second"
    assert normalize_numbers("0." + "5" * 5000).startswith("zero point five five")


def test_ordinary_numbers_keep_the_official_reading():
    assert normalize_numbers("1999 and $25.50 and 21st") == ("nineteen ninety-nine and twenty-five dollars, "
                                                            "fifty cents and twenty-first")


def test_a_transcript_too_long_for_its_clip_is_refused_with_a_clear_message():
    from vssflow_core.text.phonemes import check_speech_rate, text_to_tokens

    phonemes = text_to_tokens("call " + "7" * 500)
    with pytest.raises(ValueError, match="shorten the transcript"):
        check_speech_rate(len(phonemes), 0.0, 10.0)


# ---------------------------------------------------------------------------------------------------------------------
# Run from anywhere (item 9)


def test_the_command_line_runs_from_any_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "vssflow_core", "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "generate" in result.stdout


def test_the_package_build_holds_only_the_core_library():
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert config["build-system"]["build-backend"] == "setuptools.build_meta"
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["vssflow_core*"]
    assert "install --no-deps --no-build-isolation -e ." in (REPO_ROOT / "scripts" / "setup.sh").read_text()


# ---------------------------------------------------------------------------------------------------------------------
# The nodes: Cancel reaches the core, a NaN speech end (item 10)


@pytest.fixture(scope="module")
def pack():
    from workflow_tools import load_pack

    return load_pack()


def test_comfyuis_cancel_reaches_every_core_loop(pack, monkeypatch):
    class FakeModelManagement:
        class InterruptProcessingException(Exception):
            pass

        pressed = False

        def throw_exception_if_processing_interrupted(self):
            if self.pressed:
                raise self.InterruptProcessingException

    fake = FakeModelManagement()
    monkeypatch.setattr(pack.nodes.comfy_bridge, "model_management", fake)
    pack.vssflow_core.progress.check_interrupted()  # not pressed: nothing happens
    fake.pressed = True
    with pytest.raises(FakeModelManagement.InterruptProcessingException):
        pack.vssflow_core.progress.check_interrupted()


def test_a_nan_speech_end_means_the_end_of_the_clip(pack):
    tokenize = pack.nodes.phonemes.tokenize
    for end in (0.0, math.nan):
        assert tokenize("HH AH0 L OW1", 0.5, end, "auto", 3.0).window(3.0) == (0.5, 3.0)
    assert tokenize("HH AH0 L OW1", 0.5, 2.0, "auto", 3.0).window(3.0) == (0.5, 2.0)
    with pytest.raises(ValueError, match="inf"):
        tokenize("HH AH0 L OW1", 0.5, math.inf, "auto", 3.0)


# ---------------------------------------------------------------------------------------------------------------------
# The pipeline and the command line on tiny components: bounds before any work, cancel between windows, a speaker
# reference without a speaker encoder (item 7), seeds of any size (item 10)


@pytest.fixture(scope="module")
def components(tmp_path_factory) -> dict[str, Path]:
    from tiny_models import build_tiny_components

    return build_tiny_components(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def clip_3s(tmp_path_factory) -> Path:
    from vssflow_core.video.synthetic import make_counter_video

    return Path(make_counter_video(tmp_path_factory.mktemp("videos") / "clip.mp4", num_frames=75, fps=25))


def count_network_passes(pipe) -> list[int]:
    counter, latent_velocity = [0], pipe.model.latent_velocity

    def counted(*args, **kwargs):
        counter[0] += 1
        return latent_velocity(*args, **kwargs)

    pipe.model.latent_velocity = counted  # what the guided velocity calls once per pass
    return counter


def weight_args(components, rawnet3: bool = True) -> list[str]:
    names = ["clip", "synchformer", "vae", "vocoder", *(["rawnet3"] if rawnet3 else [])]
    return ["--checkpoint", str(components["checkpoint"]), "--device", "cpu",
            *(a for name in names for a in (f"--{name}", str(components[name])))]


@pytest.mark.parametrize("flags, message", [
    (["--solver", "euler", "--steps", "1000000000"], "steps must be between 1 and 10,000"),
    (["--atol", "0"], "atol must be a positive number"),
    (["--rtol", "nan"], "rtol must be a positive number"),
])
def test_the_command_line_refuses_unbounded_sampling_before_reading_the_video(tmp_path, flags, message, capsys):
    from vssflow_core.generate import main

    missing = tmp_path / "not_read.mp4"  # never opened: the settings are checked first
    assert main(["--video", str(missing), "--wav", str(tmp_path / "out.wav"), *flags]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.wav").exists()


def test_the_sampler_settings_carry_the_bounds():
    from vssflow_core.flow.settings import SamplerSettings

    assert SamplerSettings().max_evaluations == MAX_EVALUATIONS
    assert SamplerSettings(steps=MAX_FIXED_STEPS).steps == MAX_FIXED_STEPS
    with pytest.raises(ValueError, match="10,000"):
        SamplerSettings(solver="euler", steps=MAX_FIXED_STEPS + 1)
    with pytest.raises(ValueError, match="max_evaluations"):
        SamplerSettings(max_evaluations=0)
    assert SamplerSettings(max_evaluations=60).make_solver().max_evaluations == 60


def test_a_huge_guidance_scale_fails_the_generation_quickly_with_advice(components, clip_3s):
    from vssflow_core.flow.settings import SamplerSettings
    from vssflow_core.pipeline import VSSFlowPipeline

    pipe = VSSFlowPipeline.load(components["checkpoint"], device="cpu",
                                **{k: v for k, v in components.items() if k != "checkpoint"})
    calls = count_network_passes(pipe)
    with pytest.raises(SolverError, match="guidance scale"):
        pipe.generate(clip_3s, settings=SamplerSettings(guidance_scale=1e30))
    assert 0 < calls[0] < 200


def test_cancel_between_windows_stops_the_generation(components, tmp_path):
    from vssflow_core.flow.settings import SamplerSettings
    from vssflow_core.pipeline import VSSFlowPipeline
    from vssflow_core.video.synthetic import make_counter_video

    video = make_counter_video(tmp_path / "long.mp4", num_frames=480, fps=20, width=32, height=32)  # 24 s
    pipe = VSSFlowPipeline.load(components["checkpoint"], device="cpu",
                                **{k: v for k, v in components.items() if k != "checkpoint"})
    sampled = count_network_passes(pipe)
    decoded = count_calls([pipe.components.vocoder])
    counter = CancelAfter(10**9)
    with interrupt_check(counter):
        pipe.generate(video, settings=SamplerSettings(solver="euler", steps=2))
    per_run, evaluations, windows = counter.calls, sampled[0], decoded[0]
    assert windows >= 3
    # cancel once a third of the checks have passed: the last window is never sampled nor decoded
    sampled[0] = decoded[0] = 0
    with interrupt_check(CancelAfter(per_run // 3)), pytest.raises(Cancelled):
        pipe.generate(video, settings=SamplerSettings(solver="euler", steps=2))
    assert sampled[0] < evaluations and decoded[0] < windows


def test_a_speaker_reference_without_a_speaker_encoder_is_ignored_with_a_warning(components, clip_3s, tmp_path,
                                                                                  caplog):
    import soundfile as sf

    from vssflow_core.flow.settings import SamplerSettings
    from vssflow_core.pipeline import VSSFlowPipeline

    reference = tmp_path / "voice.wav"
    sf.write(str(reference), np.random.default_rng(0).normal(0, 0.1, 32_000).astype(np.float32), 16_000)
    paths = {k: v for k, v in components.items() if k not in ("checkpoint", "rawnet3")}
    pipe = VSSFlowPipeline.load(components["checkpoint"], device="cpu", speaker=False, **paths)
    settings = SamplerSettings(solver="euler", steps=2)
    with caplog.at_level("WARNING"):
        voiced = pipe.generate(clip_3s, "HH AH0 L OW1", speaker=reference, seed=3, settings=settings)
    assert "speaker reference is ignored" in caplog.text and "RawNet3" in caplog.text
    neutral = pipe.generate(clip_3s, "HH AH0 L OW1", seed=3, settings=settings)
    assert torch.equal(voiced.waveform, neutral.waveform)


def test_the_speech_workflow_runs_on_components_without_a_speaker_encoder(pack, tmp_path, caplog):
    # what the shipped speech-only workflow does on the demo: Load Audio wired to the sampler, and no RawNet3
    from tiny_models import build_tiny_models_folder
    from vssflow_core.video.synthetic import make_counter_video
    from workflow_tools import pack_nodes

    nodes, bridge = pack_nodes(pack), pack.nodes.comfy_bridge
    names = build_tiny_models_folder(tmp_path / "models" / "vssflow")
    bridge.configure(models_dirs=[tmp_path / "models" / "vssflow"], input_dir=tmp_path / "input",
                     output_dir=tmp_path / "output", temp_dir=tmp_path / "temp")
    (tmp_path / "input").mkdir()
    make_counter_video(tmp_path / "input" / "talk.mp4", 50, 25)
    (model,) = nodes["VSSFlowCheckpointLoader"].execute(names["checkpoint"], "auto", "float32")
    (parts,) = nodes["VSSFlowComponentsLoader"].execute(names["clip"], names["synchformer"], names["vae"],
                                                     names["vocoder"], pack.nodes.loaders.NONE, False, "auto")
    vssflow_video, *_ = nodes["VSSFlowVideoLoader"].execute(file="talk.mp4")
    (phonemes,) = nodes["VSSFlowPhonemeTokenizer"].execute("HH AH0 L OW1", 0.0, 0.0, "auto", 2.0)
    (visual,) = nodes["VSSFlowVisualEncoder"].execute(parts, vssflow_video)
    reference = {"waveform": torch.randn(1, 1, 32_000) * 0.1, "sample_rate": 16_000}
    with caplog.at_level("WARNING"):
        (latent,) = nodes["VSSFlowSampler"].execute(model, parts, visual, seed=0, steps=2, guidance_scale=3.0,
                                                   solver="euler", batch_size=1, phonemes=phonemes,
                                                   speaker_reference=reference)
    assert "speaker reference is ignored" in caplog.text
    assert torch.isfinite(latent.latent).all()


@pytest.mark.parametrize("seed", [2**64, 10**100])
def test_seeds_of_any_size_are_used_modulo_2_to_the_64(tmp_path, components, clip_3s, seed, capsys):
    import soundfile as sf

    from vssflow_core.generate import main

    args = ["--video", str(clip_3s), "--solver", "euler", "--steps", "2", "-q", *weight_args(components)]
    assert main([*args, "--seed", str(seed), "--wav", str(tmp_path / "big.wav")]) == 0
    assert f"used modulo 2^64, as {seed % 2**64}" in capsys.readouterr().err
    assert main([*args, "--seed", str(seed % 2**64), "--wav", str(tmp_path / "reduced.wav")]) == 0
    big, reduced = (sf.read(str(tmp_path / f"{name}.wav"))[0] for name in ("big", "reduced"))
    assert np.array_equal(big, reduced)
