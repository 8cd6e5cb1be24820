"""Editing through the pipeline on tiny random components: the kept track is sample-identical outside the
crossfades, strength 1 is the fresh generation and strength 0 the codec's reproduction, a range across a window
seam works, and takes are picked by number with their seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from test_windows import write_video
from tiny_models import build_tiny_components
from vssflow_core.flow.edit import AudioEdit
from vssflow_core.flow.settings import SamplerSettings
from vssflow_core.pipeline import VSSFlowPipeline
from vssflow_core.windows import plan_windows

RATE = 16_000


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test here runs single-threaded (see the conftest fixture)."""


@pytest.fixture(scope="module")
def pipe(tmp_path_factory) -> VSSFlowPipeline:
    paths = build_tiny_components(tmp_path_factory.mktemp("models"))
    return VSSFlowPipeline.load(paths.pop("checkpoint"), device="cpu", **paths)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {"4s": write_video(root / "clip4.mp4", 4.0), "14s": write_video(root / "clip14.mp4", 14.0)}


def track(seconds: float, seed: int = 0) -> torch.Tensor:
    """A recorded-looking track: a tone under noise, peaking at 0.3."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(round(seconds * RATE)) / RATE
    x = torch.sin(2 * torch.pi * 330 * t) + 0.5 * torch.randn(t.shape, generator=g)
    return 0.3 * x / x.abs().max()


def fast(**kwargs):
    return {"settings": SamplerSettings(solver="euler", steps=3), **kwargs}


@pytest.mark.parametrize("solver", ["euler", "dopri5"])
def test_outside_the_ranges_the_track_is_kept_sample_for_sample(pipe, videos, solver):
    audio = track(4.0)
    edit = AudioEdit.prepare(audio, 4.0, sample_rate=RATE, ranges="1.0-2.0, 3.5-4.0")
    settings = SamplerSettings(solver=solver, steps=3, atol=1e-3, rtol=1e-3)
    out = pipe.generate(videos["4s"], seed=3, edit=edit, settings=settings).waveform
    weight = edit.generated_weight()
    assert torch.equal(out[0, weight == 0], audio[weight == 0])
    inside = weight == 1
    assert not torch.allclose(out[0, inside], audio[inside], atol=1e-3)  # the range was regenerated
    assert bool(torch.isfinite(out).all())


def test_strength_one_is_the_fresh_generation_with_the_same_seed(pipe, videos):
    fresh = pipe.generate(videos["4s"], seed=5, **fast()).waveform
    edit = AudioEdit.prepare(track(4.0), 4.0, sample_rate=RATE, strength=1.0)
    assert torch.equal(pipe.generate(videos["4s"], seed=5, edit=edit, **fast()).waveform, fresh)


def test_strength_zero_is_the_input_as_the_codec_reproduces_it(pipe, videos):
    audio = track(4.0)
    edit = AudioEdit.prepare(audio, 4.0, sample_rate=RATE, strength=0.0)
    out = pipe.generate(videos["4s"], seed=5, edit=edit, **fast())
    plan = plan_windows(4.0)
    latent, _ = pipe.components.encode_audio(edit.window_audio(plan, 0)[None])
    torch.testing.assert_close(out.waveform, pipe.components.decode(latent, 4.0))
    assert out.stats.evaluations == 0  # nothing to integrate


def test_between_the_endpoints_the_strength_moves_the_output_from_the_input_to_the_generation(pipe, videos):
    audio = track(4.0)

    def at(strength: float) -> torch.Tensor:
        edit = AudioEdit.prepare(audio, 4.0, sample_rate=RATE, strength=strength)
        return pipe.generate(videos["4s"], seed=5, edit=edit, **fast()).waveform

    reproduced, fresh = at(0.0), at(1.0)
    distances = [float((at(s) - reproduced).pow(2).mean()) for s in (0.3, 0.7)]
    assert 0 < distances[0] < distances[1] < 1.5 * float((fresh - reproduced).pow(2).mean())


def test_a_range_across_a_window_seam_keeps_the_track_and_joins_the_windows(pipe, videos):
    plan = plan_windows(14.0)
    assert plan.count == 2
    first, length = plan.fade(1)
    seam = (first + length / 2) / RATE
    boundary = plan.starts[0] + plan.window_sec  # where window 1's held continuation ends
    audio = track(14.0, seed=1)
    ranges = f"{seam - 0.4:.2f}-{seam + 0.4:.2f}, {boundary - 0.5:.2f}-{boundary:.2f}"
    edit = AudioEdit.prepare(audio, 14.0, sample_rate=RATE, ranges=ranges)
    out = pipe.generate(videos["14s"], seed=2, edit=edit, **fast()).waveform
    weight = edit.generated_weight()
    assert torch.equal(out[0, weight == 0], audio[weight == 0])
    assert bool(torch.isfinite(out).all()) and not torch.allclose(out[0, weight == 1], audio[weight == 1], atol=1e-3)


def test_takes_are_picked_by_number_and_report_their_seed(pipe, videos):
    takes = pipe.generate(videos["4s"], seed=10, batch_size=3, **fast())
    second = takes.take(2)
    assert second.stats.seeds == (11,) and second.waveform.shape == (1, takes.waveform.shape[-1])
    assert torch.equal(second.waveform[0], takes.waveform[1])
    alone = pipe.generate(videos["4s"], seed=second.stats.seeds[0], **fast())  # regenerated alone from its seed
    torch.testing.assert_close(alone.waveform, second.waveform, atol=1e-4, rtol=0)
    for bad in (0, 4):
        with pytest.raises(ValueError, match="take"):
            takes.take(bad)
